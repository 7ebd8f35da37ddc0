/**
 * Where text lands on a terminal `cols` columns wide: grapheme clusters (UAX #29, by
 * `Intl.Segmenter`) and their widths in cells (UAX #11 East Asian Width and emoji, by
 * `string-width`). A wide character that does not fit at the end of a row goes to the
 * next one, as xterm and tmux place it. Rows are broken here, explicitly, so that what
 * is drawn never depends on a terminal's auto-wrap state.
 */
import stringWidth from "string-width";

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** `text` as grapheme clusters. */
export function graphemes(text: string): string[] {
  return Array.from(segmenter.segment(text), (s) => s.segment);
}

/** Cells a TAB takes in the input line (it is sent as a TAB). */
const TAB_CELLS = 4;

/**
 * Cells one grapheme takes, erring wide. Terminals disagree on clusters of several
 * code points: tmux 3.3 draws 👍🏽 (emoji + skin tone) in 4 cells where string-width
 * says 2, but ❤️ (with VS16) in 1 where it says 2. Taking the larger of the cluster's
 * width and the sum of its code points' keeps every row within the screen on either
 * kind of terminal (a row that overflowed would wrap on its own and leave stale rows
 * behind); the price is a cursor a few cells off after such a cluster.
 */
function graphemeWidth(g: string): number {
  const whole = stringWidth(g);
  if ([...g].length === 1) return whole;
  let sum = 0;
  for (const cp of g) sum += stringWidth(cp);
  return Math.max(whole, sum);
}

/** How one grapheme is drawn: its text and its width in cells. */
function cell(g: string): { text: string; width: number } {
  if (g === "\t") return { text: " ".repeat(TAB_CELLS), width: TAB_CELLS };
  return { text: g, width: graphemeWidth(g) };
}

/** Width of `text` in cells (no control characters in it), erring wide as above. */
export function width(text: string): number {
  let w = 0;
  for (const g of graphemes(text)) w += graphemeWidth(g);
  return w;
}

export interface Layout {
  /** The rows as drawn, each at most `cols` cells. */
  rows: string[];
  /** Row and column of the cursor. */
  cursorRow: number;
  cursorCol: number;
}

/**
 * Lays out `prompt` followed by the graphemes `text` with the cursor before
 * `text[cursor]`. LF in `text` starts a new row, indented by the prompt's width.
 */
export function layoutInput(prompt: string, text: string[], cursor: number, cols: number): Layout {
  const c = Math.max(cols, 2);
  const rows: string[] = [""];
  let col = 0;
  let pendingBreak = false;
  const newRow = () => {
    rows.push("");
    col = 0;
    pendingBreak = false;
  };
  const place = (g: { text: string; width: number }) => {
    if (pendingBreak || col + g.width > c) newRow();
    rows[rows.length - 1] += g.text;
    col += g.width;
    if (col >= c) pendingBreak = true;
  };
  for (const g of graphemes(prompt)) place(cell(g));
  const indent = Math.min(width(prompt), Math.floor(c / 2));
  let cursorRow = 0;
  let cursorCol = 0;
  const mark = (next: { width: number } | null) => {
    // The cursor sits where the next cell will be drawn.
    if (pendingBreak || (next && col + next.width > c)) {
      cursorRow = rows.length;
      cursorCol = 0;
    } else {
      cursorRow = rows.length - 1;
      cursorCol = col;
    }
  };
  for (let i = 0; i < text.length; i++) {
    const g = text[i] as string;
    const drawn = g === "\n" ? null : cell(g);
    if (i === cursor) mark(drawn);
    if (drawn) {
      place(drawn);
    } else {
      newRow();
      rows[rows.length - 1] = " ".repeat(indent);
      col = indent;
    }
  }
  if (cursor >= text.length) mark(null);
  if (cursorRow >= rows.length) rows.push("");
  return { rows, cursorRow, cursorCol };
}

/**
 * Lines of a block (a message, a note) wrapped to `cols` cells, at spaces where it
 * can: the first row starts with `head`, every other row — a wrapped row or a line
 * after an LF — with `indent` spaces, so that no row of the block can pass for the
 * start of another block. The lines must hold no control characters (escape them first).
 */
export function wrapBlock(head: string, lines: string[], indent: number, cols: number): string[] {
  const c = Math.max(cols, 2);
  const pad = cellsOf(" ".repeat(Math.max(1, Math.min(indent, Math.floor(c / 2)))));
  const out: string[] = [];
  let row: Cell[] = [];
  let fixed = 0; // cells at the start of the row that never move (head or indent)
  let col = 0;
  const flush = () => out.push(row.map((x) => x.text).join(""));
  const start = (prefix: Cell[]) => {
    row = [...prefix];
    fixed = row.length;
    col = sum(row);
  };
  const put = (x: Cell) => {
    if (col + x.width > c) {
      // Carry the word being written over to the next row, when it started after a space.
      let at = row.length;
      while (at > fixed && row[at - 1]?.text !== " ") at--;
      const fits = sum(row.slice(at)) + sum(pad) + x.width <= c;
      const carried = at > fixed && x.text !== " " && fits ? row.splice(at) : [];
      flush();
      // A cluster wider than the room beside the indent (only on a very narrow
      // screen) starts its row unindented: it cannot be taken for a message header.
      start(x.width + sum(pad) > c ? [] : pad);
      for (const y of carried) {
        row.push(y);
        col += y.width;
      }
      if (x.text === " ") return; // a space at the break is the break
    }
    row.push(x);
    col += x.width;
  };
  start([]);
  for (const x of cellsOf(head)) put(x); // a head longer than a row wraps like text
  lines.forEach((line, n) => {
    if (n > 0) {
      flush();
      start(pad);
    }
    for (const x of cellsOf(line)) put(x);
  });
  flush();
  return out;
}

type Cell = { text: string; width: number };

function cellsOf(text: string): Cell[] {
  return graphemes(text).map(cell);
}

function sum(cells: Cell[]): number {
  return cells.reduce((n, x) => n + x.width, 0);
}
