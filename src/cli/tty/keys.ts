/**
 * Keyboard input of a terminal in raw mode, as keys: text, named keys, and bracketed
 * pastes. Escape sequences are those of xterm (ECMA-48 CSI and SS3, as sent by xterm,
 * tmux, GNOME/KDE terminals, iTerm2, Windows Terminal); bracketed paste is xterm's mode
 * 2004 (`ESC [ 200 ~` … `ESC [ 201 ~`). A sequence split across reads is completed by
 * the next read; a lone ESC is dropped after {@link ESC_WAIT_MS}.
 */

/** One thing the user did at the keyboard. */
export type Key =
  /** Characters typed (never a control character). */
  | { kind: "text"; text: string }
  /** A bracketed paste: its text with CR LF / CR as LF, other controls but TAB removed. */
  | { kind: "paste"; text: string }
  | { kind: "key"; name: KeyName };

export type KeyName =
  | "enter"
  | "backspace"
  | "delete"
  | "left"
  | "right"
  | "up"
  | "down"
  | "home"
  | "end"
  | "word-left"
  | "word-right"
  | "delete-word-left"
  | "delete-word-right"
  | "kill-to-start"
  | "kill-to-end"
  | "interrupt"
  | "eof"
  | "redraw"
  | "tab";

/** How long a lone ESC waits for the rest of a sequence before it is dropped. */
export const ESC_WAIT_MS = 50;

/** A CSI sequence (ECMA-48 § 5.4): parameters, intermediates, final byte. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the sequences parsed here
const CSI = /^\x1b\[([0-9;:<=>?]*)([ -/]*)([@-~])/;
/** The start of one, still waiting for its final byte. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the sequences parsed here
const CSI_START = /^\x1b\[[0-9;:<=>?]*[ -/]*$/;

/** Longer escape sequences are not keys: they are skipped. */
const MAX_SEQUENCE = 64;
const PASTE_END = "\x1b[201~";

/** Control characters (C0, DEL) as keys; those not listed are ignored. */
const CONTROL: Record<string, KeyName> = {
  "\r": "enter",
  "\n": "enter",
  "\x7f": "backspace",
  "\x08": "backspace",
  "\t": "tab",
  "\x01": "home", // Ctrl-A
  "\x05": "end", // Ctrl-E
  "\x02": "left", // Ctrl-B
  "\x06": "right", // Ctrl-F
  "\x10": "up", // Ctrl-P
  "\x0e": "down", // Ctrl-N
  "\x03": "interrupt", // Ctrl-C
  "\x04": "eof", // Ctrl-D
  "\x15": "kill-to-start", // Ctrl-U
  "\x0b": "kill-to-end", // Ctrl-K
  "\x17": "delete-word-left", // Ctrl-W
  "\x0c": "redraw", // Ctrl-L
};

/** CSI sequences by final byte (and parameters where they matter). */
function csiKey(params: string, final: string): KeyName | undefined {
  const mod = params.split(";")[1];
  const word = mod === "3" || mod === "5"; // Alt or Ctrl with an arrow: a word
  switch (final) {
    case "A":
      return "up";
    case "B":
      return "down";
    case "C":
      return word ? "word-right" : "right";
    case "D":
      return word ? "word-left" : "left";
    case "H":
      return "home";
    case "F":
      return "end";
    case "~":
      switch (params.split(";")[0]) {
        case "1":
        case "7":
          return "home";
        case "4":
        case "8":
          return "end";
        case "3":
          return "delete";
      }
  }
  return undefined;
}

const SS3: Record<string, KeyName> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
};

/** Alt + a character (ESC then the character). */
const ALT: Record<string, KeyName> = {
  b: "word-left",
  f: "word-right",
  d: "delete-word-right",
  "\x7f": "delete-word-left",
  "\x08": "delete-word-left",
};

/** Pasted text made plain: line breaks as LF, no control characters but TAB and LF. */
export function cleanPaste(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters
  return text.replace(/\r\n?/g, "\n").replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, "");
}

/**
 * Turns chunks of terminal input into keys. Feed it decoded text with {@link push};
 * keys come out through the callback given to the constructor.
 */
export class KeyParser {
  readonly #emit: (key: Key) => void;
  #pending = "";
  #paste: string | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(emit: (key: Key) => void) {
    this.#emit = emit;
  }

  /** Adds input; emits every key it completes. */
  push(chunk: string): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#pending += chunk;
    this.#drain();
    if (this.#paste === null && this.#pending.startsWith("\x1b")) {
      // An incomplete sequence: wait a moment for the rest, then drop it.
      this.#timer = setTimeout(() => {
        this.#pending = "";
        this.#timer = null;
      }, ESC_WAIT_MS);
    }
  }

  #drain(): void {
    const s = this.#pending;
    let i = 0;
    let text = "";
    const flush = () => {
      if (text) this.#emit({ kind: "text", text });
      text = "";
    };
    while (i < s.length) {
      if (this.#paste !== null) {
        const end = s.indexOf(PASTE_END, i);
        if (end < 0) {
          // Keep a possible start of the end marker for the next chunk.
          const keep = partialSuffix(s, PASTE_END);
          this.#paste += s.slice(i, s.length - keep);
          i = s.length - keep;
          break;
        }
        this.#emit({ kind: "paste", text: cleanPaste(this.#paste + s.slice(i, end)) });
        this.#paste = null;
        i = end + PASTE_END.length;
        continue;
      }
      const c = s[i] as string;
      if (c === "\x1b") {
        flush();
        const used = this.#escape(s.slice(i, i + MAX_SEQUENCE));
        if (used === 0) break; // incomplete: wait for more
        i += used;
        continue;
      }
      const code = c.charCodeAt(0);
      if (code < 0x20 || code === 0x7f) {
        flush();
        const name = CONTROL[c];
        if (name) this.#emit({ kind: "key", name });
      } else if (code < 0x80 || code > 0x9f) {
        text += c; // (a C1 control typed is dropped: nothing to insert)
      }
      i++;
    }
    flush();
    this.#pending = s.slice(i);
  }

  /** Handles an escape sequence at the start of `s`; returns its length, or 0 if incomplete. */
  #escape(s: string): number {
    if (s.length < 2) return 0;
    const second = s[1] as string;
    if (second === "[") {
      const m = CSI.exec(s);
      // Incomplete: wait for the rest, unless it is already longer than any key's.
      if (!m) return CSI_START.test(s) && s.length < MAX_SEQUENCE ? 0 : 2;
      const [all, params = "", , final = ""] = m;
      if (final === "~" && params === "200") {
        this.#paste = "";
        return all.length;
      }
      const name = csiKey(params, final);
      if (name) this.#emit({ kind: "key", name });
      return all.length;
    }
    if (second === "O") {
      if (s.length < 3) return 0;
      const name = SS3[s[2] as string];
      if (name) this.#emit({ kind: "key", name });
      return 3;
    }
    const alt = ALT[second];
    if (alt) this.#emit({ kind: "key", name: alt });
    return second === "\x1b" ? 1 : 2;
  }
}

/** Length of the longest suffix of `s` that is a proper prefix of `marker`. */
function partialSuffix(s: string, marker: string): number {
  for (let n = Math.min(s.length, marker.length - 1); n > 0; n--) {
    if (s.endsWith(marker.slice(0, n))) return n;
  }
  return 0;
}
