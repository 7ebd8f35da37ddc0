/**
 * The backbone server: listens with `Bun.listen`, runs handshakes under the abuse
 * limits, keeps the registry of online clients, and times out the silent.
 *
 * @example
 * await using server = await BackboneServer.start({ key, store, settings: { port: 0 } });
 * console.log(`listening on ${server.hostname}:${server.port}`);
 */
import type { Socket } from "bun";
import type { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import { warmDummyKeys } from "../handshake/dummy-keys.ts";
import { StandIn } from "../handshake/server.ts";
import { idToText } from "../ids.ts";
import { type Logger, StructuredLogger, silentLogger } from "../log.ts";
import type { ClientRecord, Store } from "../store/store.ts";
import { encodeS2S, S2SType } from "../wire/message.ts";
import type { ConnectionSettings } from "../wire/settings.ts";
import { Admission } from "./admission.ts";
import type { Cluster } from "./cluster.ts";
import { Connection } from "./connection.ts";
import { addClosed, newStats, type ServerContext, type Stats } from "./context.ts";
import { handleMessage } from "./handler.ts";
import { ClientKeyCache } from "./key-cache.ts";
import { addressPrefix, RateLimiter, Semaphore, WorkBudget } from "./limits.ts";
import { Listener } from "./listener.ts";
import { RENEW_MS } from "./nodes.ts";
import { RegistryWatch } from "./registry-watch.ts";
import { Router } from "./router.ts";
import {
  connectionSettings,
  DEFAULT_SERVER_SETTINGS,
  mergeSettings,
  type ServerSettings,
} from "./settings.ts";

export interface ServerOptions {
  /** The server's identity key. */
  key: RsaPrivateKey;
  /** Registry and offline queue. The caller opens and closes it. */
  store: Store;
  /** Overrides of the defaults (host, port, limits, timeouts …). */
  settings?: Partial<ServerSettings>;
  /** Where logs go; silent by default. */
  log?: Logger;
  /**
   * Cluster mode (docs/CLUSTER.md): the cluster this node joined, on the same Redis as
   * `store`. Absent: a single node. The server leaves it when it closes.
   */
  cluster?: Cluster;
}

/** How often the registry is checked for changes made by other processes (revocations). */
const REGISTRY_POLL_MS = 250;
/** How often expired offline messages are purged. */
const EXPIRE_EVERY_MS = 60_000;
/** Most client IDs whose keys (or absence) are kept in memory. */
const KEY_CACHE = 10_000;

export class BackboneServer implements ServerContext, AsyncDisposable {
  settings: Readonly<ServerSettings>;
  readonly key: RsaPrivateKey;
  readonly store: Store;
  readonly router: Router;
  readonly cluster: Cluster | null;
  readonly log: Logger;
  readonly stats: Stats = newStats();
  readonly handshakeRate: RateLimiter;
  readonly rsa: Semaphore;
  readonly work: WorkBudget;
  readonly startedAt = Date.now();

  /** The listening socket, paused for want of descriptors (listener.ts). */
  readonly #listener: Listener;
  #all = new Set<Connection>();
  /** Handshakes in flight and their bounds (admission.ts). */
  readonly #admission: Admission;
  #dirty = new Set<Connection>();
  #flushScheduled = false;
  #keys = new ClientKeyCache(KEY_CACHE);
  #timers: ReturnType<typeof setInterval>[] = [];
  #closing: Promise<void> | null = null;
  /** Registry changes, revocations, this node's lease, expiry (registry-watch.ts). */
  readonly #registry: RegistryWatch;

  private constructor(opts: ServerOptions) {
    this.settings = mergeSettings(DEFAULT_SERVER_SETTINGS, opts.settings ?? {}, "settings");
    this.key = opts.key;
    this.store = opts.store;
    this.log = opts.log ?? silentLogger;
    this.cluster = opts.cluster ?? null;
    this.handshakeRate = new RateLimiter(
      this.settings.handshake_rate,
      this.settings.handshake_burst,
    );
    this.rsa = new Semaphore(this.settings.handshake_concurrency);
    this.work = new WorkBudget(this.settings.work_rate, this.settings.work_burst);
    this.router = new Router(this);
    this.#admission = new Admission(this);
    this.#registry = new RegistryWatch(this);
    this.#listener = new Listener(() => this.settings, this.log, {
      open: (socket) => this.#onOpen(socket),
      close: (socket) => this.#onClose(socket),
    });
  }

  /** Starts a server; resolves once it accepts connections. Throws `UsageError` `LISTEN_FAILED`. */
  static async start(opts: ServerOptions): Promise<BackboneServer> {
    const server = new BackboneServer(opts);
    server.store.setMaxBytes?.(server.settings.store_max_bytes);
    await warmDummyKeys();
    try {
      // Nobody is online on a server that just started — unless other nodes run.
      const others = server.cluster
        ? (await server.cluster.liveNodes()).filter((n) => n !== server.cluster?.nodeId)
        : [];
      if (others.length === 0) await server.store.resetPresence();
    } catch (err) {
      // A full or failing disk must not keep the server down: live traffic needs no
      // writes, and stale "online" flags only mislead until the disk has room again.
      server.log.error("presence reset failed", { error: String(err) });
    }
    await server.#registry.start();
    server.#listener.start(server.settings.port, server.#all.size);
    server.#startTimers();
    return server;
  }

  /** The address the server listens on. */
  get hostname(): string {
    return this.#listener.hostname;
  }

  /** The port the server listens on (the real one when started with port 0). */
  get port(): number {
    return this.#listener.port;
  }

  #onOpen(socket: Socket<Connection>): void {
    const addr = socket.remoteAddress;
    if (!addr) {
      // Reset by the peer before it was accepted: there is no one to talk to.
      this.log.debug("connection gone before it was accepted");
      socket.terminate();
      return;
    }
    this.stats.connections++;
    const prefix = addressPrefix(addr);
    if (!this.#admission.admit(prefix, addr)) {
      socket.terminate();
      return;
    }
    const conn = new Connection(this, socket, prefix);
    socket.data = conn;
    socket.setNoDelay(true);
    this.#all.add(conn);
    this.#admission.started(conn);
    this.#checkDescriptors();
  }

  #onClose(socket: Socket<Connection>): void {
    const conn = socket.data;
    if (!conn) return;
    conn.onClose();
    if (this.#all.delete(conn)) addClosed(this.stats, conn);
    this.#dirty.delete(conn);
    this.#checkDescriptors();
  }

  /** The descriptor guard's check (listener.ts), not once `close` has begun. */
  #checkDescriptors(): void {
    if (!this.#closing) this.#listener.checkDescriptors(this.#all.size);
  }

  // ---- ServerContext ----------------------------------------------------------------

  connectionSettings(): ConnectionSettings {
    return connectionSettings(this.settings);
  }

  /**
   * The registry record and parsed key of a live client, or a `StandIn` (unknown, revoked).
   * Costs the same for every kind of ID (see `ClientKeyCache`); `signatureBytes` picks
   * the dummy key imported for an unknown ID (default 384).
   */
  async lookupClient(
    id: Uint8Array,
    signatureBytes = 384,
  ): Promise<{ record: ClientRecord; key: RsaPublicKey } | StandIn> {
    const text = idToText(id);
    const record = await this.store.getClient(text);
    const key = await this.#keys.resolve(text, record, signatureBytes);
    return key instanceof StandIn || !record ? (key as StandIn) : { record, key };
  }

  handshakeEnded(conn: Connection, ok: boolean): void {
    this.#admission.ended(conn, ok);
  }

  handle(conn: Connection, plain: Uint8Array): Promise<void> | undefined {
    return handleMessage(this, conn, plain);
  }

  schedule(conn: Connection): void {
    this.#dirty.add(conn);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flushDirty);
  }

  readonly #flushDirty = (): void => {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const conn of dirty) conn.outbox?.flush();
  };

  // ---- timers -------------------------------------------------------------------------

  #startTimers(): void {
    const s = this.settings;
    const tick = Math.min(
      1000,
      Math.max(20, (Math.min(s.connection_timeout, s.heartbeat_timeout) * 1000) / 4),
    );
    this.#timers.push(setInterval(() => this.#sweep(), tick));
    const registry = this.#registry;
    this.#timers.push(setInterval(() => void registry.check(), REGISTRY_POLL_MS));
    this.#timers.push(setInterval(() => void registry.renewLease(), RENEW_MS));
    this.#timers.push(setInterval(() => void registry.expire(), EXPIRE_EVERY_MS));
    for (const t of this.#timers) t.unref?.();
    void registry.expire();
  }

  #stopTimers(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /** Drops handshakes past `connection_timeout` and clients silent past `heartbeat_timeout`. */
  #sweep(): void {
    const now = performance.now();
    this.#admission.sweep(now);
    const silentLimit = this.settings.heartbeat_timeout * 1000;
    for (const conn of [...this.router.online.values()]) {
      // A connection whose input the server holds (its work budget, a slice) is not
      // silent: the server is not reading it.
      if (now - conn.lastSeen > silentLimit && !conn.inputPaused) conn.stop("heartbeat timeout");
    }
    this.#checkDescriptors(); // in case listening again failed at the last close
    this.handshakeRate.sweep(now);
    this.router.broadcasts.sweep(now);
    this.work.sweep(now);
    this.router.rooms.budget.sweep(this.settings.room_fanout_rate, this.settings.room_fanout_burst);
  }

  // ---- control --------------------------------------------------------------------------

  /**
   * Applies new settings while running. Changed connection settings are pushed to every
   * client as CONFIG; host and port changes need a restart. Throws `UsageError`.
   */
  reload(overrides: Partial<ServerSettings>, source = "settings"): void {
    const before = JSON.stringify(this.connectionSettings());
    const next = mergeSettings(DEFAULT_SERVER_SETTINGS, overrides, source);
    if (
      next.host !== this.settings.host ||
      (next.port !== this.settings.port && this.settings.port !== 0)
    ) {
      this.log.warn("host/port changes take effect at the next start");
    }
    this.settings = { ...next, host: this.settings.host, port: this.settings.port };
    this.handshakeRate.rate = next.handshake_rate;
    this.handshakeRate.burst = next.handshake_burst;
    this.router.broadcasts.rate = next.broadcast_rate;
    this.router.broadcasts.burst = next.broadcast_burst;
    this.work.rate = next.work_rate;
    this.work.burst = next.work_burst;
    this.rsa.limit = next.handshake_concurrency;
    for (const conn of this.router.online.values())
      if (conn.outbox) conn.outbox.limit = next.max_outbound_bytes;
    this.store.setMaxBytes?.(next.store_max_bytes);
    if (this.log instanceof StructuredLogger) {
      this.log.format = next.log_format;
      this.log.level = next.log_level;
    }
    this.#stopTimers();
    this.#startTimers();
    const changed = JSON.stringify(this.connectionSettings()) !== before;
    if (changed) {
      for (const conn of this.router.online.values())
        conn.post(encodeS2S(S2SType.CONFIG, new Uint8Array(0)));
    }
    this.log.info("settings reloaded", { pushed: changed ? this.router.online.size : 0 });
  }

  /**
   * Revokes a client in the registry; when this resolves, every session of it is
   * stopped and what it had queued is dropped.
   */
  async revoke(id: string): Promise<boolean> {
    const done = await this.store.revokeClient(id, Math.floor(Date.now() / 1000));
    await this.#registry.check(true);
    return done;
  }

  /** Connections open now (authenticated or not). */
  get connectionCount(): number {
    return this.#all.size;
  }

  /** Every open connection, authenticated or not (for the monitor's /connz). */
  connections(): IterableIterator<Connection> {
    return this.#all.values();
  }

  /** Handshakes in flight. */
  get pendingHandshakes(): number {
    return this.#admission.size;
  }

  /** True while the descriptor guard keeps the listener closed (see fd-limit.ts). */
  get acceptPaused(): boolean {
    return this.#listener.paused;
  }

  /** True once `close` has begun: no new logins are accepted. */
  get closing(): boolean {
    return this.#closing !== null;
  }

  /**
   * Stops accepting, sends every client STOP `reason`, waits (at most `timeoutMs`) for
   * them to go, and finishes pending store writes. Undelivered messages are stored.
   * The store stays open (its owner closes it).
   */
  close(reason = "server shutting down", timeoutMs = 3000): Promise<void> {
    this.#closing ??= this.#close(reason, timeoutMs);
    return this.#closing;
  }

  async #close(reason: string, timeoutMs: number): Promise<void> {
    this.#stopTimers();
    this.#listener.stop(false);
    this.#admission.abortAll(reason);
    for (const conn of [...this.router.online.values()]) conn.shutdown(reason);
    const deadline = Date.now() + timeoutMs;
    while (this.#all.size > 0 && Date.now() < deadline) await Bun.sleep(10);
    for (const conn of this.#all) conn.socket.terminate();
    this.#listener.stop(true);
    await this.router.allStored();
    await this.router.flushPresence();
    await this.#registry.renewLease(true);
    await this.cluster?.leave();
    this.log.info("stopped", { reason });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
