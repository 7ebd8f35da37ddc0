/**
 * The workloads every peer is driven with (backbone and NATS alike): N sender →
 * receiver pairs, each message carrying its sequence number and send time.
 *
 * - throughput: each sender keeps at most W messages in flight; its receiver
 *   acknowledges every W/4 messages (in the data channel of the peer).
 * - latency: a fixed total offered rate spread over the pairs; send→receive times.
 *
 * Every loop is bounded in count and time.
 */

/** One pair as the transport sees it. */
export interface PairEnds {
  /** Sender → receiver. */
  send(data: Uint8Array): void;
  /** Receiver → sender (acknowledgements). */
  ack(data: Uint8Array): void;
  onData(cb: (data: Uint8Array) => void): void;
  onAck(cb: (data: Uint8Array) => void): void;
}

export interface WorkloadOptions {
  mode: "throughput" | "latency";
  size: number;
  window: number;
  /** Seconds measured, after `warmup` seconds. */
  seconds: number;
  warmup: number;
  /** latency mode: total messages per second over all pairs. */
  rate?: number;
}

export interface WorkloadResult {
  delivered: number;
  seconds: number;
  msgsPerSec: number;
  mbPerSec: number;
  p50?: number;
  p99?: number;
  p999?: number;
  samples?: number;
  /** Messages from earlier runs that arrived during this one, left out of every figure. */
  stale?: number;
}

const now = () => performance.timeOrigin + performance.now();
const MAX_SAMPLES = 2_000_000;

/**
 * Runs the workload. `settle` runs after every callback is registered and before the
 * first message (NATS: flush, so the subscriptions exist before anything is published).
 */
export async function runWorkload(
  pairs: PairEnds[],
  o: WorkloadOptions,
  settle: () => Promise<unknown> = async () => {},
): Promise<WorkloadResult> {
  let start = now();
  let measureFrom = start + o.warmup * 1000;
  let end = measureFrom + o.seconds * 1000;
  let delivered = 0;
  /** Messages of earlier runs (timestamped before this one started), left out. */
  let stale = 0;
  let stopped = false;
  const samples = new Float64Array(o.mode === "latency" ? MAX_SAMPLES : 0);
  let nSamples = 0;
  const ackEvery = Math.max(1, Math.floor(o.window / 4));
  const template = new Uint8Array(o.size);

  const senders = pairs.map((p) => {
    let sent = 0;
    let acked = 0;
    const view = new DataView(template.buffer);
    const sendOne = () => {
      view.setUint32(0, sent);
      view.setFloat64(4, now());
      p.send(template);
      sent++;
    };
    const pump = () => {
      if (stopped) return;
      while (sent - acked < o.window) sendOne();
    };
    p.onAck((data) => {
      acked = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
      if (o.mode === "throughput") pump();
    });
    let received = 0;
    const ack = new Uint8Array(8);
    const ackView = new DataView(ack.buffer);
    p.onData((data) => {
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      if (view.getFloat64(4) < start) {
        // Sent before this run began: a message of an earlier run that the server had
        // accepted but not seen acknowledged when its receiver closed, redelivered now
        // (at-least-once). Not this run's latency, and not in flight for it either.
        stale++;
        return;
      }
      received++;
      const t = now();
      if (t >= measureFrom && t < end) {
        delivered++;
        if (nSamples < MAX_SAMPLES && o.mode === "latency") {
          samples[nSamples++] = t - view.getFloat64(4);
        }
      }
      if (received % ackEvery === 0) {
        ackView.setUint32(0, received);
        p.ack(ack);
      }
    });
    return {
      pump,
      sendOne,
      get inFlight() {
        return sent - received;
      },
    };
  });

  await settle();
  start = now();
  measureFrom = start + o.warmup * 1000;
  end = measureFrom + o.seconds * 1000;
  if (o.mode === "throughput") {
    for (const s of senders) s.pump();
    await Bun.sleep(end - now());
  } else {
    const rate = o.rate ?? 1000;
    let sentTotal = 0;
    let next = 0;
    while (now() < end) {
      const due = Math.floor(((now() - start) / 1000) * rate);
      while (sentTotal < due) {
        (senders[next] as (typeof senders)[number]).sendOne();
        next = (next + 1) % senders.length;
        sentTotal++;
      }
      await Bun.sleep(1);
    }
  }
  stopped = true;
  // Let what is in flight arrive (bounded), so nothing is left for the server to store
  // when the clients close — it would be delivered into the next run.
  const drainUntil = now() + 10_000;
  while (senders.some((s) => s.inFlight > 0) && now() < drainUntil) await Bun.sleep(5);
  const seconds = o.seconds;
  const result: WorkloadResult = {
    delivered,
    seconds,
    msgsPerSec: delivered / seconds,
    mbPerSec: (delivered * o.size) / seconds / 1e6,
    stale,
  };
  if (o.mode === "latency" && nSamples > 0) {
    const sorted = samples.subarray(0, nSamples).sort();
    const q = (p: number) => sorted[Math.min(nSamples - 1, Math.floor(p * nSamples))] as number;
    Object.assign(result, { p50: q(0.5), p99: q(0.99), p999: q(0.999), samples: nSamples });
  }
  return result;
}
