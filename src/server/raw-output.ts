/**
 * What a connection writes before its session exists (the challenge, a refusal): plain
 * frames with their own backlog, written by the connection's `drain` before anything
 * sealed. Not on the message path (the outbox writes everything after the login).
 */
import type { Socket } from "bun";

export class RawOutput {
  readonly #socket: Socket<unknown>;
  /** Bytes the socket has not taken yet. */
  #pending: Uint8Array | null = null;
  /** Bytes handed to the socket. */
  bytesOut = 0;

  constructor(socket: Socket<unknown>) {
    this.#socket = socket;
  }

  /** True while written bytes still wait for `drain`. */
  get waiting(): boolean {
    return this.#pending !== null;
  }

  /** Writes `bytes` after any still waiting; what the socket does not take waits. */
  write(bytes: Uint8Array): void {
    if (this.#pending) {
      this.#pending = Buffer.concat([this.#pending, bytes]);
      return;
    }
    const n = this.#socket.write(bytes);
    if (n > 0) this.bytesOut += n;
    if (n >= 0 && n < bytes.length) this.#pending = bytes.subarray(n);
  }

  /** On `drain`: writes what waits. False when nothing was waiting (the outbox's turn). */
  drain(): boolean {
    const pending = this.#pending;
    if (!pending) return false;
    this.#pending = null;
    this.write(pending);
    return true;
  }
}
