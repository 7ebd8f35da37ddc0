/**
 * What `backbone chat` shows on a terminal above the input line (../tty/editor.ts):
 * every message and note is one block, escaped (nothing a peer or the server sends can
 * drive the terminal or pass for another line), wrapped with its continuation rows
 * indented; and the status line while the server is out of reach.
 */
import type { IncomingMessage } from "../../client/types.ts";
import { escapeBytes, escapeControls } from "../../text/escape.ts";
import { clock } from "../common.ts";
import { roomPrefix } from "../rooms-ui.ts";
import type { LineEditor } from "../tty/editor.ts";
import { width, wrapBlock } from "../tty/layout.ts";

/** Width of "[12:00:00] ": continuation rows of a message start under the sender. */
const MESSAGE_INDENT = 11;

export class ChatScreen {
  readonly editor: LineEditor;
  #countdown: ReturnType<typeof setInterval> | null = null;

  constructor(editor: LineEditor) {
    this.editor = editor;
  }

  /** A note: one block, escaped, wrapped with its continuation rows indented. */
  say(text: string): void {
    this.editor.print(wrapBlock("", [escapeControls(text)], 2, this.editor.columns));
  }

  /**
   * A message from `name`, with its time (when queued, for a stored one) and what it
   * was: stored, a broadcast, or (`e2e`: the chat encrypts) one that came in plaintext.
   */
  message(m: IncomingMessage, name: string, e2e: boolean): void {
    const tag =
      (m.stored ? " (while you were away)" : m.kind === "broadcast" ? " (to all)" : "") +
      // A plaintext message is shown as such, never as encrypted (rooms too).
      (e2e && m.e2e === false ? " (not end-to-end encrypted)" : "");
    const head = `[${clock(m.queuedAt ?? m.receivedAt)}] ${roomPrefix(m)}${escapeControls(name)}${tag}: `;
    const lines = escapeBytes(m.data, { multiline: true }).split("\n");
    this.editor.print(wrapBlock(head, lines, MESSAGE_INDENT, this.editor.columns));
  }

  /** The line as entered, under the prompt (`peerName> `) it was sent with. */
  record(text: string, peerName: string): void {
    const prompt = `${escapeControls(peerName)}> `;
    const lines = escapeControls(text, { multiline: true }).split("\n");
    this.editor.print(wrapBlock(prompt, lines, width(prompt), this.editor.columns));
  }

  /** The status line counts down to the next attempt to reach the server, every second. */
  countdown(why: string, delayMs: number): void {
    this.stopCountdown();
    const end = Date.now() + delayMs;
    const show = () => {
      const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      // The countdown first: on a narrow screen the reason is what gets cut.
      this.editor.setStatus(`* retrying in ${left} s: ${escapeControls(why)}`);
    };
    show();
    this.#countdown = setInterval(show, 1000);
  }

  stopCountdown(): void {
    if (this.#countdown) clearInterval(this.#countdown);
    this.#countdown = null;
  }
}
