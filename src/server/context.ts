/** What a connection needs of its server: settings, store, router, limits, logs. */
import type { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import type { Logger } from "../log.ts";
import type { ClientRecord, Store } from "../store/store.ts";
import type { ConnectionSettings } from "../wire/settings.ts";
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
  };
}

export interface ServerContext {
  readonly settings: Readonly<ServerSettings>;
  readonly key: RsaPrivateKey;
  readonly store: Store;
  readonly router: Router;
  readonly log: Logger;
  readonly stats: Stats;
  readonly handshakeRate: RateLimiter;
  readonly rsa: Semaphore;
  /** Per-client budgets of server-side work (`work_rate`, `work_burst`). */
  readonly work: WorkBudget;
  /** Unix ms the server started. */
  readonly startedAt: number;
  connectionSettings(): Readonly<ConnectionSettings>;
  /** A registered, unrevoked client and its imported key; null otherwise. */
  lookupClient(id: Uint8Array): Promise<{ record: ClientRecord; key: RsaPublicKey } | null>;
  /** A handshake finished (`ok`) or its connection closed before it did. */
  handshakeEnded(conn: Connection, ok: boolean): void;
  /** Handles one decrypted message from `conn`; a promise when it needs the store. */
  handle(conn: Connection, plain: Uint8Array): Promise<void> | undefined;
  /** Flushes `conn`'s outbox once the current batch of input has been handled. */
  schedule(conn: Connection): void;
}
