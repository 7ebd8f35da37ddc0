/**
 * One client connection: TCP connect, the handshake, then the session's frames.
 * `Client` (client.ts) strings links together across reconnects.
 */
import type { Socket } from "bun";
import type { Opener } from "../crypto/channel.ts";
import { ConnectionError } from "../errors.ts";
import { ClientHandshake } from "../handshake/client.ts";
import { idToBytes } from "../ids.ts";
import { CONTROL, Outbox, type OutboxOwner } from "../net/outbox.ts";
import {
  BATCH_BYTE,
  BATCH_HEADER_BYTES,
  BATCH_OFFER,
  BATCH_RECORD,
  batchKind,
  checkRecord,
  eachInRecord,
} from "../wire/batch.ts";
import { copyBytes } from "../wire/bytes.ts";
import {
  CONTROL_HEADER_BYTES,
  MAX_CHALLENGE_PAYLOAD,
  MAX_FRAME_PAYLOAD,
} from "../wire/constants.ts";
import { FrameReader } from "../wire/frame.ts";
import { ControlType, encodeControl, Format } from "../wire/message.ts";
import type { Identity } from "./identity.ts";
import {
  badRecord,
  closedDuringHandshake,
  loginWrite,
  openTimeout,
  stopReason,
  unreachable,
} from "./link-setup.ts";

/** How a link ended. */
export interface LinkEnd {
  /** The server's STOP reason, when it sent one. */
  stop?: string;
  /** What went wrong, when something did. */
  error?: Error;
}

export interface LinkHandlers {
  /** The decrypted message data of a frame (CONFIG after the first included; never STOP). */
  message(plain: Uint8Array): void;
  /** The link is gone; called once. */
  end(how: LinkEnd): void;
}

/** byte 0 of STOP: format 1, type 15. */
const STOP_BYTE = (Format.CONTROL << 4) | ControlType.STOP;

/** `stopping`: STOP sent; frames still arriving are delivered until the server closes. */
type State = "connecting" | "challenge" | "responding" | "config" | "open" | "stopping" | "closed";

export class Link implements OutboxOwner {
  readonly #handlers: LinkHandlers;
  #socket: Socket<Link> | null = null;
  #state: State = "connecting";
  #reader = new FrameReader(MAX_CHALLENGE_PAYLOAD);
  #hs: ClientHandshake;
  #opener: Opener | null = null;
  #outbox: Outbox | null = null;
  #flushScheduled = false;
  #paused: Uint8Array[] | null = null;
  /** After CONFIG, frames wait (in `#paused`) until `start()`: see there. */
  #holding = false;
  #closeHeld = false;
  #ended = false;
  #stopReason: string | undefined;
  #ready: PromiseWithResolvers<Record<string, unknown>> = Promise.withResolvers();
  /** performance.now() of the last frame received / message queued. */
  lastReceived = performance.now();
  lastSent = performance.now();

  /** SESSION (docs/PROTOCOL.md § SESSION), sent with the response; null: none. */
  readonly #session: Uint8Array | null;
  /** BATCH offered with the response (docs/PROTOCOL.md § BATCH): records are read. */
  readonly #batch: boolean;

  private constructor(
    identity: Identity,
    handlers: LinkHandlers,
    session: Uint8Array | null,
    batch: boolean,
  ) {
    this.#handlers = handlers;
    this.#session = session;
    this.#batch = batch;
    this.#hs = new ClientHandshake({
      id: idToBytes(identity.id),
      key: identity.key,
      pinnedServerKey: identity.serverKey,
    });
    this.#ready.promise.catch(() => {});
  }

  /**
   * Connects and authenticates. Resolves with the link and the first CONFIG's JSON;
   * rejects with `HandshakeError` / `PinningError` / `ConnectionError`, leaving nothing open.
   */
  static async open(
    identity: Identity,
    host: string,
    port: number,
    timeoutMs: number,
    handlers: LinkHandlers,
    session: Uint8Array | null = null,
    batch = false,
  ): Promise<{ link: Link; config: Record<string, unknown> }> {
    const link = new Link(identity, handlers, session, batch);
    const timer = setTimeout(() => link.#fail(openTimeout(host, port, timeoutMs)), timeoutMs);
    try {
      const socket = await Bun.connect<Link>({
        hostname: host,
        port,
        data: link,
        socket: {
          open: (s) => s.data.#onOpen(s),
          data: (s, chunk) => s.data.#onData(chunk),
          drain: (s) => s.data.#outbox?.drain(),
          close: (s) => s.data.#onClose(),
          error: (s, error) => s.data.#fail(error),
          connectError: (s, error) => s.data.#fail(unreachable(host, port, error)),
        },
      }).catch((cause: Error) => {
        throw unreachable(host, port, cause);
      });
      if (link.#ended) socket.terminate();
      const config = await link.#ready.promise;
      return { link, config };
    } catch (err) {
      link.#fail(err as Error);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  #onOpen(socket: Socket<Link>): void {
    this.#socket = socket;
    socket.setNoDelay(true);
    if (this.#ended) {
      socket.terminate();
      return;
    }
    this.#state = "challenge";
  }

  #onData(chunk: Uint8Array, owned = false): void {
    if (this.#paused) {
      this.#paused.push(new Uint8Array(chunk));
      return;
    }
    try {
      const rest = this.#reader.push(chunk, this.#onFrame, owned);
      if (rest) {
        this.#paused ??= [];
        this.#paused.unshift(rest);
      }
    } catch (err) {
      this.#fail(
        new ConnectionError("PROTOCOL", `bad frame from the server: ${(err as Error).message}`, {
          cause: err,
        }),
      );
    }
  }

  readonly #onFrame = (payload: Uint8Array): boolean | undefined => {
    switch (this.#state) {
      case "challenge":
        this.#state = "responding";
        this.#paused = [];
        void this.#respond(copyBytes(payload));
        return false;
      case "config": {
        let done: ReturnType<ClientHandshake["finish"]>;
        try {
          done = this.#hs.finish(payload);
        } catch (err) {
          this.#fail(err as Error);
          return false;
        }
        this.#opener = done.session.opener;
        this.#outbox = new Outbox(this.#socket as Socket<unknown>, done.session.sealer, this);

        this.#reader.max = MAX_FRAME_PAYLOAD;
        this.#state = "open";
        this.lastReceived = performance.now();
        // Stored messages follow CONFIG at once, often in the same chunk: hold them
        // until the owner has set up its handlers (`start()`), or they would be lost.
        this.#holding = true;
        this.#paused = [];
        this.#ready.resolve(done.config);
        return false;
      }
      case "open":
      case "stopping":
        return this.#onSessionFrame(payload);
      default:
        return false;
    }
  };

  async #respond(challenge: Uint8Array): Promise<void> {
    try {
      const response = await this.#hs.respond(challenge);
      if (this.#ended || !this.#socket) return;
      // SESSION, ACK 0 and the BATCH offer ride with the response, in one write.
      this.#socket.write(loginWrite(this.#hs, response, this.#session, this.#batch));
      this.#state = "config";
      const chunks = this.#paused ?? [];
      this.#paused = null;
      for (const c of chunks) this.#onData(c, true);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #onSessionFrame(payload: Uint8Array): boolean | undefined {
    let plain: Uint8Array;
    try {
      plain = (this.#opener as Opener).open(payload);
    } catch {
      this.#fail(new ConnectionError("PROTOCOL", "a frame from the server failed authentication"));
      return false;
    }
    this.lastReceived = performance.now();
    if (plain[0] === BATCH_BYTE && this.#batch) {
      const kind = batchKind(plain);
      if (kind === BATCH_OFFER) {
        this.#outbox?.startBatching(); // the accept: our records are read from now on
        return undefined;
      }
      if (kind === BATCH_RECORD) {
        try {
          checkRecord(plain);
        } catch (err) {
          this.#fail(badRecord(err));
          return false;
        }
        let result: boolean | undefined;
        eachInRecord(plain, BATCH_HEADER_BYTES, (message) => {
          result = this.#onMessage(message);
          return result !== false;
        });
        return result;
      }
    }
    return this.#onMessage(plain);
  }

  /** One message from the server, alone in its frame or from a record. */
  #onMessage(plain: Uint8Array): boolean | undefined {
    if (plain[0] === STOP_BYTE && plain.length >= CONTROL_HEADER_BYTES) {
      this.#stopReason = stopReason(plain);
      // Nothing more is sent on this link: what is queued from now on waits for the next.
      if (this.#state === "open") this.#state = "stopping";
      this.#socket?.end();
      return false;
    }
    this.#handlers.message(plain);
    return this.#state === "open" || this.#state === "stopping" ? undefined : false;
  }

  /**
   * Starts delivering the frames that follow CONFIG (held until now, so that none is
   * handled before the owner is ready for it), and a close that came meanwhile.
   */
  start(): void {
    if (!this.#holding) return;
    this.#holding = false;
    const chunks = this.#paused ?? [];
    this.#paused = null;
    for (const c of chunks) this.#onData(c, true);
    if (this.#closeHeld) this.#onClose();
  }

  /** Queues a message; frames are sealed and written together once the current task ends. */
  send(message: Uint8Array, kind: number = CONTROL): void {
    if (this.#state !== "open" || !this.#outbox) {
      throw new ConnectionError("NOT_CONNECTED", "not connected");
    }
    this.#outbox.push(message, kind);
    this.lastSent = performance.now();
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        this.#outbox?.flush();
      });
    }
  }

  /**
   * The C2C messages sent with kind LIVE that never reached the socket in full; only
   * once the link has ended (they are then sent again on the next link).
   */
  takeUnsent(): Uint8Array[] {
    return this.#ended ? (this.#outbox?.takeUndelivered(true) ?? []) : [];
  }

  /** Bytes queued or waiting for the socket. */
  get pendingBytes(): number {
    return this.#outbox?.pendingBytes ?? 0;
  }

  get open(): boolean {
    return this.#state === "open";
  }

  /** Sends STOP `reason` after anything queued, then closes. */
  stop(reason: string): void {
    if (this.#state !== "open" || !this.#outbox) {
      this.terminate();
      return;
    }
    this.#outbox.push(encodeControl(ControlType.STOP, reason), CONTROL);
    this.#endWhenIdle = true;
    this.#state = "stopping";
    this.#outbox.flush();
    setTimeout(() => this.terminate(), 1000).unref();
  }

  #endWhenIdle = false;

  /** @internal OutboxOwner: everything queued was written; after STOP, end the socket. */
  outboxIdle(): void {
    if (this.#endWhenIdle) this.#socket?.end();
  }

  /** @internal OutboxOwner: the counter space is used up; a new connection gets new keys. */
  outboxExhausted(): void {
    this.stop("rekey required");
  }

  /** Closes at once. */
  terminate(): void {
    this.#socket?.terminate();
    this.#fail(new ConnectionError("CLOSED", "connection closed"));
  }

  #onClose(): void {
    if (this.#holding && this.#state === "open") {
      this.#closeHeld = true; // handled by start(), after the frames that came before it
      return;
    }
    if (this.#state === "config" || this.#state === "responding" || this.#state === "challenge") {
      this.#fail(closedDuringHandshake());
      return;
    }
    this.#fail(
      this.#stopReason === undefined
        ? new ConnectionError("CLOSED", "connection closed by the server")
        : undefined,
    );
  }

  #fail(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    const wasOpen =
      this.#state === "open" || this.#state === "stopping" || this.#state === "closed";
    this.#state = "closed";
    this.#hs.dispose();
    this.#outbox?.close();
    this.#opener?.dispose();
    this.#socket?.terminate();
    if (!wasOpen) {
      this.#ready.reject(error ?? new ConnectionError("CLOSED", "connection closed"));
      return;
    }
    const how: LinkEnd = {};
    if (this.#stopReason !== undefined) how.stop = this.#stopReason;
    if (error && this.#stopReason === undefined) how.error = error;
    this.#handlers.end(how);
  }
}
