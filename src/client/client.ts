/**
 * The backbone client library: connect with an identity, send and receive C2C
 * messages, query status, and stay connected — heartbeats, dead-server detection and
 * reconnects with exponential backoff and jitter. A server whose key is not the pinned
 * one, and a refused login, are final: the client never retries those silently.
 *
 * @example
 * await using alice = await connect({ identity: "alice.identity" });
 * alice.on("message", (m) => console.log(m.from, new TextDecoder().decode(m.data)));
 * alice.send(bobId, "hello");
 * console.log(await alice.serverStatus());
 */
import { EventEmitter } from "node:events";
import { ConnectionError, HandshakeError, UsageError } from "../errors.ts";
import { BROADCAST, idToBytes, idToText, isUuid } from "../ids.ts";
import { LIVE } from "../net/outbox.ts";
import { checkRoomName, isRoomAddress } from "../rooms/names.ts";
import { C2C_HEADER_BYTES, MAX_STATUS_QUERY, STORED_HEADER_BYTES } from "../wire/constants.ts";
import {
  C2CType,
  ControlType,
  decodeJson,
  decodeMessage,
  encodeAckBody,
  encodeC2C,
  encodeControl,
  Format,
  type Message,
} from "../wire/message.ts";
import { C2C_ROOM, C2C_ROOM_STORED, encodeRoomMessage } from "../wire/room.ts";
import {
  applyConnectionSettings,
  type ConnectionSettings,
  DEFAULT_CONNECTION_SETTINGS,
} from "../wire/settings.ts";
import { StoredAcks } from "./acks.ts";
import { parseHostPort } from "./address.ts";
import { type Identity, type IdentityOptions, loadIdentity } from "./identity.ts";
import { Incoming } from "./incoming.ts";
import { Link, type LinkEnd } from "./link.ts";
import { messageIterator } from "./messages.ts";
import { Requests } from "./requests.ts";
import { NO_ADDRESS, Rooms, roomControl, unsentRoomMessage } from "./rooms.ts";
import { ClientSession } from "./session.ts";
import type {
  ClientEvents,
  ClientStatusEntry,
  ConnectOptions,
  IncomingMessage,
  Notice,
  ServerStatus,
} from "./types.ts";

/** STOP reasons after which reconnecting would be wrong. */
const FINAL_STOPS = new Set(["replaced by a new connection", "revoked", "authentication failed"]);

const encoder = new TextEncoder();

/**
 * Connects to a backbone server and authenticates. Resolves once the first CONFIG has
 * arrived. Rejects with `PinningError` (server key differs from the pinned one),
 * `HandshakeError` (refused: unknown or revoked client, wrong key), `ConnectionError`
 * (unreachable within `waitForServer`), `KeyError` / `UsageError` (bad identity).
 */
export async function connect(options: ConnectOptions): Promise<Client> {
  const identity = await resolveIdentity(options);
  const client = new Client(identity, options);
  await client.start();
  return client;
}

/** `connect({ passphrase })` as `loadIdentity` takes it: a string is tried once. */
function passphraseOption(p: ConnectOptions["passphrase"]): IdentityOptions {
  if (p === undefined) return {};
  if (typeof p !== "string") return { passphrase: p };
  let given = false;
  return {
    passphrase: async () => {
      if (given) return undefined;
      given = true;
      return p;
    },
  };
}

async function resolveIdentity(o: ConnectOptions): Promise<Identity> {
  const base =
    typeof o.identity === "string"
      ? await loadIdentity(o.identity, passphraseOption(o.passphrase))
      : o.identity
        ? { ...o.identity }
        : null;
  if (base) {
    if (o.server) base.server = o.server;
    return base;
  }
  if (!o.id || !o.key || !o.serverKey || !o.server) {
    throw new UsageError(
      "BAD_OPTIONS",
      "connect() needs an identity, or id + key + serverKey + server",
    );
  }
  return {
    id: o.id.toLowerCase(),
    name: o.name ?? o.id,
    server: o.server,
    key: o.key,
    serverKey: o.serverKey,
  };
}

export class Client extends EventEmitter<ClientEvents> implements AsyncDisposable {
  /** This client's ID and name. */
  readonly id: string;
  readonly name: string;
  /** `host:port` of the server. */
  readonly server: string;
  /** Connection settings from the latest CONFIG. */
  settings: ConnectionSettings = { ...DEFAULT_CONNECTION_SETTINGS };

  readonly #identity: Identity;
  readonly #opts: ConnectOptions;
  /** This client's session tag and receive choices. */
  readonly session: ClientSession;
  #link: Link | null = null;
  #requests = new Requests();
  #buffer: Uint8Array[] = [];
  #bufferBytes = 0;
  #closed = false;
  #finished = false;
  #closedPromise: PromiseWithResolvers<void> = Promise.withResolvers();
  #timer: ReturnType<typeof setInterval> | null = null;
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;
  #lastHeartbeat = 0;
  /** Stored messages received on the current connection, acknowledged once handled. */
  readonly #acks = new StoredAcks((count) => {
    if (this.#link?.open) this.#link.send(encodeControl(ControlType.ACK, encodeAckBody(count)));
  });
  /** Set when the `incoming` hook failed: no more stored messages acknowledged on this connection. */
  #ackHeld = false;
  #addresses = new Map<string, Uint8Array>();

  /** Use `connect()`. */
  constructor(identity: Identity, options: ConnectOptions) {
    super();
    this.#identity = identity;
    this.#opts = options;
    this.id = identity.id;
    this.name = identity.name;
    this.server = identity.server;
    this.session = new ClientSession(options.session);
  }

  /** True while a session is open. */
  get connected(): boolean {
    return this.#link?.open ?? false;
  }

  /** Resolves when the client has closed for good (after `close()` or a final error). */
  get closed(): Promise<void> {
    return this.#closedPromise.promise;
  }

  /** @internal First connection, retrying for `waitForServer` ms when the server is unreachable. */
  async start(): Promise<void> {
    const deadline = performance.now() + (this.#opts.waitForServer ?? 0);
    for (;;) {
      try {
        await this.#open();
        return;
      } catch (err) {
        // The last attempt is made at the deadline itself, not one backoff before it.
        const remaining = deadline - performance.now();
        if (!retryable(err) || remaining <= 0 || this.#closed) {
          this.#finish(err as Error);
          throw err;
        }
        const wait = Math.min(this.#nextDelay(), remaining);
        const info = { attempt: this.#attempt, delayMs: wait, error: err as Error };
        this.#opts.onRetry?.(info);
        this.emit("reconnecting", info);
        await Bun.sleep(wait);
      }
    }
  }

  async #open(): Promise<void> {
    const { host, port } = parseHostPort(this.server);
    const timeoutMs = (this.#opts.connectTimeout ?? this.settings.connection_timeout) * 1000;
    let opened: Link | null = null;
    let endedEarly: LinkEnd | null = null;
    const { link, config } = await Link.open(
      this.#identity,
      host,
      port,
      timeoutMs,
      {
        message: (plain) => this.#onMessage(plain),
        // The link can end between CONFIG and this continuation: remember it, then fail.
        end: (how) => {
          if (opened) this.#onEnd(opened, how);
          else endedEarly = how;
        },
      },
      this.session.message(),
      this.#opts.batch !== false,
    );
    opened = link;
    if (endedEarly) {
      const how = endedEarly as LinkEnd;
      throw (
        how.error ??
        new ConnectionError("CLOSED", how.stop ? `server said: ${how.stop}` : "connection closed")
      );
    }
    if (this.#closed) {
      link.stop("client closed");
      return;
    }
    try {
      this.#applyConfig(config);
    } catch (cause) {
      // Settings out of range (docs/PROTOCOL.md § Connection settings): a protocol error.
      link.stop("protocol error");
      throw new HandshakeError("config", "BAD_CONFIG", (cause as Error).message, { cause });
    }
    this.#link = link;
    this.#acks.reset();
    this.#ackHeld = false;
    this.#attempt = 0;
    this.#startTimer();
    const buffered = this.#buffer;
    this.#buffer = [];
    this.#bufferBytes = 0;
    for (const m of buffered) link.send(m, LIVE);
    this.emit("connect", { server: this.server, serverKey: this.#identity.serverKey.fingerprint });
    // Messages that came with CONFIG (stored ones) are handled on the next turn of the
    // event loop, once the caller of connect() has had the chance to add its listeners.
    setImmediate(() => link.start());
  }

  #nextDelay(): number {
    const initial = this.#opts.backoff?.initialMs ?? 250;
    const max = this.#opts.backoff?.maxMs ?? 30_000;
    const base = Math.min(max, initial * 2 ** this.#attempt);
    this.#attempt++;
    return Math.round(base / 2 + Math.random() * (base / 2)); // "equal jitter"
  }

  #onEnd(link: Link, how: LinkEnd): void {
    if (link !== this.#link) return;
    this.#link = null;
    // What never reached the socket goes out again on the next connection, first.
    const unsent = link.takeUnsent();
    if (unsent.length > 0 && !this.#closed) {
      this.#buffer = [...unsent, ...this.#buffer];
      for (const m of unsent) this.#bufferBytes += m.length;
      this.emit(
        "requeued",
        unsent.map((m) =>
          m[0] === C2C_ROOM
            ? unsentRoomMessage(m)
            : { to: idToText(m.subarray(1, C2C_HEADER_BYTES)), data: m.subarray(C2C_HEADER_BYTES) },
        ),
      );
    }
    this.#stopTimer();
    this.#requests.failAll(
      new ConnectionError("DISCONNECTED", how.stop ? `server said: ${how.stop}` : "disconnected"),
    );
    const final =
      this.#closed ||
      (how.stop !== undefined && FINAL_STOPS.has(how.stop)) ||
      this.#opts.reconnect === false;
    const reason = this.#closed
      ? "closed by this client"
      : (how.stop ?? how.error?.message ?? "closed");
    this.emit("disconnect", { reason, willReconnect: !final });
    if (final) {
      this.#finish(
        how.stop && FINAL_STOPS.has(how.stop)
          ? new ConnectionError("STOPPED", `server said: ${how.stop}`)
          : undefined,
      );
      return;
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect(error?: Error): void {
    if (this.#closed) return;
    const delayMs = this.#nextDelay();
    this.emit("reconnecting", { attempt: this.#attempt, delayMs, ...(error ? { error } : {}) });
    this.#reconnectTimer = setTimeout(async () => {
      this.#reconnectTimer = null;
      try {
        await this.#open();
      } catch (err) {
        if (!retryable(err)) this.#finish(err as Error);
        else this.#scheduleReconnect(err as Error);
      }
    }, delayMs);
  }

  #finish(error?: Error): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#closed = true;
    this.#stopTimer();
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#requests.failAll(new ConnectionError("CLOSED", "client closed"));
    this.emit("close", error ? { error } : {});
    this.#closedPromise.resolve();
  }

  // ---- heartbeats and liveness ----------------------------------------------------------

  #startTimer(): void {
    this.#stopTimer();
    const every = Math.max(
      20,
      Math.min(this.settings.heartbeat_interval, this.settings.heartbeat_timeout) * 250,
    );
    this.#timer = setInterval(() => this.#tick(), every);
    this.#timer.unref?.();
  }

  #stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    const link = this.#link;
    if (!link?.open) return;
    const now = performance.now();
    if (now - link.lastReceived > this.settings.heartbeat_timeout * 1000) {
      // The server said nothing for heartbeat_timeout, though it answers every HEARTBEAT: dead.
      link.terminate();
      return;
    }
    // HEARTBEAT after heartbeat_interval without sending — or without receiving, so a
    // client that only sends still hears from the server (docs/PROTOCOL.md § Liveness).
    const interval = this.settings.heartbeat_interval * 1000;
    if (
      now - link.lastSent >= interval ||
      (now - link.lastReceived >= interval && now - this.#lastHeartbeat >= interval)
    ) {
      this.#lastHeartbeat = now;
      this.#requests.expect(ControlType.HEARTBEAT, null);
      link.send(encodeControl(ControlType.HEARTBEAT));
    }
  }

  #applyConfig(json: Record<string, unknown>): void {
    const before = JSON.stringify(this.settings);
    this.settings = applyConnectionSettings(this.settings, json);
    if (JSON.stringify(this.settings) !== before) this.#startTimer();
    this.emit("config", this.settings);
  }

  // ---- incoming -----------------------------------------------------------------------

  #onMessage(plain: Uint8Array): void {
    const b0 = plain[0] as number;
    if (b0 >>> 4 === Format.C2C) {
      const type = b0 & 0x0f;
      if (type === C2C_ROOM || type === C2C_ROOM_STORED) {
        this.#onRoomMessage(plain, type);
        return;
      }
      const header = type === C2CType.STORED ? STORED_HEADER_BYTES : C2C_HEADER_BYTES;
      if (type > C2CType.STORED || plain.length < header) return; // reserved or malformed
      if (!this.session.wants(type === C2CType.STORED)) return; // not taken, not acknowledged
      const shown = this.#filter(new Incoming(plain, type));
      if (shown) this.emit("message", shown);
      // After a failed hook, stored messages are no longer acknowledged on this connection.
      if (type === C2CType.STORED && !this.#ackHeld) this.#acks.received();
      return;
    }
    let msg: Message;
    try {
      msg = decodeMessage(plain);
    } catch {
      return; // reserved or malformed: discarded
    }
    if (msg.format !== Format.CONTROL) return;
    switch (msg.type) {
      case ControlType.CONFIG: {
        let json: Record<string, unknown>;
        try {
          json = decodeJson(msg.body);
        } catch {
          return; // an unreadable CONFIG changes nothing
        }
        try {
          this.#applyConfig(json);
        } catch {
          // A setting out of range: STOP `protocol error` (docs/PROTOCOL.md § Connection settings).
          this.#link?.stop("protocol error");
        }
        return;
      }
      case ControlType.NOTICE:
        try {
          this.emit("notice", decodeJson(msg.body) as unknown as Notice);
        } catch {
          // ignored
        }
        return;
      case ControlType.ROOM:
        roomControl(this, this.#requests, msg.body);
        return;
      case ControlType.HEARTBEAT:
      case ControlType.SERVER_STATUS:
      case ControlType.CLIENT_STATUS:
      case ControlType.KEYS:
        this.#requests.answer(msg.type, msg.body);
        return;
    }
  }

  #onRoomMessage(plain: Uint8Array, type: number): void {
    const stored = type === C2C_ROOM_STORED;
    let m: Incoming;
    try {
      m = new Incoming(plain, type);
    } catch {
      return; // malformed: discarded
    }
    if (!this.session.wants(stored)) return;
    this.emit("message", m);
    // After a failed hook, no stored message of any kind is acknowledged on this connection.
    if (stored && !this.#ackHeld) this.#acks.received();
  }

  /**
   * Async iterator over incoming messages, from now until the client closes.
   * @example for await (const m of client.messages()) console.log(m.from, m.data);
   */
  messages(): AsyncIterableIterator<IncomingMessage> {
    return messageIterator(this, this.#acks);
  }

  /**
   * Runs the `incoming` option (the E2E layer) on a message: its result is delivered,
   * or nothing when null. When it throws (its state could not be saved, say), no more
   * stored messages are acknowledged on this connection — the server delivers them
   * again at the next login — and null is returned.
   */
  #filter(m: Incoming): IncomingMessage | null {
    const hook = this.#opts.incoming;
    if (!hook) return m;
    try {
      return hook(m);
    } catch (err) {
      this.#ackHeld = true;
      this.emit("incomingError", { error: err as Error });
      return null;
    }
  }

  // ---- outgoing -----------------------------------------------------------------------

  /**
   * Sends `data` to the client `to` (an ID), or to every other member of the room `to`
   * when it is written `#name` (docs/PROTOCOL.md § Rooms; a non-member gets NOTICE
   * `not_member`). Returns at once; the server answers with a
   * `notice` event only when it could not deliver live (queued, unknown, rejected …).
   * While reconnecting, messages are buffered (up to `maxBufferedBytes`).
   * Throws `UsageError` (`BAD_ID`, `TOO_LARGE`) or `ConnectionError` (`NOT_CONNECTED`).
   */
  send(to: string | Uint8Array, data: Uint8Array | string): void {
    if (typeof to === "string" && isRoomAddress(to)) {
      this.#queue(encodeRoomMessage(NO_ADDRESS, checkRoomName(to), this.#bytes(data)));
      return;
    }
    const address = typeof to === "string" ? this.#address(to) : to;
    this.#queue(encodeC2C(C2CType.DIRECT, address, this.#bytes(data)));
  }

  /** ID text → bytes, remembered: a busy sender names the same few peers over and over. */
  #address(id: string): Uint8Array {
    let bytes = this.#addresses.get(id);
    if (!bytes) {
      bytes = idToBytes(checkId(id));
      if (this.#addresses.size >= 4096) this.#addresses.clear();
      this.#addresses.set(id, bytes);
    }
    return bytes;
  }

  /** Room membership: create, invite, join, leave, members … (docs/PROTOCOL.md § Rooms). */
  readonly rooms: Rooms = new Rooms((body) =>
    this.#request(ControlType.ROOM, body).then(decodeJson),
  );

  /** Sends `data` to every other online client. */
  broadcast(data: Uint8Array | string): void {
    this.#queue(encodeC2C(C2CType.BROADCAST, idToBytes(BROADCAST), this.#bytes(data)));
  }

  #bytes(data: Uint8Array | string): Uint8Array {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (bytes.length > this.settings.max_message_size) {
      throw new UsageError(
        "TOO_LARGE",
        `message of ${bytes.length} bytes exceeds the server's limit of ${this.settings.max_message_size}`,
      );
    }
    return bytes;
  }

  #queue(message: Uint8Array): void {
    if (this.#closed) throw new ConnectionError("CLOSED", "client closed");
    if (this.#link?.open) {
      this.#link.send(message, LIVE);
      return;
    }
    const max = this.#opts.maxBufferedBytes ?? 8 * 1024 * 1024;
    if (this.#opts.reconnect === false || this.#bufferBytes + message.length > max) {
      throw new ConnectionError("NOT_CONNECTED", "not connected to the server");
    }
    this.#buffer.push(message);
    this.#bufferBytes += message.length;
  }

  /** Bytes accepted by `send` and not yet written to the socket. */
  get pendingBytes(): number {
    return this.#bufferBytes + (this.#link?.pendingBytes ?? 0);
  }

  #request(type: ControlType, body?: Record<string, unknown>): Promise<Uint8Array> {
    const link = this.#link;
    if (!link?.open)
      return Promise.reject(new ConnectionError("NOT_CONNECTED", "not connected to the server"));
    const answer = this.#requests.expect(type, this.settings.heartbeat_timeout * 1000);
    link.send(encodeControl(type, body));
    return answer;
  }

  /**
   * Round trip to the server in ms. The server handles a connection's frames in order,
   * so when this resolves every message sent before it has been routed or stored (and
   * its NOTICE, if any, has arrived).
   */
  async ping(): Promise<number> {
    const start = performance.now();
    await this.#request(ControlType.HEARTBEAT);
    return performance.now() - start;
  }

  /** The server's status (SERVER_STATUS). */
  async serverStatus(): Promise<ServerStatus> {
    return decodeJson(await this.#request(ControlType.SERVER_STATUS)) as unknown as ServerStatus;
  }

  /** Status of clients by ID or name (at most 256), in request order. */
  async clientStatus(queries: string[]): Promise<ClientStatusEntry[]> {
    if (queries.length === 0) return [];
    if (queries.length > MAX_STATUS_QUERY) {
      throw new UsageError("TOO_MANY", `at most ${MAX_STATUS_QUERY} clients per status query`);
    }
    const reply = decodeJson(await this.#request(ControlType.CLIENT_STATUS, { clients: queries }));
    if (!Array.isArray(reply.clients) || reply.error) {
      throw new ConnectionError(
        "BAD_REPLY",
        `the server refused the status query: ${String(reply.error ?? "bad reply")}`,
      );
    }
    return reply.clients as ClientStatusEntry[];
  }

  /**
   * One request to the E2E key directory (docs/PROTOCOL.md § KEYS); resolves with the
   * server's JSON reply. src/e2e/directory.ts wraps the operations.
   */
  async keyDirectory(request: Record<string, unknown>): Promise<Record<string, unknown>> {
    return decodeJson(await this.#request(ControlType.KEYS, request));
  }

  /** The ID of a client given by ID or name. Throws `UsageError` `UNKNOWN_CLIENT`. */
  async resolve(query: string): Promise<string> {
    if (isUuid(query)) return query.toLowerCase();
    const [entry] = await this.clientStatus([query]);
    if (!entry || !("id" in entry))
      throw new UsageError("UNKNOWN_CLIENT", `no client named "${query}"`);
    return entry.id;
  }

  /**
   * Sends STOP `reason` (after anything still queued) and closes for good.
   * Resolves when the connection is closed.
   */
  async close(reason = "client closed"): Promise<void> {
    if (this.#closed) return this.closed;
    this.#closed = true;
    const link = this.#link;
    this.#stopTimer();
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    if (link?.open) {
      const gone = new Promise<void>((resolve) => this.once("disconnect", () => resolve()));
      link.stop(reason);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 1500);
      });
      await Promise.race([gone, grace]);
      clearTimeout(timer);
    }
    this.#link = null;
    this.#finish();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function checkId(text: string): string {
  if (!isUuid(text)) {
    throw new UsageError(
      "BAD_ID",
      `not a client ID: ${JSON.stringify(text)} (use client.resolve(name) for names)`,
    );
  }
  return text;
}

/** Failures worth retrying: the network, not the server's judgement or the key. */
function retryable(err: unknown): boolean {
  if (err instanceof HandshakeError)
    return (
      err.code === "CLOSED_DURING_HANDSHAKE" ||
      err.code === "TOO_MANY_SESSIONS" ||
      err.code === "UNAVAILABLE"
    );
  return err instanceof ConnectionError;
}
