/** What a connection needs of its server: settings, store, router, limits, logs. */

import type { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import type { StandIn } from "../handshake/server.ts";
import type { Logger } from "../log.ts";
import type { ClientRecord, Store } from "../store/store.ts";
import type { ConnectionSettings } from "../wire/settings.ts";
import type { Cluster } from "./cluster.ts";
import type { Connection } from "./connection.ts";
import type { RateLimiter, Semaphore, WorkBudget } from "./limits.ts";
import type { Router } from "./router.ts";
import type { ServerSettings } from "./settings.ts";

/** Counters since the server started (shown in SERVER_STATUS and the logs). */
export interface Stats {
  connections: number;
  handshakesRefused: number;
  authFailures: number;
  routed: number;
  broadcasts: number;
  stored: number;
  rejected: number;
  /** Accepted for live delivery, then neither delivered nor stored (see Router.storeUndelivered). */
  dropped: number;
  deliveredStored: number;
  discarded: number;
  protocolErrors: number;
  slowConsumers: number;
  // ---- read by the monitor (src/monitor/); the core only increments them ----
  /** Handshakes that ended in a session. */
  handshakesOk: number;
  /** Handshakes refused: too many pending from one prefix; global capacity (oldest dropped); handshake_rate. */
  refusedPrefix: number;
  refusedCapacity: number;
  refusedRate: number;
  /** Handshakes dropped at connection_timeout. */
  handshakeTimeouts: number;
  /** C2C messages clients sent, by kind. */
  receivedDirect: number;
  receivedBroadcast: number;
  /** Messages handed to recipients' connections live, by kind (held ones: deliveredStored). */
  deliveredDirect: number;
  deliveredBroadcast: number;
  /** NOTICEs sent, by status (router.ts NoticeStatus). */
  notices: Record<string, number>;
  /** Offline writes that failed in the store (disk full, I/O error), not a bound. */
  storeFailures: number;
  /** Bytes and frames of connections already closed (open ones count on the Connection). */
  closedBytesIn: number;
  closedBytesOut: number;
  closedMsgsIn: number;
  closedMsgsOut: number;
}

export function newStats(): Stats {
  return {
    connections: 0,
    handshakesRefused: 0,
    authFailures: 0,
    routed: 0,
    broadcasts: 0,
    stored: 0,
    rejected: 0,
    dropped: 0,
    deliveredStored: 0,
    discarded: 0,
    protocolErrors: 0,
    slowConsumers: 0,
    handshakesOk: 0,
    refusedPrefix: 0,
    refusedCapacity: 0,
    refusedRate: 0,
    handshakeTimeouts: 0,
    receivedDirect: 0,
    receivedBroadcast: 0,
    deliveredDirect: 0,
    deliveredBroadcast: 0,
    notices: { queued: 0, unknown: 0, rejected: 0, too_large: 0, rate_limited: 0 },
    storeFailures: 0,
    closedBytesIn: 0,
    closedBytesOut: 0,
    closedMsgsIn: 0,
    closedMsgsOut: 0,
  };
}

/** Adds a closed connection's traffic to the totals (its own counters go with it). */
export function addClosed(
  stats: Stats,
  conn: { bytesIn: number; bytesOut: number; msgsIn: number; msgsOut: number },
): void {
  stats.closedBytesIn += conn.bytesIn;
  stats.closedBytesOut += conn.bytesOut;
  stats.closedMsgsIn += conn.msgsIn;
  stats.closedMsgsOut += conn.msgsOut;
}

export interface ServerContext {
  readonly settings: Readonly<ServerSettings>;
  readonly key: RsaPrivateKey;
  readonly store: Store;
  readonly router: Router;
  /** The cluster this node belongs to (cluster.ts); null on a single node. */
  readonly cluster: Cluster | null;
  readonly log: Logger;
  readonly stats: Stats;
  readonly handshakeRate: RateLimiter;
  readonly rsa: Semaphore;
  /** Per-client budgets of server-side work (`work_rate`, `work_burst`). */
  readonly work: WorkBudget;
  /** Unix ms the server started. */
  readonly startedAt: number;
  connectionSettings(): Readonly<ConnectionSettings>;
  /**
   * A registered, unrevoked client and its imported key; otherwise a `StandIn` key to
   * check the signature with (or null), so that timing does not tell (key-cache.ts).
   */
  lookupClient(
    id: Uint8Array,
    signatureBytes?: number,
  ): Promise<{ record: ClientRecord; key: RsaPublicKey } | StandIn | null>;
  /** A handshake finished (`ok`) or its connection closed before it did. */
  handshakeEnded(conn: Connection, ok: boolean): void;
  /** Handles one decrypted message from `conn`; a promise when it needs the store. */
  handle(conn: Connection, plain: Uint8Array): Promise<void> | undefined;
  /** Flushes `conn`'s outbox once the current batch of input has been handled. */
  schedule(conn: Connection): void;
}
