/**
 * The terminal chat's input line: a prompt and the text being typed at the bottom of
 * the screen, an optional status line just above it, and everything else printed
 * above both — without ever mixing them up.
 *
 * Why not node:readline: it cannot take a bracketed paste as one piece (so a pasted
 * `/to carol` runs as a command), and text printed above a wrapped input line erases
 * rows it does not know about. Why not a terminal UI library (ink, blessed,
 * terminal-kit): they take over the whole screen or lack bracketed paste, for a job of
 * one input line. So this small editor, with widths from `string-width`.
 *
 * Drawing: the "area" (status line, then the input rows) is redrawn as a whole: the
 * cursor goes back to the area's first row (`CR`, `CUU n`), erases each of its rows
 * (`EL 2`), writes lines printed meanwhile, then the area again, with rows broken
 * explicitly (see ./layout.ts). The area is kept to the screen's height.
 */

import { type Key, KeyParser } from "./keys.ts";
import { graphemes, type Layout, layoutInput, width } from "./layout.ts";

const BRACKETED_PASTE_ON = "\x1b[?2004h";
const BRACKETED_PASTE_OFF = "\x1b[?2004l";

export interface EditorEvents {
  /** Enter: the text (LF between lines of a paste), and whether any of it was pasted. */
  line(text: string, pasted: boolean): void;
  /** Ctrl-C on an empty line. */
  interrupt(): void;
  /** Ctrl-D on an empty line. */
  eof(): void;
}

type Input = NodeJS.ReadStream & { setRawMode?: (mode: boolean) => unknown };

export class LineEditor {
  readonly #in: Input;
  readonly #out: NodeJS.WriteStream;
  readonly #on: EditorEvents;
  readonly #keys: KeyParser;
  readonly #decoder = new TextDecoder();
  #prompt = "> ";
  #status = "";
  #text: string[] = [];
  #cursor = 0;
  #pasted = false;
  #history: string[] = [];
  #historyAt = 0;
  #draft: string[] = [];
  /** Row of the cursor within the area as last drawn, counted from its first row. */
  #drawnCursorRow = 0;
  /** Rows of the area as last drawn. */
  #drawnRows = 0;
  #active = false;
  readonly #onData = (chunk: Uint8Array) =>
    this.#keys.push(this.#decoder.decode(chunk, { stream: true }));
  /** Widths of the rows as last drawn, and the cursor's column then. */
  #drawnWidths: number[] = [];
  #drawnCursorCol = 0;
  readonly #onResize = () => {
    this.#reflowed(this.columns);
    this.#redraw("");
  };

  constructor(input: NodeJS.ReadStream, output: NodeJS.WriteStream, on: EditorEvents) {
    this.#in = input as Input;
    this.#out = output;
    this.#on = on;
    this.#keys = new KeyParser((k) => this.#key(k));
  }

  /** Takes the terminal: raw input, bracketed paste, the area drawn. */
  start(): void {
    if (this.#active) return;
    this.#active = true;
    this.#in.setRawMode?.(true);
    this.#in.on("data", this.#onData);
    this.#in.resume();
    this.#out.on("resize", this.#onResize);
    this.#out.write(BRACKETED_PASTE_ON);
    this.#redraw("");
  }

  /**
   * Gives the terminal back: the status line removed, the input line left as typed,
   * the cursor on a new line below it, the terminal's modes as they were.
   */
  stop(): void {
    if (!this.#active) return;
    this.#status = "";
    const layout = this.#redraw("");
    const down = layout.rows.length - 1 - layout.cursorRow;
    this.#out.write(`${down > 0 ? `\x1b[${down}B` : ""}\r\n${BRACKETED_PASTE_OFF}`);
    this.#active = false;
    this.#in.off("data", this.#onData);
    this.#out.off("resize", this.#onResize);
    this.#in.setRawMode?.(false);
    this.#in.pause();
  }

  /** Prints rows above the area (each at most the screen's width: see wrapBlock). */
  print(rows: string[]): void {
    if (!this.#active) {
      this.#out.write(rows.map((r) => `${r}\n`).join(""));
      return;
    }
    this.#redraw(rows.map((r) => `${r}\r\n`).join(""));
  }

  /** Sets the status line (one row above the input; "" for none). */
  setStatus(text: string): void {
    if (text === this.#status) return;
    this.#status = text;
    if (this.#active) this.#redraw("");
  }

  setPrompt(prompt: string): void {
    this.#prompt = prompt;
    if (this.#active) this.#redraw("");
  }

  /** The screen's width in cells. */
  get columns(): number {
    return this.#out.columns || 80;
  }

  /** What is typed so far. */
  get text(): string {
    return this.#text.join("");
  }

  #key(k: Key): void {
    if (k.kind === "text" || k.kind === "paste") {
      if (k.kind === "paste") this.#pasted = true;
      this.#insert(graphemes(k.text));
    } else {
      this.#named(k.name);
    }
    if (this.#active) this.#redraw("");
  }

  #insert(gs: string[]): void {
    this.#text.splice(this.#cursor, 0, ...gs);
    this.#cursor += gs.length;
    // Typing after a combining mark or into an emoji sequence can join clusters.
    const joined = graphemes(this.#text.join(""));
    if (joined.length !== this.#text.length) {
      const before = graphemes(this.#text.slice(0, this.#cursor).join("")).length;
      this.#text = joined;
      this.#cursor = before;
    }
  }

  #set(text: string[]): void {
    this.#text = text;
    this.#cursor = text.length;
    if (text.length === 0) this.#pasted = false;
  }

  #named(name: string): void {
    const t = this.#text;
    switch (name) {
      case "enter": {
        const line = this.text;
        const pasted = this.#pasted;
        if (line.trim() && this.#history.at(-1) !== line) this.#history.push(line);
        this.#historyAt = this.#history.length;
        this.#set([]);
        this.#on.line(line, pasted);
        return;
      }
      case "interrupt":
        // As in a shell: Ctrl-C first drops a half-typed line, then leaves.
        if (t.length > 0) this.#set([]);
        else this.#on.interrupt();
        return;
      case "eof":
        if (t.length > 0) this.#deleteAt(this.#cursor);
        else this.#on.eof();
        return;
      case "backspace":
        if (this.#cursor > 0) this.#deleteAt(--this.#cursor);
        return;
      case "delete":
        this.#deleteAt(this.#cursor);
        return;
      case "left":
        this.#cursor = Math.max(0, this.#cursor - 1);
        return;
      case "right":
        this.#cursor = Math.min(t.length, this.#cursor + 1);
        return;
      case "home":
        this.#cursor = 0;
        return;
      case "end":
        this.#cursor = t.length;
        return;
      case "word-left":
        this.#cursor = wordStart(t, this.#cursor);
        return;
      case "word-right":
        this.#cursor = wordEnd(t, this.#cursor);
        return;
      case "delete-word-left": {
        const from = wordStart(t, this.#cursor);
        t.splice(from, this.#cursor - from);
        this.#cursor = from;
        return;
      }
      case "delete-word-right":
        t.splice(this.#cursor, wordEnd(t, this.#cursor) - this.#cursor);
        return;
      case "kill-to-start":
        t.splice(0, this.#cursor);
        this.#cursor = 0;
        return;
      case "kill-to-end":
        t.splice(this.#cursor);
        return;
      case "tab":
        this.#insert(["\t"]);
        return;
      case "up":
      case "down":
        this.#recall(name === "up" ? -1 : 1);
        return;
      case "redraw":
        this.#out.write("\x1b[H\x1b[2J");
        this.#drawnCursorRow = 0;
        this.#drawnRows = 0;
        return;
    }
  }

  #deleteAt(i: number): void {
    if (i < this.#text.length) this.#text.splice(i, 1);
    if (this.#text.length === 0) this.#pasted = false;
  }

  /** Up/Down through the lines entered before; the line being typed is kept as a draft. */
  #recall(step: number): void {
    const at = this.#historyAt + step;
    if (at < 0 || at > this.#history.length) return;
    if (this.#historyAt === this.#history.length) this.#draft = this.#text;
    this.#historyAt = at;
    const pasted = this.#pasted;
    this.#set(at === this.#history.length ? this.#draft : graphemes(this.#history[at] as string));
    this.#pasted = pasted && at === this.#history.length;
  }

  /**
   * Erases the area as last drawn, row by row (EL), leaving the cursor at its first
   * row. Not ED: tmux (scroll-on-clear) moves the whole screen into the scrollback when
   * ED runs from the top-left corner, which would leave stale copies of the area there.
   */
  #erase(): string {
    const up = this.#drawnCursorRow;
    let out = `\r${up > 0 ? `\x1b[${up}A` : ""}`;
    for (let i = 0; i < this.#drawnRows; i++) out += i === 0 ? "\x1b[2K" : "\x1b[1B\x1b[2K";
    if (this.#drawnRows > 1) out += `\x1b[${this.#drawnRows - 1}A`;
    return out;
  }

  /**
   * Where the area drawn is after the screen became `cols` wide. Terminals that reflow
   * (tmux, VTE, iTerm2, kitty, Windows Terminal) split each row wider than the new
   * width; rows that fit stay as they are (ours end in hard line breaks).
   */
  #reflowed(cols: number): void {
    const rowsOf = (w: number) => Math.max(1, Math.ceil(w / Math.max(cols, 1)));
    const before = this.#drawnWidths.slice(0, this.#drawnCursorRow);
    this.#drawnCursorRow =
      before.reduce((n, w) => n + rowsOf(w), 0) +
      Math.floor(this.#drawnCursorCol / Math.max(cols, 1));
    this.#drawnRows = this.#drawnWidths.reduce((n, w) => n + rowsOf(w), 0);
  }

  /** Erases the area, writes `above`, draws the area again. Returns the input's layout. */
  #redraw(above: string): Layout {
    const cols = this.columns;
    const layout = layoutInput(this.#prompt, this.#text, this.#cursor, cols);
    const status = this.#status ? [fit(this.#status, cols)] : [];
    // Keep the area within the screen: show the input rows around the cursor.
    const room = Math.max(1, (this.#out.rows || 24) - 1 - status.length);
    const first = Math.max(0, Math.min(layout.cursorRow - room + 1, layout.rows.length - room));
    const rows = [...status, ...layout.rows.slice(first, first + room)];
    const cursorRow = status.length + layout.cursorRow - first;
    let out = `${this.#erase()}${above}${rows.join("\r\n")}`;
    const back = rows.length - 1 - cursorRow;
    out += `${back > 0 ? `\x1b[${back}A` : ""}\r${layout.cursorCol > 0 ? `\x1b[${layout.cursorCol}C` : ""}`;
    this.#out.write(out);
    this.#drawnCursorRow = cursorRow;
    this.#drawnRows = rows.length;
    this.#drawnWidths = rows.map(width);
    this.#drawnCursorCol = layout.cursorCol;
    return { rows, cursorRow, cursorCol: layout.cursorCol };
  }
}

/** `text` cut to `cols` cells, with an ellipsis when cut. */
function fit(text: string, cols: number): string {
  if (width(text) <= cols) return text;
  let out = "";
  for (const g of graphemes(text)) {
    if (width(out + g) > cols - 1) break;
    out += g;
  }
  return `${out}…`;
}

const isWord = (g: string | undefined) => g !== undefined && /[\p{L}\p{N}_]/u.test(g);

function wordStart(t: string[], from: number): number {
  let i = from;
  while (i > 0 && !isWord(t[i - 1])) i--;
  while (i > 0 && isWord(t[i - 1])) i--;
  return i;
}

function wordEnd(t: string[], from: number): number {
  let i = from;
  while (i < t.length && !isWord(t[i])) i++;
  while (i < t.length && isWord(t[i])) i++;
  return i;
}
