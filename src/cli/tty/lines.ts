/**
 * One message as output lines for `listen` and piped `chat`: one line through a pipe
 * or into a file; on a terminal the same line wrapped here, its continuation rows
 * indented, so that text padded to the screen's width cannot start a row that looks
 * like another message (the terminal's own wrapping would put it at column 0).
 */
import { wrapBlock } from "./layout.ts";

/** Continuation rows start under the text, past "[12:00:00] ". */
const INDENT = 11;

/**
 * `head` then `body` (both already escaped: no control characters) as text to write,
 * ending with a newline.
 */
export function messageText(
  head: string,
  body: string,
  out: NodeJS.WriteStream = process.stdout,
): string {
  if (!out.isTTY) return `${head}${body}\n`;
  return `${wrapBlock(head, [body], INDENT, out.columns || 80).join("\n")}\n`;
}
