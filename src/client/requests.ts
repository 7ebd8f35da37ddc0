/**
 * Requests waiting for their answers. The server answers HEARTBEAT, SERVER_STATUS and
 * CLIENT_STATUS in request order, so one FIFO per type pairs answers with requests.
 */
import { ConnectionError } from "../errors.ts";

interface Waiter {
  resolve: ((body: Uint8Array) => void) | null;
  reject: ((err: Error) => void) | null;
  timer: ReturnType<typeof setTimeout> | null;
}

export class Requests {
  readonly #fifo = new Map<number, Waiter[]>();

  /**
   * Registers a request of `type`. With a timeout (ms), returns the promise of its
   * answer; with `null` (an automatic heartbeat), only keeps the FIFO in step.
   */
  expect(type: number, timeoutMs: number): Promise<Uint8Array>;
  expect(type: number, timeoutMs: null): void;
  expect(type: number, timeoutMs: number | null): Promise<Uint8Array> | undefined {
    let fifo = this.#fifo.get(type);
    if (!fifo) {
      fifo = [];
      this.#fifo.set(type, fifo);
    }
    if (timeoutMs === null) {
      fifo.push({ resolve: null, reject: null, timer: null });
      return;
    }
    const list = fifo;
    return new Promise<Uint8Array>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: null };
      waiter.timer = setTimeout(() => {
        waiter.resolve = null;
        waiter.reject = null;
        reject(new ConnectionError("TIMEOUT", "the server did not answer in time"));
      }, timeoutMs);
      list.push(waiter);
    });
  }

  /** An answer of `type` arrived: it belongs to the oldest request of that type. */
  answer(type: number, body: Uint8Array): void {
    const waiter = this.#fifo.get(type)?.shift();
    if (!waiter) return;
    if (waiter.timer) clearTimeout(waiter.timer);
    waiter.resolve?.(body);
  }

  /** The connection is gone: every pending request fails with `err`. */
  failAll(err: Error): void {
    for (const fifo of this.#fifo.values()) {
      for (const w of fifo.splice(0)) {
        if (w.timer) clearTimeout(w.timer);
        w.reject?.(err);
      }
    }
  }
}
