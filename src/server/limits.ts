/**
 * Protection against abuse (docs/PROTOCOL.md § Limits): source prefixes, token
 * buckets and a semaphore for RSA work.
 */

/**
 * The prefix a source address is counted under: its /24 for IPv4 (and IPv4-mapped
 * IPv6), its /64 for IPv6. One host or one small network is one prefix.
 */
export function addressPrefix(address: string): string {
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.\d+$/i.exec(address);
  if (v4) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  const head = address.split("%")[0] ?? address;
  const [left = "", right] = head.split("::");
  const leftGroups = left ? left.split(":") : [];
  const rightGroups = right !== undefined && right !== "" ? right.split(":") : [];
  const missing = right === undefined ? 0 : 8 - leftGroups.length - rightGroups.length;
  const groups = [...leftGroups, ...Array(Math.max(0, missing)).fill("0"), ...rightGroups];
  const first4 = groups.slice(0, 4).map((g) => (Number.parseInt(g, 16) || 0).toString(16));
  while (first4.length < 4) first4.push("0");
  return `${first4.join(":")}::/64`;
}

/** Token buckets keyed by a string (a prefix, a client): `rate` per second, up to `burst`. */
export class RateLimiter {
  rate: number;
  burst: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(rate: number, burst: number) {
    this.rate = rate;
    this.burst = burst;
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string, now = performance.now()): boolean {
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets buckets that have refilled, so memory follows active sources only. */
  sweep(now = performance.now()): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.#buckets.delete(key);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }
}

/** Runs at most `limit` async tasks at once; the rest wait in order. */
export class Semaphore {
  limit: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the next waiter, so none can jump the queue.
    if (this.#running >= this.limit)
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }

  get waiting(): number {
    return this.#waiting.length;
  }
}

/**
 * Per-client budgets of server-side work (docs/PROTOCOL.md § Limits): a token bucket
 * of `rate` units per second holding at most `burst`, that may go into debt. A
 * request is always served once the balance is not negative — so a request dearer
 * than the burst (a broadcast to many) still goes through — and its cost is taken
 * afterwards; `charge` then says how long the client must wait before its next
 * request is read (delayed service: the connection's input waits, nothing is refused).
 */
export class WorkBudget {
  rate: number;
  burst: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(rate: number, burst: number) {
    this.rate = rate;
    this.burst = burst;
  }

  /** Takes `units` from `key`'s bucket; returns the ms until its balance is back at zero. */
  charge(key: string, units: number, now = performance.now()): number {
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    b.tokens -= units;
    return b.tokens >= 0 ? 0 : (-b.tokens / this.rate) * 1000;
  }

  /** Forgets buckets that have refilled, so memory follows active clients only. */
  sweep(now = performance.now()): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.#buckets.delete(key);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }
}
