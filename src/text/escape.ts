/**
 * Text that a peer, a server or a client controls, made safe to show on a terminal or
 * to write to a log line: nothing in it can move the cursor, change colours, set the
 * window title, write the clipboard (OSC 52), reorder what follows (bidi controls) or
 * start a line that looks like another message.
 *
 * Escaped, as visible text:
 * - C0 controls U+0000–U+001F except TAB (and LF where `multiline` allows it); CR and LF
 *   as `\r`, `\n`, the rest as `\xNN`;
 * - DEL U+007F and the C1 controls U+0080–U+009F (NEL U+0085 and CSI U+009B among
 *   them) as `\xNN`;
 * - the line and paragraph separators U+2028/U+2029, the bidi embeddings, overrides and
 *   isolates U+202A–U+202E and U+2066–U+2069, and the marks U+200E, U+200F, U+061C, as
 *   `\uXXXX`.
 * Everything else passes unchanged, backslashes included (so ordinary text reads as
 * typed). Unicode TR36 §3.3 and ECMA-48 are the sources of these classes.
 */

/** The unsafe classes (see the module docs) as a regex character class, LF apart. */
const CLASS =
  "\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069";
const UNSAFE = new RegExp(`[\\x0a${CLASS}]`);
const UNSAFE_ALL = new RegExp(`[\\x0a${CLASS}]`, "g");
const UNSAFE_BUT_LF = new RegExp(`[${CLASS}]`, "g");

function visible(ch: string): string {
  if (ch === "\n") return "\\n";
  if (ch === "\r") return "\\r";
  const code = ch.charCodeAt(0);
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, "0")}`;
  return `\\u${code.toString(16).padStart(4, "0")}`;
}

export interface EscapeOptions {
  /** Keep LF as a line break (the caller lays the lines out itself); default false. */
  multiline?: boolean;
}

/**
 * `text` with every unsafe code point (see the module docs) replaced by a visible escape.
 * One line unless `multiline` is set. Returns the same string when nothing needed it.
 * @example escapeControls("hi\x1b]52;c;...\x07") // "hi\\x1b]52;c;...\\x07"
 */
export function escapeControls(text: string, opts: EscapeOptions = {}): string {
  if (!UNSAFE.test(text)) return text;
  return text.replace(opts.multiline ? UNSAFE_BUT_LF : UNSAFE_ALL, visible);
}

/** Whether `text` holds a code point that {@link escapeControls} would escape. */
export function hasControls(text: string): boolean {
  return UNSAFE.test(text);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Bytes shown as text: valid UTF-8 decoded, each byte of an invalid sequence shown as
 * `\xNN` (never U+FFFD, which would hide what was sent), then {@link escapeControls}.
 */
export function escapeBytes(bytes: Uint8Array, opts: EscapeOptions = {}): string {
  try {
    return escapeControls(strictUtf8.decode(bytes), opts);
  } catch {
    return escapeControls(decodeLossless(bytes), opts);
  }
}

/** UTF-8 (RFC 3629) decoded by hand so that each invalid byte can be named. */
function decodeLossless(b: Uint8Array): string {
  let out = "";
  let i = 0;
  while (i < b.length) {
    const c = b[i] as number;
    let need = 0;
    let cp = 0;
    let min = 0;
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      cp = c & 0x1f;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      cp = c & 0x0f;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      cp = c & 0x07;
      min = 0x10000;
    }
    let ok = need > 0;
    for (let k = 1; ok && k <= need; k++) {
      const t = b[i + k];
      if (t === undefined || (t & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (t & 0x3f);
    }
    if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (ok) {
      out += String.fromCodePoint(cp);
      i += need + 1;
    } else {
      out += `\\x${c.toString(16).padStart(2, "0")}`;
      i++;
    }
  }
  return out;
}
