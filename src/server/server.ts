/**
 * The backbone server: listens with `Bun.listen`, runs handshakes under the abuse
 * limits, keeps the registry of online clients, and times out the silent.
 *
 * @example
 * await using server = await BackboneServer.start({ key, store, settings: { port: 0 } });
 * console.log(`listening on ${server.hostname}:${server.port}`);
 */
import { isIP } from "node:net";
import type { Socket, TCPSocketListener } from "bun";
import { formatHostPort } from "../client/address.ts";
import type { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import { UsageError } from "../errors.ts";
import { warmDummyKeys } from "../handshake/dummy-keys.ts";
import { StandIn } from "../handshake/server.ts";
import { idToText } from "../ids.ts";
import { type Logger, StructuredLogger, silentLogger } from "../log.ts";
import type { ClientRecord, Store } from "../store/store.ts";
import { encodeS2S, S2SType } from "../wire/message.ts";
import type { ConnectionSettings } from "../wire/settings.ts";
import type { Cluster } from "./cluster.ts";
import { Connection } from "./connection.ts";
import { addClosed, newStats, type ServerContext, type Stats } from "./context.ts";
import { DescriptorGuard, raiseFdLimit } from "./fd-limit.ts";
import { handleMessage } from "./handler.ts";
import { ClientKeyCache } from "./key-cache.ts";
import { addressPrefix, RateLimiter, Semaphore, WorkBudget } from "./limits.ts";
import { Lease, RENEW_MS } from "./nodes.ts";
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

  #listener: TCPSocketListener<Connection> | null = null;
  #all = new Set<Connection>();
  #pending = new Set<Connection>();
  #pendingPerPrefix = new Map<string, number>();
  #dirty = new Set<Connection>();
  #flushScheduled = false;
  #keys = new ClientKeyCache(KEY_CACHE);
  #timers: ReturnType<typeof setInterval>[] = [];
  #registryVersion = -1;
  /** The port bound (the real one when started with port 0), to listen again on. */
  #boundPort: number | null = null;
  /** When to stop and resume listening for want of descriptors (fd-limit.ts). */
  #fds: DescriptorGuard | null = null;
  #closing: Promise<void> | null = null;
  /** This node's lease in the store (nodes.ts): liveness and revocations carried out. */
  readonly #lease: Lease;

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
    this.#lease = new Lease(this.store);
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
    server.#registryVersion = await server.store.version();
    // Nobody revoked can log in, so every revocation so far is carried out.
    server.#lease.appliedSerial = await server.store.revocationSerial();
    await server.#renewLease();
    const fds = raiseFdLimit();
    server.#listen(server.settings.port);
    server.#fds = new DescriptorGuard(fds, server.#all.size, server.log);
    server.#startTimers();
    return server;
  }

  /** The address the server listens on. */
  get hostname(): string {
    return this.#listener?.hostname ?? this.settings.host;
  }

  /** The port the server listens on (the real one when started with port 0). */
  get port(): number {
    return this.#listener?.port ?? this.#boundPort ?? this.settings.port;
  }

  #listen(port: number): void {
    try {
      this.#listener = Bun.listen<Connection>({
        hostname: this.settings.host,
        port,
        // Bun takes reusePort for listeners too; its types list it for connect only.
        ...(this.settings.reuse_port ? ({ reusePort: true } as object) : {}),
        socket: {
          open: (socket) => this.#guard(socket, () => this.#onOpen(socket)),
          data: (socket, chunk) => this.#guard(socket, () => socket.data?.onData(chunk)),
          drain: (socket) => this.#guard(socket, () => socket.data?.onDrain()),
          close: (socket) => this.#guard(socket, () => this.#onClose(socket)),
          error: (socket, error) => {
            this.log.debug("socket error", { addr: socket.remoteAddress, error: error.message });
          },
        },
      });
    } catch (cause) {
      throw listenError(this.settings.host, port, cause);
    }
    this.#boundPort = this.#listener.port;
  }

  // ---- file descriptors (fd-limit.ts) -----------------------------------------------

  /**
   * Stops listening when the connections would leave too few descriptors (accept()
   * would fail with EMFILE in a busy loop), and listens again once one has closed.
   */
  #checkDescriptors(): void {
    if (!this.#fds || this.#closing) return;
    const action = this.#fds.check(this.#all.size);
    if (action === "pause") {
      this.#listener?.stop(false); // existing connections stay
      this.#listener = null;
    } else if (action === "resume") {
      try {
        this.#listen(this.#boundPort ?? this.settings.port);
      } catch (err) {
        this.log.error("cannot listen again", { error: (err as Error).message });
        return; // tried again at the next close or sweep
      }
      this.#fds.resumed(this.#all.size);
    }
  }

  /**
   * Runs a socket callback; a bug that throws is logged as an error and ends that
   * connection only (Bun would hand it to the socket's error handler, where a network
   * error is routine and logged at debug level).
   */
  #guard(socket: Socket<Connection>, task: () => void): void {
    try {
      task();
    } catch (err) {
      this.log.error("internal error", {
        addr: socket.remoteAddress,
        id: socket.data?.idText || undefined,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
      if (socket.data) socket.data.stop("internal error");
      else socket.terminate();
    }
  }

  #onOpen(socket: Socket<Connection>): void {
    const s = this.settings;
    const addr = socket.remoteAddress;
    if (!addr) {
      // Reset by the peer before it was accepted: there is no one to talk to.
      this.log.debug("connection gone before it was accepted");
      socket.terminate();
      return;
    }
    this.stats.connections++;
    const prefix = addressPrefix(addr);
    const fromPrefix = this.#pendingPerPrefix.get(prefix) ?? 0;
    if (fromPrefix >= s.max_pending_per_prefix) {
      // The newcomer is refused: only the crowding prefix pays.
      this.stats.handshakesRefused++;
      this.stats.refusedPrefix++;
      this.log.warn("too many handshakes from one prefix", { addr: socket.remoteAddress, prefix });
      socket.terminate();
      return;
    }
    if (this.#pending.size >= s.max_pending_handshakes) {
      // Globally full: the oldest is dropped, so a slow flood cannot lock everyone out.
      const oldest = this.#pending.values().next().value as Connection;
      this.stats.handshakesRefused++;
      this.stats.refusedCapacity++;
      oldest.abort("handshake capacity reached (oldest dropped)");
      this.handshakeEnded(oldest, false);
    }
    const conn = new Connection(this, socket, prefix);
    socket.data = conn;
    socket.setNoDelay(true);
    this.#all.add(conn);
    this.#pending.add(conn);
    this.#pendingPerPrefix.set(prefix, fromPrefix + 1);
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
    if (!this.#pending.delete(conn)) return;
    const n = (this.#pendingPerPrefix.get(conn.prefix) ?? 1) - 1;
    if (n > 0) this.#pendingPerPrefix.set(conn.prefix, n);
    else this.#pendingPerPrefix.delete(conn.prefix);
    if (ok) this.stats.handshakesOk++;
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
    this.#timers.push(setInterval(() => void this.#watchRegistry(), REGISTRY_POLL_MS));
    this.#timers.push(setInterval(() => void this.#renewLease(), RENEW_MS));
    this.#timers.push(setInterval(() => void this.#expire(), EXPIRE_EVERY_MS));
    for (const t of this.#timers) t.unref?.();
    void this.#expire();
  }

  #stopTimers(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /** Drops handshakes past `connection_timeout` and clients silent past `heartbeat_timeout`. */
  #sweep(): void {
    const now = performance.now();
    const handshakeLimit = this.settings.connection_timeout * 1000;
    for (const conn of this.#pending) {
      if (now - conn.openedAt < handshakeLimit) break; // oldest first
      this.stats.handshakeTimeouts++;
      conn.abort("connection timeout");
      this.handshakeEnded(conn, false);
    }
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

  async #renewLease(ended = false): Promise<void> {
    try {
      await this.#lease.renew(ended);
    } catch (err) {
      this.log.warn("lease not renewed", { error: String(err) });
    }
  }

  #registryCheck: Promise<void> | null = null;

  /**
   * Notices registry changes made by other processes (`backbone revoke`): every session
   * of a revoked client is stopped, the messages it had queued are dropped (counted,
   * logged), and the revocation serial is confirmed in this node's lease — which
   * `revoke` waits for. `force`: check even if the store's version looks unchanged.
   */
  #watchRegistry(force = false): Promise<void> {
    const run = async () => {
      try {
        const version = await this.store.version();
        if (version === this.#registryVersion && !force) return;
        this.#registryVersion = version;
        this.router.rooms.invalidate(); // another process changed the store (rooms.ts)
        const serial = await this.store.revocationSerial();
        if (serial === this.#lease.appliedSerial && !force) return;
        const revoked = new Map<string, string>();
        for (const conn of [...this.router.online.values()]) {
          const record = await this.store.getClient(conn.idText);
          if (!record || record.revokedAt !== null) {
            this.#cutOff(conn);
            revoked.set(conn.idText, conn.name);
          }
        }
        await this.router.allStored(); // what they sent before the cut is in the store now
        for (const c of await this.store.listClients()) {
          if (c.revokedAt === null) continue;
          await this.router.rooms.forget(c.id); // out of every room (rooms.ts)
          const dropped = await this.store.dropFromSender(c.id);
          if (dropped > 0) {
            this.stats.discarded += dropped;
            this.log.warn("dropped messages of a revoked client", {
              id: c.id,
              name: c.name,
              count: dropped,
            });
          }
        }
        this.#lease.appliedSerial = serial;
        await this.#renewLease();
      } catch (err) {
        this.log.error("registry check failed", { error: String(err) });
      }
    };
    const next = (this.#registryCheck ?? Promise.resolve()).then(run);
    this.#registryCheck = next;
    return next;
  }

  #cutOff(conn: Connection): void {
    this.log.info("revoked", { id: conn.idText, name: conn.name });
    conn.post(encodeS2S(S2SType.STOP, new TextEncoder().encode("revoked")));
  }

  async #expire(): Promise<void> {
    try {
      const n = await this.store.expire(
        Math.floor(Date.now() / 1000) - this.settings.queue_max_age,
      );
      if (n > 0) this.log.info("expired stored messages", { count: n });
    } catch (err) {
      this.log.error("expiry failed", { error: String(err) });
    }
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
    await this.#watchRegistry(true);
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
    return this.#pending.size;
  }

  /** True once `close` has begun: no new logins are accepted. */
  /** True while the descriptor guard keeps the listener closed (see fd-limit.ts). */
  get acceptPaused(): boolean {
    return this.#fds?.paused ?? false;
  }

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
    this.#listener?.stop(false);
    for (const conn of [...this.#pending]) conn.abort(reason);
    for (const conn of [...this.router.online.values()]) conn.shutdown(reason);
    const deadline = Date.now() + timeoutMs;
    while (this.#all.size > 0 && Date.now() < deadline) await Bun.sleep(10);
    for (const conn of this.#all) conn.socket.terminate();
    this.#listener?.stop(true);
    await this.router.allStored();
    await this.router.flushPresence();
    await this.#renewLease(true);
    await this.cluster?.leave();
    this.log.info("stopped", { reason });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The one-line `UsageError` `LISTEN_FAILED` for a failed bind(2): the port taken
 * (EADDRINUSE), a privileged port (EACCES), an address not on this machine
 * (EADDRNOTAVAIL) or a host name that does not resolve. The errno code stays on `cause`.
 */
export function listenError(host: string, port: number, cause: unknown): UsageError {
  const code = (cause as { code?: string }).code;
  const where = `cannot listen on ${formatHostPort(host, port)}`;
  const why =
    code === "EADDRINUSE"
      ? `port ${port} is already in use (another backbone server or another program holds it)`
      : code === "EACCES"
        ? `permission denied (ports below 1024 need privileges)`
        : code === "EADDRNOTAVAIL"
          ? `${host} is not an address of this machine`
          : code === undefined && isIP(host) === 0
            ? `${host} does not resolve to an address of this machine`
            : (code ?? (cause as Error)?.message ?? String(cause));
  return new UsageError("LISTEN_FAILED", `${where}: ${why}`, { cause });
}
