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

  /** Resolves once every task queued so far for `key` has finished. */
  async idle(key: string): Promise<void> {
    await this.#tails.get(key);
  }

  /** Resolves once every task queued so far has finished. */
  async idleAll(): Promise<void> {
    await Promise.all(this.#tails.values());
  }
}
