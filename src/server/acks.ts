/**
 * Acknowledged delivery on the server (docs/PROTOCOL.md § ACK): the running count of
 * stored messages a connection's client has acknowledged, and waiters for a count.
 */
export class StoredAcks {
  /** Set once the client sent ACK: stored messages are kept until it acknowledges them. */
  acking = false;
  /** Stored messages the client has acknowledged on this connection. */
  count = 0;
  #waiters: { count: number; resolve: () => void }[] | null = null;
  #ended = false;

  /** ACK from the client: it has received `count` stored messages on this connection. */
  onAck(count: number): void {
    this.acking = true;
    if (count <= this.count) return;
    this.count = count;
    this.#wake();
  }

  /** Resolves once `count` stored messages are acknowledged, or the connection ended. */
  when(count: number): Promise<void> {
    if (this.count >= count || this.#ended) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters ??= [];
      this.#waiters.push({ count, resolve });
    });
  }

  /** The connection is gone: every waiter wakes. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    if (!waiters) return;
    const all = this.#ended;
    this.#waiters = waiters.filter((w) => !all && w.count > this.count);
    for (const w of waiters) if (all || w.count <= this.count) w.resolve();
    if (this.#waiters.length === 0) this.#waiters = null;
  }
}
