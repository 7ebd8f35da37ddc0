/**
 * A tiny seeded PRNG (mulberry32) for property tests: the same seed gives the same
 * cases on every run, so a failure can be reproduced from the seed in its test name.
 * Not for anything secret.
 */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform u32. */
  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + (this.u32() % (hi - lo + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)] as T;
  }

  /** `length` pseudo-random bytes. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /**
   * A length biased towards the edges: often 0, 1 or `max`, otherwise uniform, so
   * boundaries are hit without thousands of cases.
   */
  length(max: number): number {
    const r = this.int(0, 9);
    if (r === 0) return 0;
    if (r === 1) return Math.min(1, max);
    if (r === 2) return max;
    return this.int(0, max);
  }
}
