/**
 * `/healthz` and the figures sampled rather than counted: the health check, the
 * event-loop lag, descriptors in use and the offline queue depth.
 *
 * Healthy (200) means: the server accepts logins (listening, not shutting down, with
 * descriptors to spare) and its store answers a committed write within
 * PROBE_TIMEOUT_MS with room on its disk. Otherwise 503 with a one-line reason.
 */
import { readdirSync, readFileSync, statfsSync } from "node:fs";
import type { MonitorTarget } from "./target.ts";
import type { TimedStore } from "./timed-store.ts";

/** A store that does not answer within this is unhealthy. */
export const PROBE_TIMEOUT_MS = 2000;
/** Health is worked out at most this often; callers in between share the answer. */
const HEALTH_TTL_MS = 1000;
/** Descriptors kept free: fewer than this left and new logins would fail (EMFILE). */
export const FD_RESERVE = 16;
/** Free space below this on the store's disk: writes are about to fail. */
export const MIN_FREE_BYTES = 1024 * 1024;
/** The event-loop probe's timer period. */
const LAG_TICK_MS = 100;

export interface Health {
  ok: boolean;
  /** One line: "ok" or why not. */
  reason: string;
}

export interface ProbeOptions {
  /** The directory holding the store's files (free space is checked there), if on disk. */
  dataDir?: string;
  timed?: TimedStore;
}

export class Probe {
  #target: MonitorTarget | null = null;
  readonly #opts: ProbeOptions;
  #health: { at: number; value: Promise<Health> } | null = null;
  #queue = 0;
  #queueBusy = false;
  #lag = 0;
  #lagMax = 0;
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(opts: ProbeOptions = {}) {
    this.#opts = opts;
  }

  /** Starts sampling `target`. */
  attach(target: MonitorTarget): void {
    this.#target = target;
    let expected = performance.now() + LAG_TICK_MS;
    let ticks = 0;
    this.#timers.push(
      setInterval(() => {
        const now = performance.now();
        this.#lagMax = Math.max(this.#lagMax, now - expected);
        expected = now + LAG_TICK_MS;
        if (++ticks % (1000 / LAG_TICK_MS) === 0) {
          this.#lag = this.#lagMax / 1000;
          this.#lagMax = 0;
        }
      }, LAG_TICK_MS),
    );
    for (const t of this.#timers) t.unref?.();
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /** Largest event-loop delay over the last second, in seconds. */
  get lagSeconds(): number {
    return this.#lag;
  }

  /** Messages held in the store (the last answer; refreshed at most once at a time). */
  async queueDepth(): Promise<number> {
    const t = this.#target;
    if (!t || this.#queueBusy) return this.#queue;
    this.#queueBusy = true;
    try {
      this.#queue = await t.store.pendingCount();
    } catch {
      // kept: the health check reports the store
    } finally {
      this.#queueBusy = false;
    }
    return this.#queue;
  }

  /** The last queue depth read, without asking the store. */
  get lastQueueDepth(): number {
    return this.#queue;
  }

  /**
   * Descriptors open and the soft limit (NaN where /proc is missing); `exhausted` when
   * there was none left even to read /proc.
   */
  descriptors(): { open: number; max: number; exhausted: boolean } {
    try {
      const line = /^Max open files\s+(\d+|unlimited)/m.exec(
        readFileSync("/proc/self/limits", "utf8"),
      );
      const max = line?.[1] === "unlimited" ? Infinity : Number(line?.[1]);
      // The listing's own descriptor is counted in it: not one the server holds.
      const open = readdirSync("/proc/self/fd").length - 1;
      return { open, max, exhausted: false };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      return {
        open: Number.NaN,
        max: Number.NaN,
        exhausted: code === "EMFILE" || code === "ENFILE",
      };
    }
  }

  /** The health answer, worked out at most once per HEALTH_TTL_MS. */
  check(): Promise<Health> {
    if (this.#target?.closing) return Promise.resolve({ ok: false, reason: "shutting down" });
    const now = performance.now();
    if (this.#health && now - this.#health.at < HEALTH_TTL_MS) return this.#health.value;
    const value = this.#check();
    this.#health = { at: now, value };
    return value;
  }

  async #check(): Promise<Health> {
    const t = this.#target;
    if (!t) return { ok: false, reason: "starting" };
    if (t.closing) return { ok: false, reason: "shutting down" };
    const fd = this.descriptors();
    if (fd.exhausted) return { ok: false, reason: "out of descriptors (none left)" };
    if (t.acceptPaused) {
      return {
        ok: false,
        reason: `out of descriptors (${fd.open} of ${fd.max} in use; not accepting)`,
      };
    }
    if (fd.max - fd.open < FD_RESERVE) {
      return { ok: false, reason: `out of descriptors (${fd.open} of ${fd.max} in use)` };
    }
    const store = await this.#storeHealth(t);
    if (store) return { ok: false, reason: store };
    return { ok: true, reason: "ok" };
  }

  /** Why the store is not healthy, or null. */
  async #storeHealth(t: MonitorTarget): Promise<string | null> {
    const { dataDir, timed } = this.#opts;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`store not answering within ${PROBE_TIMEOUT_MS / 1000} s`),
        PROBE_TIMEOUT_MS,
      );
    });
    const answer = (async () => {
      try {
        if (t.store.probe) await t.store.probe();
        else await t.store.countClients();
        return null;
      } catch (err) {
        return `store unwritable: ${oneLine(err instanceof Error ? err.message : String(err))}`;
      }
    })();
    const failed = await Promise.race([answer, late]).finally(() => clearTimeout(timer));
    if (failed) return failed;
    if (dataDir) {
      try {
        const fs = statfsSync(dataDir);
        const free = fs.bavail * fs.bsize;
        if (free < MIN_FREE_BYTES)
          return `store unwritable: disk full (${Math.floor(free / 1024)} KiB free)`;
      } catch (err) {
        return `store unreachable: ${oneLine(err instanceof Error ? err.message : String(err))}`;
      }
    }
    const last = timed?.lastFailure();
    if (last) return `store unwritable: ${last.op} failed: ${oneLine(last.message)}`;
    return null;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim().slice(0, 200);
}
