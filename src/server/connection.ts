/**
 * One client connection on the server: the handshake (login.ts), then the client
 * handler — frames in (input.ts: decrypted and handed to the handler in order, in
 * slices, at the client's work budget), the client queue (`post`, from the server
 * core) and the outbox (the one writer of this connection).
 */
import type { Socket } from "bun";
import { ServerHandshake } from "../handshake/server.ts";
import { CONTROL, LIVE, type Outbox, type OutboxOwner, SWITCH } from "../net/outbox.ts";
import { encodeBatchOffer } from "../wire/batch.ts";
import { encodeFrame } from "../wire/frame.ts";
import { ControlType, encodeControl, Format, S2SType } from "../wire/message.ts";
import { StoredAcks } from "./acks.ts";
import {
  abortConnection,
  endOnPeerStop,
  endOutput,
  refuseLogin,
  shutdownConnection,
  stopConnection,
  stopOnProtocolError,
  stopSlowConsumer,
  terminateLater,
} from "./connection-end.ts";
import type { ServerContext } from "./context.ts";
import { ConnectionInput } from "./input.ts";
import { RawOutput } from "./raw-output.ts";
import { LEGACY_SESSION, type SessionInfo } from "./sessions.ts";

export type Phase = "handshake" | "verifying" | "open" | "closing" | "closed";

const decoder = new TextDecoder();

export class Connection implements OutboxOwner {
  readonly ctx: ServerContext;
  readonly socket: Socket<Connection>;
  readonly address: string;
  readonly prefix: string;
  readonly openedAt = performance.now();
  /** Last valid frame (performance.now() ms). */
  lastSeen = performance.now();
  phase: Phase = "handshake";
  /** Set once authenticated. */
  id: Uint8Array = new Uint8Array(0);
  idText = "";
  key = "";
  name = "";
  outbox: Outbox | null = null;
  /** Why the connection ended, for the log. */
  endReason = "closed by peer";
  /** Connection number (the server's count of connections when it opened); unix ms it opened. */
  readonly cid: number;
  readonly since = Date.now();
  /** Traffic counters read by the monitor: bytes read, frames read, bytes written before the session. */
  bytesIn = 0;
  msgsIn = 0;
  /** The client offered BATCH (0x19): its records of many messages are opened (input.ts). */
  batchIn = false;
  /** This session has sent KEYS (0x18): it gets the key directory's NOTICEs. */
  usesKeys = false;
  /** The session's tag and receive choices (from SESSION; legacy without one). */
  session: SessionInfo = LEGACY_SESSION;
  /** The first frame after the response when it was not SESSION: handled first. */
  firstPlain: Uint8Array | null = null;
  /** Why the first frame after the response is unacceptable (see session-login.ts). */
  firstError: string | null = null;
  /** Wakes a login waiting for the rest of its first frame. */
  morePaused: (() => void) | null = null;

  /** Frames in: decrypted, handled in order and in slices (input.ts). */
  readonly input: ConnectionInput = new ConnectionInput(this);
  /** @internal The handshake until the login is verified (login.ts). */
  hs: ServerHandshake | null;
  /** Live messages are deferred (in the outbox) while stored ones are delivered. */
  #holding = false;
  #idleWaiters: (() => void)[] | null = null;
  /**
   * Set once the server closes the connection (STOP sent or queued, abort) or the client
   * said STOP: nothing received afterwards is opened or acted on (§ STOP; § Encrypted
   * frames: no resynchronization), even while the STOP still waits to be written.
   * Written only by connection-end.ts.
   */
  stopped = false;
  /**
   * Set by `shutdown`: frames still arriving after the STOP are handled until the client
   * closes. Written only by connection-end.ts.
   */
  draining = false;
  /** Made only when someone waits for the end (a replacing login with a backlog). */
  #gone: PromiseWithResolvers<void> | null = null;

  constructor(ctx: ServerContext, socket: Socket<Connection>, prefix: string) {
    this.ctx = ctx;
    this.socket = socket;
    this.address = socket.remoteAddress;
    this.prefix = prefix;
    this.cid = ctx.stats.connections;
    this.#raw = new RawOutput(socket);
    this.hs = new ServerHandshake({ key: ctx.key, challengeSize: ctx.settings.challenge_size });
    this.#raw.write(encodeFrame(this.hs.challenge));
  }

  /** Bytes written before the session exists (challenge, refusal), with their own drain. */
  readonly #raw: RawOutput;

  onDrain(): void {
    if (this.#raw.drain()) {
      if (!this.#raw.waiting && this.phase === "closing" && !this.outbox) this.socket.end();
      return;
    }
    this.outbox?.drain();
  }

  /** Bytes written before the session (challenge, refusal). */
  get rawBytesOut(): number {
    return this.#raw.bytesOut;
  }

  /** Bytes written to the socket (handshake and session). */
  get bytesOut(): number {
    return this.#raw.bytesOut + (this.outbox?.bytesOut ?? 0);
  }

  /** Frames sealed for this client. */
  get msgsOut(): number {
    return this.outbox?.framesOut ?? 0;
  }

  /** True once the client holds CONFIG and may receive live messages. */
  get routable(): boolean {
    return this.phase === "open";
  }

  // ---- bytes in (input.ts) -----------------------------------------------------------

  onData(chunk: Uint8Array): void {
    this.bytesIn += chunk.length;
    this.input.onData(chunk);
  }

  /**
   * Charges `units` of server-side work (WorkBudget units) to this client: to the
   * current slice, and to its budget (`work_rate`, docs/PROTOCOL.md § Limits). Past the
   * budget, the request is still served; the client's next frames are read later.
   */
  charge(units: number): void {
    this.input.charge(units, this.ctx.work.charge(this.key, units));
  }

  /**
   * True while the server holds this connection's input (store work in flight, a slice
   * yielding, the work budget): the client is not silent then, the server is not reading.
   */
  get inputPaused(): boolean {
    return this.input.holding && this.phase === "open";
  }

  /**
   * Runs `reply` after everything in flight for this connection (so a HEARTBEAT answer
   * still follows the NOTICEs of the messages before it), or now when nothing is.
   * Returns the promise to wait for, if any.
   */
  inOrder(reply: () => void | Promise<void>): Promise<void> | undefined {
    return this.input.inOrder(reply);
  }

  /**
   * The frame being handled must finish before the next one is read (a room fan-out
   * that waits for its budget: the sender's later messages may not overtake it).
   */
  holdInput(): void {
    this.input.holdInput();
  }

  /** The input held while the login is decided (see session-login.ts). */
  takePaused(): Uint8Array[] {
    return this.input.takePaused();
  }

  // ---- the end of a login (login.ts) ------------------------------------------------

  /** Live messages wait (in the outbox) until `releaseHeld`, while stored ones are delivered. */
  holdLive(): void {
    this.#holding = true;
  }

  /** Ends a login with `reply` (the handshake's refusal, written raw); `reason` for the log. */
  refuseRaw(reply: Uint8Array, reason: string): void {
    this.#raw.write(encodeFrame(reply));
    this.endReason = reason;
    this.phase = "closing";
    this.stopped = true;
    if (!this.#raw.waiting) this.socket.end();
    terminateLater(this);
  }

  /**
   * Refuses an authenticated login with STOP `reason` as its first frame (s2c 0) — or
   * after CONFIG (`afterConfig`), for a first frame the client got wrong.
   */
  refuse(reason: string, afterConfig = false): void {
    refuseLogin(this, reason, afterConfig);
  }

  /** Closes a connection that has no session (yet): no STOP, just the socket. */
  abort(reason: string): void {
    abortConnection(this, reason);
  }

  // ---- the client queue and the outbox -------------------------------------------------

  /**
   * The client queue: the server core posts here. C2C messages are delivered; S2S
   * commands (STOP, CONFIG) are carried out; anything else is discarded and counted
   * (scoping: C2S/S2C never travel on the queue). `kind` is LIVE for a storable direct
   * message, CONTROL otherwise.
   */
  post(message: Uint8Array, kind: number = LIVE): void {
    const format = (message[0] as number) >>> 4;
    const type = (message[0] as number) & 0x0f;
    if (format === Format.C2C) this.#deliver(message, kind);
    else if (format === Format.S2S && type === S2SType.STOP)
      this.stop(decoder.decode(message.subarray(1)));
    else if (format === Format.S2S && type === S2SType.CONFIG) {
      this.reply(encodeControl(ControlType.CONFIG, this.ctx.connectionSettings()));
    } else this.ctx.stats.discarded++;
  }

  #deliver(message: Uint8Array, kind: number): void {
    if (this.phase !== "open" || !this.outbox) return;
    if (this.#holding) this.outbox.defer(message, kind);
    else {
      this.outbox.push(message, kind);
      this.ctx.schedule(this);
    }
  }

  /**
   * Queues a control message (reply, NOTICE) for this client. Made while one of its
   * frames is handled, it waits for the work of earlier frames still in flight
   * (docs/PROTOCOL.md § Messages: replies and NOTICEs keep request order). A reply made
   * later for a frame gives its place with `replyAfter`.
   */
  reply(message: Uint8Array): void {
    const gate = this.input.handling ? this.input.replyPoint() : null;
    this.input.sendAfter(gate, () => this.#replyNow(message));
  }

  #replyNow(message: Uint8Array): void {
    if (this.phase !== "open" || !this.outbox) return;
    this.outbox.push(message, CONTROL);
    this.ctx.schedule(this);
  }

  /**
   * The work of this connection's earlier frames still in flight, after which a reply to
   * the frame now at work is to be queued: the frame being handled, or the one input is
   * held for (`holdInput`). Taken when a frame's message is handed on (a store write
   * shared with other frames), it gives the reply's place later — see `replyAfter`.
   * Null when nothing earlier is in flight.
   */
  replyPoint(): Promise<void> | null {
    return this.input.replyPoint();
  }

  /**
   * Queues `message` once `after` (from `replyPoint`, taken when its frame was at work)
   * is done, so it keeps its frame's place among the replies; now when `after` is null.
   * `after` undefined: the frame at work now (`replyPoint()`) — a reply made while a
   * frame is handled or held for. Returns the promise of the queuing when it waits.
   */
  replyAfter(
    after: Promise<void> | null | undefined,
    message: Uint8Array,
  ): Promise<void> | undefined {
    const gate = after === undefined ? this.input.replyPoint() : after;
    return this.input.sendAfter(gate, () => this.#replyNow(message));
  }

  /**
   * Answers a BATCH offer with the accept (docs/PROTOCOL.md § BATCH): it is sealed alone,
   * and what is sealed after it may share records. Again on a repeated offer.
   */
  acceptBatching(): void {
    if (this.phase !== "open" || !this.outbox) return;
    this.outbox.push(encodeBatchOffer(), SWITCH);
    this.ctx.schedule(this);
  }

  /** Ends the hold on live messages once stored ones have been queued. */
  releaseHeld(): void {
    const holding = this.#holding;
    this.#holding = false;
    if (!holding || !this.outbox || this.phase !== "open") return;
    this.outbox.release();
    this.ctx.schedule(this);
  }

  /** Acknowledged delivery of stored messages (ACK) on this connection. */
  readonly acks = new StoredAcks();

  /** Resolves when everything queued has been handed to the socket, or the connection ended. */
  whenIdle(): Promise<void> {
    if (!this.outbox || this.outbox.idle || this.phase === "closed") return Promise.resolve();
    return new Promise((resolve) => {
      this.#idleWaiters ??= [];
      this.#idleWaiters.push(resolve);
    });
  }

  /**
   * @internal OutboxOwner: the backlog toward this client — whatever queued it: replies,
   * NOTICEs, live or stored messages — passed `max_outbound_bytes`.
   */
  outboxOverflow(pending: number): void {
    if (this.phase === "open") stopSlowConsumer(this, pending);
  }

  /** @internal OutboxOwner: the counter space is used up. */
  outboxExhausted(): void {
    this.stop("rekey required");
  }

  /** @internal OutboxOwner: everything queued has been handed to the socket. */
  outboxIdle(): void {
    this.#onIdle();
  }

  #onIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = null;
    if (waiters) for (const w of waiters) w();
    if (this.phase === "closing") endOutput(this);
  }

  /**
   * Takes the live direct messages not yet handed to the socket (held and queued), to
   * be stored or given to a replacing connection.
   */
  takeUndelivered(): Uint8Array[] {
    return this.outbox?.takeUndelivered(this.phase === "closed") ?? [];
  }

  /** Takes over messages a replaced connection had not delivered; they go after stored ones. */
  inherit(messages: Uint8Array[]): void {
    for (const m of messages) this.#deliver(m, LIVE);
  }

  // ---- the end --------------------------------------------------------------------

  /** Resolves once the socket is gone and what it had not delivered is on its way to the store. */
  get gone(): Promise<void> {
    this.#gone ??= Promise.withResolvers<void>();
    if (this.phase === "closed") this.#gone.resolve();
    return this.#gone.promise;
  }

  /**
   * Sends STOP with `reason` after what was already sealed, then closes. Undelivered
   * live messages are stored for the client's next login.
   */
  stop(reason: string): void {
    stopConnection(this, reason);
  }

  /**
   * The server is stopping (docs/PROTOCOL.md § STOP `server shutting down`): every frame
   * already received is handled and answered first, then STOP; frames the client sent
   * before it saw the STOP are still handled (routed or stored) until it closes, so
   * nothing that reached the socket is lost.
   */
  shutdown(reason: string): void {
    shutdownConnection(this, reason);
  }

  /** The client said STOP: close without answering. */
  peerStopped(reason: string): void {
    endOnPeerStop(this, reason);
  }

  /** The client broke the protocol: STOP `protocol error`. */
  protocolError(detail: string): void {
    stopOnProtocolError(this, detail);
  }

  /** The socket is gone: store what was not delivered, free everything. */
  onClose(): void {
    if (this.phase === "closed") return;
    const wasAuthenticated = this.outbox !== null;
    this.phase = "closed";
    this.hs?.dispose();
    this.hs = null;
    this.outbox?.close();
    // Frames that arrived before the close are still handled (routed); then the key goes.
    this.input.onClose();
    // A handshake that failed (aborted or refused, phase "closing") frees its place in
    // the pending limits too, not only one closed mid-way: else every failure would hold
    // a per-prefix slot until the sweep at connection_timeout. (Idempotent.)
    if (!wasAuthenticated) this.ctx.handshakeEnded(this, false);
    if (wasAuthenticated) {
      this.ctx.router.unregister(this);
      this.ctx.router.storeUndelivered(this, this.takeUndelivered());
      this.ctx.log.info("disconnect", {
        id: this.idText,
        name: this.name,
        addr: this.address,
        reason: this.endReason,
      });
    }
    this.#onIdle();
    this.acks.end();
    this.#gone?.resolve();
    this.morePaused?.();
  }
}
