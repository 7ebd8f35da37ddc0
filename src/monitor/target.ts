/**
 * What the monitor reads from a running server: the counters the core keeps
 * (src/server/context.ts `Stats`, the connections' own counters) and a few live
 * figures. The core never formats metrics; everything here is read at request time.
 */
import type { Connection } from "../server/connection.ts";
import type { Stats } from "../server/context.ts";
import type { Router } from "../server/router.ts";
import type { ServerSettings } from "../server/settings.ts";
import type { Store } from "../store/store.ts";

/** One node of a cluster (a single server is a cluster of one). */
export interface NodeInfo {
  name: string;
  /** Clients connected to that node. */
  clients: number;
  /** Unix ms the node was last heard of. */
  seen: number;
  /** This node (the one serving the page). */
  self: boolean;
}

/** The part of `BackboneServer` the monitor reads. */
export interface MonitorTarget {
  readonly settings: Readonly<ServerSettings>;
  readonly stats: Stats;
  readonly router: Router;
  readonly store: Store;
  readonly startedAt: number;
  readonly hostname: string;
  readonly port: number;
  readonly connectionCount: number;
  readonly pendingHandshakes: number;
  readonly closing: boolean;
  /** True while the server has stopped accepting because it is short of descriptors. */
  readonly acceptPaused?: boolean;
  readonly key: { publicKey: { fingerprint: string } };
  connections(): IterableIterator<Connection>;
  /** The cluster's nodes, when the server runs as one node of several. */
  nodes?(): NodeInfo[];
}

/** Totals over closed and open connections. */
export interface Traffic {
  bytesIn: number;
  bytesOut: number;
  msgsIn: number;
  msgsOut: number;
  pendingBytes: number;
}

/** Sums the closed connections' totals and the open connections' own counters. */
export function traffic(t: MonitorTarget): Traffic {
  const s = t.stats;
  const out: Traffic = {
    bytesIn: s.closedBytesIn,
    bytesOut: s.closedBytesOut,
    msgsIn: s.closedMsgsIn,
    msgsOut: s.closedMsgsOut,
    pendingBytes: 0,
  };
  for (const c of t.connections()) {
    out.bytesIn += c.bytesIn;
    out.bytesOut += c.bytesOut;
    out.msgsIn += c.msgsIn;
    out.msgsOut += c.msgsOut;
    out.pendingBytes += c.outbox?.pendingBytes ?? 0;
  }
  return out;
}

/** Rooms (issue 13) are counted by the rooms code when it lands; 0 until then. */
export function roomCount(s: Stats, field: "receivedRoom" | "deliveredRoom"): number {
  return (s as unknown as Record<string, number | undefined>)[field] ?? 0;
}

/** Message refusals by reason, from the core's counters (NOTICE statuses and store results). */
export function rejections(s: Stats): Record<string, number> {
  const n = s.notices;
  const noticed = (n.unknown ?? 0) + (n.rejected ?? 0) + (n.too_large ?? 0) + (n.rate_limited ?? 0);
  return {
    too_large: n.too_large ?? 0,
    unknown_recipient: n.unknown ?? 0,
    rate_limited: n.rate_limited ?? 0,
    queue_full: Math.max(0, s.rejected - s.storeFailures),
    storage_failure: s.storeFailures,
    // Discarded without a NOTICE: reserved or server-only types, S2S on a socket.
    invalid: Math.max(0, s.discarded - noticed),
  };
}

/** Handshake refusals by reason. */
export function refusals(s: Stats): Record<string, number> {
  return {
    prefix_limit: s.refusedPrefix,
    capacity: s.refusedCapacity,
    rate_limited: s.refusedRate,
  };
}
