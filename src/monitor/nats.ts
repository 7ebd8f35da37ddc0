/**
 * `/varz` and `/connz`: JSON shaped like nats-server's monitoring endpoints
 * (https://docs.nats.io/running-a-nats-service/nats_admin/monitoring), so tools and
 * habits built for NATS carry over. Field names follow NATS where the figure is the
 * same; backbone's own figures are added under their own names. No message contents.
 */
import { cpus } from "node:os";
import { VERSION } from "../version.ts";
import { PROTOCOL } from "../wire/constants.ts";
import type { Probe } from "./probe.ts";
import { type MonitorTarget, refusals, rejections, roomCount, traffic } from "./target.ts";

/** Go-style duration, as NATS prints it: `1h2m3s`, `4m5s`, `6s`, `120ms`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${d ? `${d}d` : ""}${d || h ? `${h}h` : ""}${d || h || m ? `${m}m` : ""}${s}s`;
}

let lastCpu = { at: performance.now(), usage: process.cpuUsage() };

/** Percent of one core used since the last call. */
function cpuPercent(): number {
  const now = performance.now();
  const usage = process.cpuUsage();
  const spent = usage.user + usage.system - lastCpu.usage.user - lastCpu.usage.system;
  const percent = (spent / 1000 / Math.max(1, now - lastCpu.at)) * 100;
  lastCpu = { at: now, usage };
  return Math.round(percent * 10) / 10;
}

export interface VarzExtra {
  node: string;
  httpHost: string;
  httpPort: number;
}

export async function varz(t: MonitorTarget, probe: Probe, extra: VarzExtra) {
  const now = Date.now();
  const s = t.stats;
  const tr = traffic(t);
  const health = await probe.check();
  const cfg = t.settings;
  return {
    server_id: t.key.publicKey.fingerprint,
    server_name: extra.node,
    version: VERSION,
    proto: PROTOCOL,
    host: t.hostname,
    port: t.port,
    http_host: extra.httpHost,
    http_port: extra.httpPort,
    max_payload: cfg.max_message_size,
    max_pending: cfg.max_outbound_bytes,
    ping_interval: cfg.heartbeat_interval * 1e9,
    start: new Date(t.startedAt).toISOString(),
    now: new Date(now).toISOString(),
    uptime: duration(now - t.startedAt),
    mem: process.memoryUsage.rss(),
    cores: cpus().length,
    cpu: cpuPercent(),
    connections: t.connectionCount,
    total_connections: s.connections,
    sessions: t.router.online.size,
    pending_handshakes: t.pendingHandshakes,
    in_msgs: tr.msgsIn,
    out_msgs: tr.msgsOut,
    in_bytes: tr.bytesIn,
    out_bytes: tr.bytesOut,
    pending_bytes: tr.pendingBytes,
    slow_consumers: s.slowConsumers,
    offline_queue: await probe.queueDepth(),
    healthy: health.ok,
    health: health.reason,
    event_loop_lag_ms: Math.round(probe.lagSeconds * 1e4) / 10,
    handshakes: {
      ok: s.handshakesOk,
      failed: s.authFailures,
      refused: s.handshakesRefused,
      timeout: s.handshakeTimeouts,
      refusals: refusals(s),
    },
    messages: {
      received: {
        direct: s.receivedDirect,
        broadcast: s.receivedBroadcast,
        room: roomCount(s, "receivedRoom"),
      },
      delivered: {
        direct: s.deliveredDirect,
        broadcast: s.deliveredBroadcast,
        room: roomCount(s, "deliveredRoom"),
        stored: s.deliveredStored,
      },
      stored: s.stored,
      rejected: rejections(s),
    },
    protocol_errors: s.protocolErrors,
    config: {
      heartbeat_interval: cfg.heartbeat_interval,
      heartbeat_timeout: cfg.heartbeat_timeout,
      max_pending_handshakes: cfg.max_pending_handshakes,
      handshake_rate: cfg.handshake_rate,
      queue_max_messages: cfg.queue_max_messages,
      queue_max_age: cfg.queue_max_age,
      broadcast_rate: cfg.broadcast_rate,
    },
  };
}

/** One entry of `/connz`. */
interface ConnInfo {
  cid: number;
  ip: string;
  port: number;
  start: string;
  last_activity: string;
  uptime: string;
  idle: string;
  pending_bytes: number;
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
  /** "handshake", "verifying", "open", "closing". */
  state: string;
  name?: string;
  client_id?: string;
}

/** Sort orders of `/connz?sort=`, as NATS names them: counts descending, cid and start ascending. */
const SORTS: Record<string, (a: ConnInfo, b: ConnInfo) => number> = {
  cid: (a, b) => a.cid - b.cid,
  start: (a, b) => a.cid - b.cid,
  since: (a, b) => a.cid - b.cid,
  msgs_to: (a, b) => b.out_msgs - a.out_msgs,
  msgs_from: (a, b) => b.in_msgs - a.in_msgs,
  bytes_to: (a, b) => b.out_bytes - a.out_bytes,
  bytes_from: (a, b) => b.in_bytes - a.in_bytes,
  pending: (a, b) => b.pending_bytes - a.pending_bytes,
  last: (a, b) => b.last_activity.localeCompare(a.last_activity),
  idle: (a, b) => a.last_activity.localeCompare(b.last_activity),
  uptime: (a, b) => a.cid - b.cid,
};
export const CONNZ_SORTS = Object.keys(SORTS);
/** Default and largest page (NATS's default is 1024). */
export const CONNZ_DEFAULT_LIMIT = 1024;
export const CONNZ_MAX_LIMIT = 100_000;

/** A bad query parameter: answered 400 with the message. */
export class QueryError extends Error {}

function intParam(q: URLSearchParams, name: string, fallback: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === "") return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) > max)
    throw new QueryError(`${name} must be a whole number from 0 to ${max}`);
  return Number(raw);
}

export function connz(t: MonitorTarget, query: URLSearchParams) {
  const offset = intParam(query, "offset", 0, 1e9);
  const limit = intParam(query, "limit", CONNZ_DEFAULT_LIMIT, CONNZ_MAX_LIMIT);
  const sort = query.get("sort") || "cid";
  const compare = SORTS[sort];
  if (!compare) throw new QueryError(`sort must be one of ${CONNZ_SORTS.join(", ")}`);
  const now = Date.now();
  const perfNow = performance.now();
  const all: ConnInfo[] = [];
  for (const c of t.connections()) {
    const last = now - (perfNow - c.lastSeen);
    const info: ConnInfo = {
      cid: c.cid,
      ip: c.address,
      port: c.socket.remotePort,
      start: new Date(c.since).toISOString(),
      last_activity: new Date(last).toISOString(),
      uptime: duration(now - c.since),
      idle: duration(now - last),
      pending_bytes: c.outbox?.pendingBytes ?? 0,
      in_msgs: c.msgsIn,
      out_msgs: c.msgsOut,
      in_bytes: c.bytesIn,
      out_bytes: c.bytesOut,
      state: c.phase,
    };
    if (c.idText) {
      info.name = c.name;
      info.client_id = c.idText;
    }
    all.push(info);
  }
  all.sort(compare);
  const page = all.slice(offset, offset + limit);
  return {
    server_id: t.key.publicKey.fingerprint,
    now: new Date(now).toISOString(),
    num_connections: page.length,
    total: all.length,
    offset,
    limit,
    sort,
    connections: page,
  };
}
