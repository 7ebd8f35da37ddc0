/**
 * `/metrics`: the Prometheus text exposition (format 0.0.4), made by prom-client from
 * the counters the core keeps. Nothing here runs per message: the core increments
 * plain integers, and each metric reads them in its `collect` when scraped. The only
 * prom-client call outside a scrape is the store latency histogram's `observe`, once
 * per store call (a store call batches many messages), on a child bound at start.
 *
 * Every series carries `node` (this server's name), ready for a cluster of several.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { VERSION } from "../version.ts";
import { PROTOCOL } from "../wire/constants.ts";
import type { Probe } from "./probe.ts";
import { type MonitorTarget, refusals, rejections, roomCount, traffic } from "./target.ts";
import { STORE_OPS, type StoreOp, type StoreTimer } from "./timed-store.ts";

/** Store latency buckets (seconds): a cached read takes µs, a commit ~0.1 ms, an fsync ms. */
const STORE_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export class Metrics implements StoreTimer {
  readonly registry = new Registry();
  readonly #storeLatency: Record<StoreOp, ReturnType<Histogram<"op">["labels"]>>;
  #target: MonitorTarget | null = null;

  constructor(node: string, probe: Probe) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node });
    const histogram = new Histogram({
      name: "backbone_store_latency_seconds",
      help: "Time taken by store calls, by operation.",
      labelNames: ["op"],
      buckets: STORE_BUCKETS,
      registers,
    });
    this.#storeLatency = Object.fromEntries(
      STORE_OPS.map((op) => [op, histogram.labels(op)]),
    ) as Record<StoreOp, ReturnType<Histogram<"op">["labels"]>>;

    const t = () => this.#target;
    // A counter read from the core: reset, then set to the core's figure.
    const counter = (
      name: string,
      help: string,
      read: (m: MonitorTarget) => number | Record<string, number>,
      label?: string,
    ) =>
      new Counter({
        name,
        help,
        labelNames: label ? [label] : [],
        registers,
        collect() {
          const m = t();
          if (!m) return;
          this.reset();
          const v = read(m);
          if (typeof v === "number") this.inc(v);
          else for (const [k, n] of Object.entries(v)) this.inc({ [label as string]: k }, n);
        },
      });
    const gauge = (
      name: string,
      help: string,
      read: (m: MonitorTarget) => number | Promise<number>,
    ) =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          const m = t();
          if (m) this.set(await read(m));
        },
      });

    new Gauge({
      name: "backbone_info",
      help: "Version and protocol of this server (always 1).",
      labelNames: ["version", "protocol"],
      registers,
    })
      .labels(VERSION, PROTOCOL)
      .set(1);
    gauge("backbone_up", "1 while /healthz answers 200, else 0.", async () =>
      (await probe.check()).ok ? 1 : 0,
    );
    gauge(
      "backbone_start_time_seconds",
      "Unix time the server started.",
      (m) => m.startedAt / 1000,
    );
    gauge(
      "backbone_connections",
      "TCP connections open now, authenticated or not.",
      (m) => m.connectionCount,
    );
    gauge("backbone_sessions", "Authenticated clients online now.", (m) => m.router.online.size);
    gauge("backbone_handshakes_pending", "Handshakes in flight.", (m) => m.pendingHandshakes);
    counter("backbone_connections_total", "TCP connections accepted.", (m) => m.stats.connections);
    counter(
      "backbone_handshakes_total",
      "Handshakes ended, by outcome: ok (a session), failed (authentication), refused (limits), timeout.",
      (m) => ({
        ok: m.stats.handshakesOk,
        failed: m.stats.authFailures,
        refused: m.stats.handshakesRefused,
        timeout: m.stats.handshakeTimeouts,
      }),
      "outcome",
    );
    counter(
      "backbone_handshake_refusals_total",
      "Handshakes refused by the abuse limits, by reason.",
      (m) => refusals(m.stats),
      "reason",
    );
    counter(
      "backbone_messages_received_total",
      "C2C messages clients sent, by kind.",
      (m) => ({
        direct: m.stats.receivedDirect,
        broadcast: m.stats.receivedBroadcast,
        room: roomCount(m.stats, "receivedRoom"),
      }),
      "kind",
    );
    counter(
      "backbone_messages_delivered_total",
      "Messages handed to recipients' connections, by kind (stored: held ones at login).",
      (m) => ({
        direct: m.stats.deliveredDirect,
        broadcast: m.stats.deliveredBroadcast,
        room: roomCount(m.stats, "deliveredRoom"),
        stored: m.stats.deliveredStored,
      }),
      "kind",
    );
    counter(
      "backbone_messages_stored_total",
      "Direct messages held for offline recipients.",
      (m) => m.stats.stored,
    );
    counter(
      "backbone_messages_rejected_total",
      "Messages not delivered nor stored, by reason.",
      (m) => rejections(m.stats),
      "reason",
    );
    counter(
      "backbone_rate_limited_total",
      "Requests refused by a rate limit, by what was limited.",
      (m) => ({ broadcast: m.stats.notices.rate_limited ?? 0, handshake: m.stats.refusedRate }),
      "limit",
    );
    counter(
      "backbone_slow_consumers_total",
      "Clients stopped for not reading (max_outbound_bytes).",
      (m) => m.stats.slowConsumers,
    );
    counter(
      "backbone_protocol_errors_total",
      "Connections stopped for breaking the protocol.",
      (m) => m.stats.protocolErrors,
    );
    // Bytes and frames: one pass over the open connections per scrape, shared.
    let cached: { at: number; v: ReturnType<typeof traffic> } | null = null;
    const tr = (m: MonitorTarget) => {
      const now = performance.now();
      if (!cached || now - cached.at > 100) cached = { at: now, v: traffic(m) };
      return cached.v;
    };
    counter(
      "backbone_received_bytes_total",
      "Bytes read from client sockets.",
      (m) => tr(m).bytesIn,
    );
    counter("backbone_sent_bytes_total", "Bytes written to client sockets.", (m) => tr(m).bytesOut);
    counter(
      "backbone_received_frames_total",
      "Frames read from clients (after the handshake).",
      (m) => tr(m).msgsIn,
    );
    counter("backbone_sent_frames_total", "Frames sealed for clients.", (m) => tr(m).msgsOut);
    gauge(
      "backbone_pending_bytes",
      "Bytes queued for clients and not yet taken by their sockets.",
      (m) => tr(m).pendingBytes,
    );
    gauge(
      "backbone_offline_queue_messages",
      "Messages held in the store for offline recipients.",
      () => probe.queueDepth(),
    );
    gauge(
      "backbone_event_loop_lag_seconds",
      "Largest delay of a 100 ms timer over the last second.",
      () => probe.lagSeconds,
    );
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", () =>
      process.memoryUsage.rss(),
    );
    gauge(
      "process_start_time_seconds",
      "Start time of the process since unix epoch in seconds.",
      (m) => m.startedAt / 1000,
    );
    new Counter({
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      registers,
      collect() {
        const u = process.cpuUsage();
        this.reset();
        this.inc((u.user + u.system) / 1e6);
      },
    });
    gauge("process_open_fds", "Number of open file descriptors.", () => probe.descriptors().open);
    gauge(
      "process_max_fds",
      "Maximum number of open file descriptors.",
      () => probe.descriptors().max,
    );
  }

  /** Starts reading `target`'s counters. */
  attach(target: MonitorTarget): void {
    this.#target = target;
  }

  observe(op: StoreOp, seconds: number): void {
    this.#storeLatency[op].observe(seconds);
  }

  /** The exposition text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
