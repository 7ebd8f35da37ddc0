/**
 * One client connection on the server: the handshake, then the client handler —
 * frames in (decrypted and handed to the handler in order), the client queue
 * (`post`, from the server core) and the outbox (the one writer of this connection).
 *
 * Frames of one connection are handled strictly in order: when a frame needs the
 * store (an offline message, a status query), reading pauses until it is done, and
 * the bytes that arrive meanwhile wait. So replies and NOTICEs come in request order,
 * and a HEARTBEAT answer proves every earlier frame was handled. Input is also handled
 * in slices (SLICE_FRAMES, SLICE_WORK) and at the client's work budget: in between,
 * the socket is paused and the event loop serves everyone else (§ Limits).
 */
import type { Socket } from "bun";
import type { Opener } from "../crypto/channel.ts";
import { HandshakeError, type WireError } from "../errors.ts";
import { ServerHandshake, StandIn } from "../handshake/server.ts";
import { idKey, idToText } from "../ids.ts";
import { CONTROL, LIVE, Outbox, type OutboxOwner } from "../net/outbox.ts";
import { COUNTER_LIMIT, MAX_FRAME_PAYLOAD, MAX_RESPONSE_PAYLOAD } from "../wire/constants.ts";
import { encodeFrame, FrameReader } from "../wire/frame.ts";
import { ControlType, encodeControl, Format, S2SType } from "../wire/message.ts";
import { StoredAcks } from "./acks.ts";
import type { ServerContext } from "./context.ts";
import { readSessionFrame } from "./session-login.ts";
import { LEGACY_SESSION, type SessionInfo } from "./sessions.ts";

export type Phase = "handshake" | "verifying" | "open" | "closing" | "closed";

/** Bytes a connection may send while its reading is paused, before it is stopped. */
const MAX_PAUSED_BYTES = 4 * 1024 * 1024;
/** Frames with work in flight (store writes …) before reading pauses mid-input. */
const MAX_INFLIGHT = 1024;
/**
 * Input is handled in slices: after this many frames, or this many units of work
 * (WorkBudget units: store lookups, broadcast copies), the connection yields to the
 * event loop — its socket paused, so TCP holds the rest — and reads on in the next
 * turn, after every other connection's input and the timers. One client's burst then
 * costs the others at most a slice (≈ 1–2 ms here), not the whole burst.
 */
const SLICE_FRAMES = 512;
const SLICE_WORK = 512;
/** `#pauseUntil`: read on as soon as the work in flight is done (same turn). */
const AT_ONCE = -1;
/** How long a stopping connection may take to flush its STOP before it is cut. */
const STOP_GRACE_MS = 2000;

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
  rawBytesOut = 0;
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

  #reader = new FrameReader(MAX_RESPONSE_PAYLOAD);
  #hs: ServerHandshake | null;
  #opener: Opener | null = null;
  #paused: Uint8Array[] | null = null;
  #pausedBytes = 0;
  /** Live messages are deferred (in the outbox) while stored ones are delivered. */
  #holding = false;
  #idleWaiters: (() => void)[] | null = null;
  /**
   * Set once the server closes the connection (STOP sent or queued, abort) or the client
   * said STOP: nothing received afterwards is opened or acted on (§ STOP; § Encrypted
   * frames: no resynchronization), even while the STOP still waits to be written.
   */
  #stopped = false;
  /** Made only when someone waits for the end (a replacing login with a backlog). */
  #gone: PromiseWithResolvers<void> | null = null;

  constructor(ctx: ServerContext, socket: Socket<Connection>, prefix: string) {
    this.ctx = ctx;
    this.socket = socket;
    this.address = socket.remoteAddress;
    this.prefix = prefix;
    this.cid = ctx.stats.connections;
    this.#hs = new ServerHandshake({ key: ctx.key, challengeSize: ctx.settings.challenge_size });
    this.#writeRaw(encodeFrame(this.#hs.challenge));
  }

  /** Bytes written before the session exists (challenge, refusal), with their own drain. */
  #raw: Uint8Array | null = null;

  #writeRaw(bytes: Uint8Array): void {
    if (this.#raw) {
      this.#raw = Buffer.concat([this.#raw, bytes]);
      return;
    }
    const n = this.socket.write(bytes);
    if (n > 0) this.rawBytesOut += n;
    if (n >= 0 && n < bytes.length) this.#raw = bytes.subarray(n);
  }

  onDrain(): void {
    if (this.#raw) {
      const raw = this.#raw;
      this.#raw = null;
      this.#writeRaw(raw);
      if (!this.#raw && this.phase === "closing" && !this.outbox) this.socket.end();
      return;
    }
    this.outbox?.drain();
  }

  /** Bytes written to the socket (handshake and session). */
  get bytesOut(): number {
    return this.rawBytesOut + (this.outbox?.bytesOut ?? 0);
  }

  /** Frames sealed for this client. */
  get msgsOut(): number {
    return this.outbox?.framesOut ?? 0;
  }

  /** True once the client holds CONFIG and may receive live messages. */
  get routable(): boolean {
    return this.phase === "open";
  }

  // ---- bytes in -------------------------------------------------------------------

  onData(chunk: Uint8Array): void {
    this.bytesIn += chunk.length;
    if (this.#stopped || (this.phase === "closed" && !this.#paused)) return;
    if (this.#paused) {
      this.#pausedBytes += chunk.length;
      if (this.#pausedBytes > MAX_PAUSED_BYTES && this.phase !== "verifying") {
        this.stop("sending too fast");
        return;
      }
      if (this.#pausedBytes > MAX_RESPONSE_PAYLOAD * 4 && this.phase === "verifying") {
        this.abort("data before the handshake finished");
        return;
      }
      this.#paused.push(new Uint8Array(chunk));
      this.morePaused?.();
      return;
    }
    // Input straight from the event loop: a new slice begins.
    this.#sliceFrames = 0;
    this.#sliceWork = 0;
    this.#feed(chunk);
  }

  /** `owned`: the chunk is our own copy (held while paused), so remainders need no copy. */
  #feed(chunk: Uint8Array, owned = false): void {
    let rest: Uint8Array | null;
    try {
      rest = this.#reader.push(chunk, this.#onFrame, owned);
    } catch (err) {
      if (this.phase === "handshake") this.abort(`bad handshake frame: ${(err as Error).message}`);
      else this.protocolError((err as Error).message);
      return;
    }
    if (rest) {
      this.#paused ??= [];
      this.#paused.unshift(rest);
    }
    // Work still in flight for this batch of input (store writes, status queries):
    // read on once it is done, so replies keep the order of the requests.
    if (this.#inflight && !this.#paused) this.#pauseUntil(this.#takeInflight(), AT_ONCE);
  }

  /** Promises of this connection's frames not settled yet, chained in frame order. */
  #inflight: Promise<void> | null = null;
  #inflightCount = 0;
  /** Frames handled and work charged in the current slice of input. */
  #sliceFrames = 0;
  #sliceWork = 0;
  /** Milliseconds the work budget says to wait before more input is read. */
  #budgetWait = 0;
  /** When the server paused this connection's input (performance.now()); 0 when reading. */
  #pausedAt = 0;
  #socketPaused = false;

  #takeInflight(): Promise<void> | null {
    const task = this.#inflight;
    this.#inflight = null;
    this.#inflightCount = 0;
    return task;
  }

  /**
   * Charges `units` of server-side work (WorkBudget units) to this client: to the
   * current slice, and to its budget (`work_rate`, docs/PROTOCOL.md § Limits). Past the
   * budget, the request is still served; the client's next frames are read later.
   */
  charge(units: number): void {
    this.#sliceWork += units;
    const wait = this.ctx.work.charge(this.key, units);
    if (wait > this.#budgetWait) this.#budgetWait = wait;
  }

  /**
   * True while the server holds this connection's input (store work in flight, a slice
   * yielding, the work budget): the client is not silent then, the server is not reading.
   */
  get inputPaused(): boolean {
    return this.#paused !== null && this.phase === "open";
  }

  /**
   * Runs `reply` after everything in flight for this connection (so a HEARTBEAT answer
   * still follows the NOTICEs of the messages before it), or now when nothing is.
   * Returns the promise to wait for, if any.
   */
  inOrder(reply: () => void | Promise<void>): Promise<void> | undefined {
    if (!this.#inflight) {
      const now = reply();
      return now instanceof Promise ? now : undefined;
    }
    return this.#inflight.then(reply);
  }

  readonly #onFrame = (payload: Uint8Array): boolean | undefined => {
    if (this.phase === "handshake") {
      this.#paused = [];
      void this.#verify(payload.slice());
      return false;
    }
    if (!this.#opener || this.phase === "verifying" || this.#stopped) return false;
    let plain: Uint8Array;
    try {
      plain = this.#opener.open(payload);
    } catch (err) {
      this.protocolError((err as WireError).message);
      return false;
    }
    return this.#handlePlain(plain);
  };

  #handlePlain(plain: Uint8Array): boolean | undefined {
    if (!this.#opener) return false;
    this.lastSeen = performance.now();
    this.msgsIn++;
    if (this.#opener.counter >= COUNTER_LIMIT) {
      this.stop("rekey required"); // the client used its last counter
      return false;
    }
    const pending = this.ctx.handle(this, plain);
    if (pending) {
      // Later frames go on being handled (their own work joins the same store write);
      // the connection pauses at the end of this batch of input, or sooner if too much.
      this.#inflight = this.#inflight
        ? Promise.all([this.#inflight, pending]).then(() => undefined)
        : pending;
      this.#inflightCount++;
      if (this.#holdInput) {
        // A room fan-out waiting for its budget: nothing more is read until it is done.
        this.#holdInput = false;
        this.#pauseUntil(this.#takeInflight(), AT_ONCE);
        return false;
      }
    }
    if (this.phase !== "open" && this.phase !== "closed" && !this.#draining) return false;
    if (
      ++this.#sliceFrames >= SLICE_FRAMES ||
      this.#sliceWork >= SLICE_WORK ||
      this.#budgetWait > 0 ||
      this.#inflightCount >= MAX_INFLIGHT
    ) {
      // The slice is over: once its work is done, the event loop runs (other
      // connections, timers), and reading goes on in its next turn — or when the work
      // budget allows.
      const wait = this.#budgetWait;
      this.#budgetWait = 0;
      this.#pauseUntil(this.#takeInflight(), wait);
      return false;
    }
    return undefined;
  }

  #holdInput = false;

  /**
   * The frame being handled must finish before the next one is read (a room fan-out
   * that waits for its budget: the sender's later messages may not overtake it).
   */
  holdInput(): void {
    this.#holdInput = true;
  }

  /**
   * Holds this connection's input (its socket paused: TCP keeps the rest) until `task`
   * (if any) is done; then reads on — `AT_ONCE`, or after a turn of the event loop
   * (`after` = 0), or after `after` milliseconds.
   */
  #pauseUntil(task: Promise<void> | null, after: number): void {
    this.#paused ??= [];
    if (this.phase === "open" && !this.#socketPaused) {
      this.#socketPaused = true;
      this.#pausedAt = performance.now();
      this.socket.pause();
    }
    const next =
      after === AT_ONCE
        ? () => this.#resume()
        : () => {
            const go = () => this.#resume(true);
            if (after > 0) setTimeout(go, after);
            else setImmediate(go);
          };
    if (!task) {
      next();
      return;
    }
    task.then(next, (err) => {
      this.ctx.log.error("handler failed", { id: this.idText, error: String(err) });
      this.stop("internal error");
    });
  }

  /** Reads on: the input held while paused; `fresh`: after a turn of the event loop. */
  #resume(fresh = false): void {
    if (fresh) {
      this.#sliceFrames = 0;
      this.#sliceWork = 0;
    }
    if (this.#socketPaused) {
      this.#socketPaused = false;
      // The client was not silent while the server did not read: that time is not
      // counted toward heartbeat_timeout.
      const now = performance.now();
      this.lastSeen = Math.min(now, this.lastSeen + (now - this.#pausedAt));
      this.#pausedAt = 0;
      if (this.phase !== "closed") this.socket.resume();
    }
    const chunks = this.#paused ?? [];
    this.#paused = null;
    this.#pausedBytes = 0;
    const first = this.firstPlain;
    this.firstPlain = null;
    if (first && !this.#stopped) {
      this.#handlePlain(first);
      if (this.#inflight && chunks.length === 0) this.#pauseUntil(this.#takeInflight(), AT_ONCE);
    }
    for (let i = 0; i < chunks.length; i++) {
      this.#feed(chunks[i] as Uint8Array, true);
      if (this.#paused) {
        (this.#paused as Uint8Array[]).push(...chunks.slice(i + 1));
        return;
      }
    }
    if (this.phase === "closed") this.#opener?.dispose(); // the last input is handled
  }

  // ---- the handshake --------------------------------------------------------------

  async #verify(response: Uint8Array): Promise<void> {
    const { ctx } = this;
    const hs = this.#hs as ServerHandshake;
    this.phase = "verifying";
    if (!ctx.handshakeRate.take(this.prefix)) {
      ctx.stats.handshakesRefused++;
      ctx.stats.refusedRate++;
      ctx.log.warn("handshake rate limited", { addr: this.address, prefix: this.prefix });
      this.abort("handshake rate limited");
      return;
    }
    // Revocations from here on are re-checked before the session is admitted: one made
    // while this login is in flight would otherwise miss it (it is not routable yet).
    const revocations = await ctx.store.revocationSerial().catch(() => -1);
    if (this.phase !== "verifying") return;
    let name = "";
    try {
      const accepted = await ctx.rsa.run(() =>
        this.phase !== "verifying"
          ? Promise.reject(new Error("closed while waiting"))
          : hs.verify(response, async (id, signatureBytes) => {
              const found = await ctx.lookupClient(id, signatureBytes);
              if (found instanceof StandIn) return found;
              name = found?.record.name ?? "";
              return found?.key ?? null;
            }),
      );
      if (this.phase !== "verifying") return; // closed or timed out meanwhile
      this.#hs = null;
      this.id = accepted.clientId;
      this.idText = idToText(accepted.clientId);
      this.key = idKey(accepted.clientId);
      this.name = name;
      this.#opener = accepted.session.opener;
      this.#reader.max = MAX_FRAME_PAYLOAD;
      this.outbox = new Outbox(
        this.socket as Socket<unknown>,
        accepted.session.sealer,
        this,
        ctx.settings.max_outbound_bytes,
      );
      // The first frame after the response says which session this is (SESSION) —
      // or, being anything else or absent, that the client has no tag.
      const paused = this.#paused ?? [];
      this.#paused = [];
      const rest = await readSessionFrame(this, accepted.session.opener, paused);
      if (this.phase !== "verifying") return;
      this.#paused = rest;
      ctx.handshakeEnded(this, true);
      if (this.firstError !== null) {
        // Keys are shared, so the client hears why: CONFIG, then STOP (as on any frame).
        ctx.stats.protocolErrors++;
        ctx.log.warn("protocol error", {
          id: this.idText,
          addr: this.address,
          detail: this.firstError,
        });
        this.#refuse("protocol error", true);
        return;
      }
      if (await this.#revokedSince(revocations)) {
        if (this.phase === "verifying") this.#refuse("revoked");
        return;
      }
      if (this.phase !== "verifying") return;
      const admitted = ctx.router.register(this);
      if (!admitted) {
        this.#refuse("too many sessions");
        return;
      }
      // CONFIG takes s2c counter 0: it is queued before the client becomes routable,
      // so nothing can be sealed ahead of it.
      this.outbox.push(encodeControl(ControlType.CONFIG, ctx.connectionSettings()), CONTROL);
      this.#holding = true;
      this.phase = "open";
      this.inherit(admitted);
      this.outbox.flush();
      ctx.log.info("connect", {
        id: this.idText,
        name,
        addr: this.address,
        session: this.session.tag?.slice(0, 8),
      });
      // Frames that came with the response first: an ACK 0 there asks for acknowledged
      // delivery, and must be seen before the first stored message goes out.
      this.#resume();
      ctx.router.opened(this);
    } catch (err) {
      if (this.phase !== "verifying") return;
      const e = err instanceof HandshakeError ? err : null;
      const unavailable = e?.code === "UNAVAILABLE";
      if (!unavailable) ctx.stats.authFailures++;
      ctx.log.warn(unavailable ? "login refused: the store is unavailable" : "auth failed", {
        addr: this.address,
        id: e?.clientId,
        stage: e?.stage ?? "internal",
        reason: e?.code ?? String(err),
      });
      if (e?.reply) {
        this.#writeRaw(encodeFrame(e.reply));
        this.endReason = unavailable ? "service unavailable" : "authentication failed";
        this.phase = "closing";
        this.#stopped = true;
        if (!this.#raw) this.socket.end();
        setTimeout(() => this.phase !== "closed" && this.socket.terminate(), STOP_GRACE_MS).unref();
      } else {
        this.abort(e ? `handshake failed (${e.code})` : "handshake failed");
      }
    }
  }

  /**
   * Refuses an authenticated login with STOP `reason` as its first frame (s2c 0) — or
   * after CONFIG (`afterConfig`), for a first frame the client got wrong.
   */
  /** Whether this client was revoked after the revocation serial read `before` (a store read only then). */
  async #revokedSince(before: number): Promise<boolean> {
    const { store } = this.ctx;
    try {
      if ((await store.revocationSerial()) === before) return false;
      const record = await store.getClient(this.idText);
      return !record || record.revokedAt !== null;
    } catch {
      return false; // the store is away: the registry poll still cuts it off once it answers
    }
  }

  #refuse(reason: string, afterConfig = false): void {
    if (!afterConfig)
      this.ctx.log.warn("login refused", { id: this.idText, name: this.name, reason });
    this.endReason = reason;
    if (afterConfig)
      this.outbox?.push(encodeControl(ControlType.CONFIG, this.ctx.connectionSettings()), CONTROL);
    this.outbox?.push(encodeControl(ControlType.STOP, reason), CONTROL);
    this.phase = "closing";
    this.#stopped = true;
    this.outbox?.flush();
    if (this.outbox?.idle) this.socket.end();
    setTimeout(() => this.phase !== "closed" && this.socket.terminate(), STOP_GRACE_MS).unref();
  }

  /** The input held while the login is decided (see session-login.ts). */
  takePaused(): Uint8Array[] {
    const chunks = this.#paused ?? [];
    this.#paused = [];
    this.#pausedBytes = 0;
    return chunks;
  }

  /** Closes a connection that has no session (yet): no STOP, just the socket. */
  abort(reason: string): void {
    if (this.phase === "closed") return;
    queueMicrotask(() => this.morePaused?.());
    this.endReason = reason;
    this.phase = "closing";
    this.#stopped = true;
    this.socket.terminate();
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

  /** Queues a control message (reply, NOTICE) for this client. */
  reply(message: Uint8Array): void {
    if (this.phase !== "open" || !this.outbox) return;
    this.outbox.push(message, CONTROL);
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
    if (this.phase !== "open") return;
    this.ctx.stats.slowConsumers++;
    this.ctx.log.warn("slow consumer", {
      id: this.idText,
      addr: this.address,
      pending,
      limit: this.outbox?.limit,
    });
    this.stop("slow consumer");
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
    if (this.phase === "closing") this.#endOutput();
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
    if (this.phase === "closing" || this.phase === "closed") return;
    if (this.phase !== "open" || !this.outbox) {
      this.abort(reason);
      return;
    }
    this.endReason = reason;
    this.ctx.router.unregister(this);
    this.ctx.router.storeUndelivered(this, this.takeUndelivered());
    // Closing before the STOP is queued: a backlog it pushes past the bound (after a
    // reload lowered it) must not start a second stop.
    this.phase = "closing";
    this.#stopped = !this.#draining;
    this.outbox.push(encodeControl(ControlType.STOP, reason), CONTROL);
    this.outbox.flush();
    if (this.outbox.idle) this.#endOutput();
    setTimeout(() => this.phase !== "closed" && this.socket.terminate(), STOP_GRACE_MS).unref();
  }

  /** Set by `shutdown`: frames still arriving after the STOP are handled until the client closes. */
  #draining = false;

  /** Closes after the STOP: draining, only the sending side (FIN), reading on until the client closes. */
  #endOutput(): void {
    if (this.#draining) this.socket.shutdown();
    else this.socket.end();
  }

  /**
   * The server is stopping (docs/PROTOCOL.md § STOP `server shutting down`): every frame
   * already received is handled and answered first, then STOP; frames the client sent
   * before it saw the STOP are still handled (routed or stored) until it closes, so
   * nothing that reached the socket is lost.
   */
  shutdown(reason: string): void {
    if (this.phase !== "open") {
      this.stop(reason);
      return;
    }
    this.#draining = true;
    const deadline = performance.now() + STOP_GRACE_MS;
    const attempt = () => {
      if (this.phase !== "open") return;
      if (this.#paused !== null && performance.now() < deadline) setTimeout(attempt, 2);
      else this.stop(reason);
    };
    attempt();
  }

  /** The client said STOP: close without answering. */
  peerStopped(reason: string): void {
    this.endReason = reason ? `client stop: ${reason}` : "client stop";
    this.ctx.router.unregister(this);
    this.phase = "closing";
    this.#stopped = true;
    this.socket.end();
  }

  /** The client broke the protocol: STOP `protocol error`. */
  protocolError(detail: string): void {
    this.#draining = false;
    this.#stopped = true;
    this.ctx.stats.protocolErrors++;
    this.ctx.log.warn("protocol error", {
      id: this.idText || undefined,
      addr: this.address,
      detail,
    });
    this.stop("protocol error");
  }

  /** The socket is gone: store what was not delivered, free everything. */
  onClose(): void {
    if (this.phase === "closed") return;
    const wasAuthenticated = this.outbox !== null;
    this.phase = "closed";
    this.#hs?.dispose();
    this.#hs = null;
    this.outbox?.close();
    // Frames that arrived before the close are still handled (routed); then the key goes.
    if (!this.#paused || this.#stopped) this.#opener?.dispose();
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
