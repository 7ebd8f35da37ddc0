/**
 * The terminal chat's parts without a terminal: keys out of raw input (split reads,
 * bracketed pastes) and where text lands on a screen of a given width.
 */
import { describe, expect, test } from "bun:test";
import { type Key, KeyParser } from "../../src/cli/tty/keys.ts";
import { layoutInput, width, wrapBlock } from "../../src/cli/tty/layout.ts";

function keysOf(...chunks: string[]): Key[] {
  const out: Key[] = [];
  const p = new KeyParser((k) => out.push(k));
  for (const c of chunks) p.push(c);
  return out;
}

describe("keys", () => {
  test("text, controls and escape sequences", () => {
    expect(keysOf("hi\r")).toEqual([
      { kind: "text", text: "hi" },
      { kind: "key", name: "enter" },
    ]);
    expect(keysOf("\x1b[D\x1bOH\x1b[3~\x7f\x03\x04\x1b[1;5C\x1bb")).toEqual(
      (
        [
          "left",
          "home",
          "delete",
          "backspace",
          "interrupt",
          "eof",
          "word-right",
          "word-left",
        ] as const
      ).map((name) => ({ kind: "key", name })),
    );
  });

  test("a sequence split across reads is put back together", () => {
    expect(keysOf("a\x1b", "[", "D")).toEqual([
      { kind: "text", text: "a" },
      { kind: "key", name: "left" },
    ]);
  });

  test("a bracketed paste is one key, even split mid-marker; its controls are dropped", () => {
    const keys = keysOf("\x1b[20", "0~/to carol\r\nsecret\x1b[2J\x07\x1b[2", "01~x");
    expect(keys).toEqual([
      { kind: "paste", text: "/to carol\nsecret[2J" },
      { kind: "text", text: "x" },
    ]);
  });

  test("C1 controls typed are dropped; astral characters kept whole", () => {
    expect(keysOf("a\u009b2Jb😀")).toEqual([{ kind: "text", text: "a2Jb😀" }]);
  });
});

describe("layout", () => {
  const cases = [
    "abcdefghij".repeat(9),
    "日本語のテキスト".repeat(6),
    "😀👍🏽👨‍👩‍👧❤️🇯🇵".repeat(8),
    "a日b😀".repeat(20),
  ];

  for (const cols of [10, 40, 120]) {
    test(`no row wider than ${cols} columns; the cursor on a cell boundary`, () => {
      for (const text of cases) {
        const gs = Array.from(new Intl.Segmenter().segment(text), (s) => s.segment);
        for (let cursor = 0; cursor <= gs.length; cursor++) {
          const l = layoutInput("bob> ", gs, cursor, cols);
          for (const row of l.rows) expect(width(row)).toBeLessThanOrEqual(cols);
          expect(l.cursorRow).toBeLessThan(l.rows.length);
          expect(l.cursorCol).toBeLessThan(cols);
          // The cursor is where the grapheme after it is drawn.
          if (cursor < gs.length) {
            const row = l.rows[l.cursorRow] as string;
            const at = Array.from(new Intl.Segmenter().segment(row), (s) => s.segment);
            let col = 0;
            let i = 0;
            while (col < l.cursorCol) col += width(at[i++] as string);
            expect(col).toBe(l.cursorCol);
            expect(at[i]).toBe(gs[cursor]);
          }
        }
        for (const row of wrapBlock("[12:00:00] bob: ", [text, text], 11, cols))
          expect(width(row)).toBeLessThanOrEqual(cols);
      }
    });
  }

  test("a wide character that does not fit goes to the next row", () => {
    const l = layoutInput("> ", ["a", "a", "日"], 3, 5);
    expect(l.rows).toEqual(["> aa", "日"]);
    expect([l.cursorRow, l.cursorCol]).toEqual([1, 2]);
  });

  test("a full row puts the cursor at the start of the next", () => {
    const l = layoutInput("> ", ["a", "b", "c"], 3, 5);
    expect(l.rows).toEqual(["> abc", ""]);
    expect([l.cursorRow, l.cursorCol]).toEqual([1, 0]);
  });

  test("clusters terminals draw wider (emoji + skin tone) count wide", () => {
    expect(width("👍🏽")).toBe(4);
    expect(width("日本")).toBe(4);
    expect(width("e\u0301")).toBe(1);
  });

  test("a block's continuation rows are indented: none starts like a message", () => {
    const rows = wrapBlock(
      "[12:00:00] mallory: ",
      ["ok", "[12:00:00] alice: hi", `x${" ".repeat(60)}[12:00:00] alice: hi`],
      11,
      40,
    );
    expect(rows[0]).toBe("[12:00:00] mallory: ok");
    for (const row of rows.slice(1)) expect(row).toMatch(/^ {11}/);
  });
});
