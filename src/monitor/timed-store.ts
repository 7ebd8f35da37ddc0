/**
 * A `Store` that times every call into a latency histogram (the monitor's
 * `backbone_store_latency_seconds`) and remembers the last failure, for /healthz.
 * The server is handed this wrapper instead of the store when the monitor runs.
 */
import type { EnqueueResult, Store } from "../store/store.ts";

/** Store calls timed, one histogram child each (bound once: no label lookup per call). */
export const STORE_OPS = [
  "getClient",
  "findClient",
  "countClients",
  "setPresence",
  "enqueue",
  "peek",
  "remove",
  "expire",
  "pendingCount",
  "version",
  "probe",
] as const;
export type StoreOp = (typeof STORE_OPS)[number];

/** Where timings go: `observe(op, seconds)`. */
export interface StoreTimer {
  observe(op: StoreOp, seconds: number): void;
}

/** A failure seen in real traffic counts against health this long, unless the same call succeeds sooner. */
export const FAILURE_WINDOW_MS = 30_000;

export interface StoreFailure {
  op: string;
  message: string;
  /** Unix ms. */
  at: number;
}

/** The wrapper and what it saw. */
export interface TimedStore {
  store: Store;
  /**
   * The latest failed write of the last FAILURE_WINDOW_MS among the kinds of write that
   * have not succeeded since; null when none.
   */
  lastFailure(): StoreFailure | null;
}

export function timedStore(inner: Store, timer: StoreTimer): TimedStore {
  const failures = new Map<string, StoreFailure>();
  const writes = new Set(["setPresence", "enqueue", "remove", "expire", "probe"]);
  const timed: Record<string, unknown> = {};
  for (const op of STORE_OPS) {
    const fn = (inner as unknown as Record<string, unknown>)[op];
    if (typeof fn !== "function") continue;
    const call = fn as (...args: unknown[]) => Promise<unknown>;
    timed[op] = async (...args: unknown[]) => {
      const t0 = performance.now();
      try {
        const result = await call.apply(inner, args);
        if (writes.has(op)) {
          // enqueue answers a storage failure instead of throwing.
          const failed =
            op === "enqueue" &&
            (result as EnqueueResult[]).find((r) => !r.ok && r.failure === true);
          if (failed && !failed.ok)
            failures.set(op, { op, message: failed.reason, at: Date.now() });
          else failures.delete(op);
        }
        return result;
      } catch (err) {
        if (writes.has(op))
          failures.set(op, {
            op,
            message: err instanceof Error ? err.message : String(err),
            at: Date.now(),
          });
        throw err;
      } finally {
        timer.observe(op, (performance.now() - t0) / 1000);
      }
    };
  }
  const lastFailure = () => {
    let last: StoreFailure | null = null;
    const since = Date.now() - FAILURE_WINDOW_MS;
    for (const f of failures.values()) if (f.at >= since && (!last || f.at > last.at)) last = f;
    return last;
  };
  // Everything else of the store as it is — methods bound to it (a class store keeps
  // private fields), and properties too (`keys`, the E2E key directory, among them).
  const store = new Proxy(inner, {
    get(target, name, receiver) {
      if (typeof name === "string" && name in timed) return timed[name];
      const v = Reflect.get(target, name, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { store, lastFailure };
}
