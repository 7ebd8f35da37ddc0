/**
 * Runs async tasks one after another per key, in call order: the store writes for
 * one recipient never overtake each other, whatever the store backend.
 */
export class KeyedSerial {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Queues `task` behind every earlier task for `key`; resolves with its result. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key);
    const next = prev ? prev.then(task, task) : task();
    const tail = next.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }

  /**
   * Resolves once nothing is queued for `key` any more: every task queued so far has
   * finished, and so has every task queued for it while waiting.
   */
  async idle(key: string): Promise<void> {
    for (let tail = this.#tails.get(key); tail; tail = this.#tails.get(key)) await tail;
  }

  /** Resolves once every task queued so far has finished. */
  async idleAll(): Promise<void> {
    await Promise.all(this.#tails.values());
  }
}
