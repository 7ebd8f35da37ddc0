/**
 * The status page's data: one sample per second of the core's counters, kept for
 * HISTORY_SECONDS, and the refusals seen (as counter increases per second, by reason).
 * Pushed to the page's open event streams as each sample is taken.
 */
import type { Probe } from "./probe.ts";
import { type MonitorTarget, type NodeInfo, refusals, rejections, traffic } from "./target.ts";

/** How far back the chart goes. */
export const HISTORY_SECONDS = 600;
/** Refusal events kept. */
const REFUSALS_KEPT = 50;

export interface Sample {
  /** Unix ms. */
  t: number;
  clients: number;
  connections: number;
  /** Messages clients sent, and messages handed to recipients, per second. */
  inPerSec: number;
  outPerSec: number;
  bytesInPerSec: number;
  bytesOutPerSec: number;
  queue: number;
  pendingBytes: number;
}

export interface Refusal {
  /** Unix ms. */
  t: number;
  /** "handshake" or "message" or "connection". */
  what: string;
  reason: string;
  count: number;
}

export interface Snapshot {
  node: string;
  version: string;
  started: number;
  health: { ok: boolean; reason: string };
  samples: Sample[];
  refusals: Refusal[];
  nodes: NodeInfo[];
}

type Totals = Record<string, number>;

function totals(t: MonitorTarget): Totals {
  const s = t.stats;
  const tr = traffic(t);
  const out: Totals = {
    in: s.receivedDirect + s.receivedBroadcast,
    out: s.deliveredDirect + s.deliveredBroadcast + s.deliveredStored,
    bytesIn: tr.bytesIn,
    bytesOut: tr.bytesOut,
    pending: tr.pendingBytes,
    "connection slow_consumer": s.slowConsumers,
    "connection protocol_error": s.protocolErrors,
    "handshake auth_failed": s.authFailures,
    "handshake timeout": s.handshakeTimeouts,
  };
  for (const [k, v] of Object.entries(refusals(s))) out[`handshake ${k}`] = v;
  for (const [k, v] of Object.entries(rejections(s))) out[`message ${k}`] = v;
  return out;
}

export class History {
  readonly samples: Sample[] = [];
  readonly refusals: Refusal[] = [];
  readonly #listeners = new Set<(s: Sample, r: Refusal[]) => void>();
  #last: Totals | null = null;
  #lastAt = 0;
  #timer: ReturnType<typeof setInterval> | null = null;

  /** Samples `target` every second until `stop`. */
  start(target: MonitorTarget, probe: Probe): void {
    this.#last = totals(target);
    this.#lastAt = performance.now();
    this.#timer = setInterval(() => void this.#sample(target, probe), 1000);
    this.#timer.unref?.();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#listeners.clear();
  }

  /** Calls `fn` with each new sample and the refusals it found; returns the unsubscribe. */
  subscribe(fn: (s: Sample, r: Refusal[]) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async #sample(target: MonitorTarget, probe: Probe): Promise<void> {
    const now = performance.now();
    const cur = totals(target);
    const prev = this.#last ?? cur;
    const seconds = Math.max(0.001, (now - this.#lastAt) / 1000);
    this.#last = cur;
    this.#lastAt = now;
    const rate = (k: string) => Math.round(((cur[k] ?? 0) - (prev[k] ?? 0)) / seconds);
    const t = Date.now();
    const sample: Sample = {
      t,
      clients: target.router.online.size,
      connections: target.connectionCount,
      inPerSec: rate("in"),
      outPerSec: rate("out"),
      bytesInPerSec: rate("bytesIn"),
      bytesOutPerSec: rate("bytesOut"),
      queue: await probe.queueDepth(),
      pendingBytes: cur.pending ?? 0,
    };
    const found: Refusal[] = [];
    for (const [key, v] of Object.entries(cur)) {
      if (!key.includes(" ")) continue;
      const d = v - (prev[key] ?? 0);
      if (d <= 0) continue;
      const [what = "", reason = ""] = key.split(" ");
      found.push({ t, what, reason, count: d });
    }
    this.samples.push(sample);
    if (this.samples.length > HISTORY_SECONDS) this.samples.shift();
    this.refusals.push(...found);
    if (this.refusals.length > REFUSALS_KEPT)
      this.refusals.splice(0, this.refusals.length - REFUSALS_KEPT);
    for (const fn of this.#listeners) fn(sample, found);
  }
}
