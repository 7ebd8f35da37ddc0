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
import { isUuid } from "../ids.ts";
import { LIVE } from "../net/outbox.ts";
import { checkRoomName } from "../rooms/names.ts";
import { ControlType, decodeJson, encodeAckBody, encodeControl } from "../wire/message.ts";
import { encodeRoomE2E, type RoomCiphertext } from "../wire/room-e2e.ts";
import {
  applyConnectionSettings,
  type ConnectionSettings,
  DEFAULT_CONNECTION_SETTINGS,
} from "../wire/settings.ts";
import { StoredAcks } from "./acks.ts";
import { parseHostPort } from "./address.ts";
import { resolveIdentity } from "./connect-options.ts";
import { Heartbeat } from "./heartbeat.ts";
import type { Identity } from "./identity.ts";
import { Link, type LinkEnd } from "./link.ts";
import { messageIterator } from "./messages.ts";
import {
  Addresses,
  checkStatusQuery,
  describeUnsent,
  encodeBroadcast,
  encodeSend,
  messageBytes,
  statusEntries,
} from "./outgoing.ts";
import { Receiver } from "./receiver.ts";
import { Requests } from "./requests.ts";
import { backoffDelay, isFinalStop, retryable } from "./retry.ts";
import { Rooms } from "./rooms.ts";
import { ClientSession } from "./session.ts";
import type {
  ClientEvents,
  ClientStatusEntry,
  ConnectOptions,
  IncomingMessage,
  ServerStatus,
} from "./types.ts";

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
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;
  /** Stored messages received on the current connection, acknowledged once handled. */
  readonly #acks = new StoredAcks((count) => {
    if (this.#link?.open) this.#link.send(encodeControl(ControlType.ACK, encodeAckBody(count)));
  });
  /** The C2C receive path: receive choices, the `incoming` hook, acknowledgements. */
  readonly #receiver: Receiver;
  /** Heartbeats and dead-server detection. */
  readonly #heartbeat = new Heartbeat(
    () => this.#link,
    () => this.settings,
    this.#requests,
  );
  readonly #addresses = new Addresses();

  /** Use `connect()`. */
  constructor(identity: Identity, options: ConnectOptions) {
    super();
    this.#identity = identity;
    this.#opts = options;
    this.id = identity.id;
    this.name = identity.name;
    this.server = identity.server;
    this.session = new ClientSession(options.session);
    this.#receiver = new Receiver(this, this.session, this.#acks, options.incoming, {
      requests: this.#requests,
      config: (json) => {
        try {
          this.#applyConfig(json);
        } catch {
          // A setting out of range: STOP `protocol error` (docs/PROTOCOL.md § Connection settings).
          this.#link?.stop("protocol error");
        }
      },
    });
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
        message: (plain) => this.#receiver.message(plain),
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
    this.#receiver.reset();
    this.#attempt = 0;
    this.#heartbeat.start();
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
    return backoffDelay(this.#attempt++, initial, max);
  }

  #onEnd(link: Link, how: LinkEnd): void {
    if (link !== this.#link) return;
    this.#link = null;
    // What never reached the socket goes out again on the next connection, first.
    const unsent = link.takeUnsent();
    if (unsent.length > 0 && !this.#closed) {
      this.#buffer = [...unsent, ...this.#buffer];
      for (const m of unsent) this.#bufferBytes += m.length;
      this.emit("requeued", unsent.map(describeUnsent));
    }
    this.#heartbeat.stop();
    this.#requests.failAll(
      new ConnectionError("DISCONNECTED", how.stop ? `server said: ${how.stop}` : "disconnected"),
    );
    const final = this.#closed || isFinalStop(how.stop) || this.#opts.reconnect === false;
    const reason = this.#closed
      ? "closed by this client"
      : (how.stop ?? how.error?.message ?? "closed");
    this.emit("disconnect", { reason, willReconnect: !final });
    if (final) {
      this.#finish(
        isFinalStop(how.stop)
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
    this.#heartbeat.stop();
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#requests.failAll(new ConnectionError("CLOSED", "client closed"));
    this.emit("close", error ? { error } : {});
    this.#closedPromise.resolve();
  }

  #applyConfig(json: Record<string, unknown>): void {
    const before = JSON.stringify(this.settings);
    this.settings = applyConnectionSettings(this.settings, json);
    if (JSON.stringify(this.settings) !== before) this.#heartbeat.start();
    this.emit("config", this.settings);
  }

  // ---- incoming -----------------------------------------------------------------------

  /**
   * Async iterator over incoming messages, from now until the client closes.
   * @example for await (const m of client.messages()) console.log(m.from, m.data);
   */
  messages(): AsyncIterableIterator<IncomingMessage> {
    return messageIterator(this, this.#acks);
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
    this.#queue(encodeSend(to, data, this.settings.max_message_size, this.#addresses));
  }

  /**
   * Sends one end-to-end encrypted room message as C2C type 5 (docs/PROTOCOL.md § End-to-end
   * encrypted room messages): a ciphertext per member of `room`, each member getting only
   * its own. The E2E layer calls this (`E2EManager.sendRoom`); `messageId` (8 bytes)
   * comes back in the server's NOTICE `recipients`. Throws `WireError`, `ConnectionError`.
   */
  sendRoomE2E(messageId: Uint8Array, room: string, entries: readonly RoomCiphertext[]): void {
    this.#queue(encodeRoomE2E(messageId, checkRoomName(room), entries));
  }

  /** Room membership: create, invite, join, leave, members … (docs/PROTOCOL.md § Rooms). */
  readonly rooms: Rooms = new Rooms((body) =>
    this.#request(ControlType.ROOM, body).then(decodeJson),
  );

  /** Sends `data` to every other online client. */
  broadcast(data: Uint8Array | string): void {
    this.#queue(encodeBroadcast(this.#bytes(data)));
  }

  #bytes(data: Uint8Array | string): Uint8Array {
    return messageBytes(data, this.settings.max_message_size);
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
    checkStatusQuery(queries);
    const reply = await this.#request(ControlType.CLIENT_STATUS, { clients: queries });
    return statusEntries(decodeJson(reply));
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
    this.#heartbeat.stop();
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
