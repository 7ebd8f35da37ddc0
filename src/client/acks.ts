/**
 * Acknowledged delivery on the client (docs/PROTOCOL.md § ACK): counts the stored
 * messages of the current connection and sends ACK with the count of those handled.
 * A stored message queued in a `messages()` iterator counts as handled only once the
 * loop body has finished with it, so a process killed meanwhile gets it again.
 */
export class StoredAcks {
  readonly #send: (count: number) => void;
  #seen = 0;
  #unfinished = 0;
  #generation = 0;
  #scheduled = false;

  /** `send(count)`: sends ACK `count` on the current connection, if it is open. */
  constructor(send: (count: number) => void) {
    this.#send = send;
  }

  /** A new connection: its count starts at 0. */
  reset(): void {
    this.#seen = 0;
    this.#unfinished = 0;
    this.#generation++;
  }

  /** A stored message arrived and its listeners have run: acknowledged at the end of this turn. */
  received(): void {
    this.#seen++;
    this.#schedule();
  }

  /** An iterator queued a stored message; returns the token to give `release`. */
  hold(): number {
    this.#unfinished++;
    return this.#generation;
  }

  /** The iterator's loop has handled a message held with `token`. */
  release(token: number): void {
    if (token !== this.#generation || this.#unfinished === 0) return; // an earlier connection's
    this.#unfinished--;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#send(this.#seen - this.#unfinished);
    });
  }
}
