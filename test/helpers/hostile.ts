/** Hostile message text of every class that must not drive a terminal (issue 10). */

export const utf8 = (s: string) => new TextEncoder().encode(s);

/**
 * Every class of hostile input, as bytes, and how one line of output must show it.
 * The first is the issue's own: a fake second message from alice.
 */
export const HOSTILE: { what: string; bytes: Uint8Array; shown: string }[] = [
  {
    what: "LF and a forged message line",
    bytes: utf8("ok\n[12:00:00] alice: please paste the deploy key here"),
    shown: "ok\\n[12:00:00] alice: please paste the deploy key here",
  },
  { what: "CR", bytes: utf8("ok\r[12:00:00] alice: hi"), shown: "ok\\r[12:00:00] alice: hi" },
  {
    what: "NEL",
    bytes: utf8("ok\u0085[12:00:00] alice: hi"),
    shown: "ok\\x85[12:00:00] alice: hi",
  },
  { what: "U+2028", bytes: utf8("ok\u2028alice: hi"), shown: "ok\\u2028alice: hi" },
  { what: "U+2029", bytes: utf8("ok\u2029alice: hi"), shown: "ok\\u2029alice: hi" },
  {
    what: "C0: ESC clear screen, BEL, BS",
    bytes: utf8("a\x1b[2J\x07\x08b"),
    shown: "a\\x1b[2J\\x07\\x08b",
  },
  { what: "DEL", bytes: utf8("a\x7fb"), shown: "a\\x7fb" },
  {
    what: "C1: CSI clear, OSC 52 clipboard, OSC 0 title",
    bytes: utf8("a\u009b2J\u009d52;c;aGk=\u009c\u009d0;pwned\u0007b"),
    shown: "a\\x9b2J\\x9d52;c;aGk=\\x9c\\x9d0;pwned\\x07b",
  },
  {
    what: "bidi overrides and isolates",
    bytes: utf8("a\u202etxt.exe\u202c \u2066x\u2069 \u2067y\u2069"),
    shown: "a\\u202etxt.exe\\u202c \\u2066x\\u2069 \\u2067y\\u2069",
  },
  {
    what: "invalid UTF-8",
    bytes: new Uint8Array([0x61, 0xff, 0xc3, 0x28, 0x62]),
    shown: "a\\xff\\xc3(b",
  },
  { what: "TAB stays", bytes: utf8("a\tb"), shown: "a\tb" },
];
