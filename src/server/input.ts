/**
 * The input side of one client connection: frames in, decrypted and handed to the
 * handler in order; reading paused while work is in flight, in slices, and at the
 * client's work budget (docs/PROTOCOL.md § Limits).
 *
 * Frames of one connection are handled strictly in order: when a frame needs the
 * store (an offline message, a status query), reading pauses until it is done, and
 * the bytes that arrive meanwhile wait. So replies and NOTICEs come in request order,
 * and a HEARTBEAT answer proves every earlier frame was handled. A reply made while a
 * frame is handled (or while input is held for it), or later for it (`replyPoint`),
 * waits for the work of the frames before it, so no NOTICE overtakes an earlier reply.
 * Input is also handled in slices (SLICE_FRAMES, SLICE_WORK) and at the client's work
 * budget: in between, the socket is paused and the event loop serves everyone else.
 */
import type { Opener } from "../crypto/channel.ts";
import type { WireError } from "../errors.ts";
import {
  BATCH_BYTE,
  BATCH_HEADER_BYTES,
  BATCH_RECORD,
  batchKind,
  checkRecord,
  eachInRecord,
} from "../wire/batch.ts";
import { copyBytes } from "../wire/bytes.ts";
import { COUNTER_LIMIT, MAX_RESPONSE_PAYLOAD } from "../wire/constants.ts";
import { FrameReader } from "../wire/frame.ts";
import type { Connection } from "./connection.ts";
import { verifyLogin } from "./login.ts";

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

export class ConnectionInput {
  readonly #conn: Connection;
  readonly reader = new FrameReader(MAX_RESPONSE_PAYLOAD);
  /** Set once the login is verified: opens the client's frames. */
  opener: Opener | null = null;
  #paused: Uint8Array[] | null = null;
  #pausedBytes = 0;
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
  #holdInput = false;
  /** True while a frame (or a record's message) is handled, synchronously. */
  #handling = false;
  /** Replies made while handling it that wait for earlier frames' work (`sendAfter`). */
  #deferred: Promise<void> | null = null;
  /**
   * While input is held for one frame's work (`holdInput`: a room load, a fan-out that
   * waits): the earlier frames' work its replies wait for, and those replies.
   */
  #heldGate: Promise<void> | null = null;
  #heldDeferred: Promise<void> | null = null;
  /** The messages of a record not handled yet when the input paused mid-record. */
  #record: { plain: Uint8Array; at: number } | null = null;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** True while input is held (not read on at once): paused, or the login not decided. */
  get holding(): boolean {
    return this.#paused !== null;
  }

  onData(chunk: Uint8Array): void {
    const conn = this.#conn;
    if (conn.stopped || (conn.phase === "closed" && !this.#paused)) return;
    if (this.#paused) {
      this.#pausedBytes += chunk.length;
      if (this.#pausedBytes > MAX_PAUSED_BYTES && conn.phase !== "verifying") {
        conn.stop("sending too fast");
        return;
      }
      if (this.#pausedBytes > MAX_RESPONSE_PAYLOAD * 4 && conn.phase === "verifying") {
        conn.abort("data before the handshake finished");
        return;
      }
      this.#paused.push(new Uint8Array(chunk));
      conn.morePaused?.();
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
      rest = this.reader.push(chunk, this.#onFrame, owned);
    } catch (err) {
      if (this.#conn.phase === "handshake")
        this.#conn.abort(`bad handshake frame: ${(err as Error).message}`);
      else this.#conn.protocolError((err as Error).message);
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

  #takeInflight(): Promise<void> | null {
    const task = this.#inflight;
    this.#inflight = null;
    this.#inflightCount = 0;
    return task;
  }

  /** See `Connection.charge`: `wait` is what the work budget said. */
  charge(units: number, wait: number): void {
    this.#sliceWork += units;
    if (wait > this.#budgetWait) this.#budgetWait = wait;
  }

  /** See `Connection.inOrder`. */
  inOrder(reply: () => void | Promise<void>): Promise<void> | undefined {
    if (!this.#inflight) {
      const now = reply();
      return now instanceof Promise ? now : undefined;
    }
    return this.#inflight.then(reply);
  }

  /** True while one of this connection's frames is handled (synchronously). */
  get handling(): boolean {
    return this.#handling;
  }

  /** See `Connection.replyPoint`. */
  replyPoint(): Promise<void> | null {
    return this.#handling ? this.#inflight : this.#heldGate;
  }

  /**
   * Runs `send` (queuing a reply) now, or once `gate` (from `replyPoint`) is done. A
   * reply that waits for the frame being handled, or for the frame input is held for,
   * keeps that frame in flight until it is queued, so later frames' replies follow it.
   */
  sendAfter(gate: Promise<void> | null, send: () => void): Promise<void> | undefined {
    if (!gate) {
      send();
      return;
    }
    const sent = gate.then(send, send);
    if (this.#handling) this.#deferred = join(this.#deferred, sent);
    else if (gate === this.#heldGate) this.#heldDeferred = join(this.#heldDeferred, sent);
    return sent;
  }

  readonly #onFrame = (payload: Uint8Array): boolean | undefined => {
    const conn = this.#conn;
    if (conn.phase === "handshake") {
      this.#paused = [];
      void verifyLogin(conn, copyBytes(payload));
      return false;
    }
    if (!this.opener || conn.phase === "verifying" || conn.stopped) return false;
    let plain: Uint8Array;
    try {
      plain = this.opener.open(payload);
    } catch (err) {
      conn.protocolError((err as WireError).message);
      return false;
    }
    return this.#handlePlain(plain);
  };

  #handlePlain(plain: Uint8Array): boolean | undefined {
    const conn = this.#conn;
    if (!this.opener) return false;
    conn.lastSeen = performance.now();
    if (this.opener.counter >= COUNTER_LIMIT) {
      conn.msgsIn++;
      conn.stop("rekey required"); // the client used its last counter
      return false;
    }
    if (plain[0] === BATCH_BYTE && conn.batchIn && batchKind(plain) === BATCH_RECORD) {
      try {
        checkRecord(plain);
      } catch (err) {
        // Malformed anywhere: none of its messages is acted on.
        conn.protocolError((err as WireError).message);
        return false;
      }
      return this.#handleRecord(plain, BATCH_HEADER_BYTES);
    }
    conn.msgsIn++;
    return this.#handleMessage(plain);
  }

  /**
   * The messages of a checked record from entry offset `at`, each exactly as if it had
   * come in a frame of its own: counted in the slice and the budget, in order. When the
   * input pauses mid-record, the rest is kept and handled first when it resumes.
   */
  #handleRecord(plain: Uint8Array, at: number): boolean | undefined {
    let result: boolean | undefined;
    const next = eachInRecord(plain, at, (message) => {
      this.#conn.msgsIn++;
      result = this.#handleMessage(message);
      return result !== false;
    });
    if (result === false && next < plain.length && !this.#conn.stopped)
      this.#record = { plain, at: next };
    return result;
  }

  #handleMessage(plain: Uint8Array): boolean | undefined {
    const conn = this.#conn;
    let pending: Promise<void> | undefined;
    this.#handling = true;
    try {
      pending = conn.ctx.handle(conn, plain);
    } finally {
      this.#handling = false;
    }
    const deferred = this.#deferred;
    if (deferred) {
      // Its replies wait for earlier frames' work (sendAfter): in flight until queued.
      this.#deferred = null;
      pending = pending ? join(pending, deferred) : deferred;
    }
    if (!pending) this.#heldGate = null; // nothing to hold input for
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
        const task = this.#takeInflight() as Promise<void>;
        // Read on once its replies made meanwhile (sendAfter) are queued too.
        const settled = task.then(() => {
          const replies = this.#heldDeferred;
          this.#heldGate = null;
          this.#heldDeferred = null;
          return replies ?? undefined;
        });
        this.#pauseUntil(settled, AT_ONCE);
        return false;
      }
    }
    if (conn.phase !== "open" && conn.phase !== "closed" && !conn.draining) return false;
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

  /** See `Connection.holdInput`. */
  holdInput(): void {
    this.#holdInput = true;
    // Its replies made while held wait for the work of the frames before it.
    if (this.#handling) this.#heldGate = this.#inflight;
  }

  /**
   * Holds this connection's input (its socket paused: TCP keeps the rest) until `task`
   * (if any) is done; then reads on — `AT_ONCE`, or after a turn of the event loop
   * (`after` = 0), or after `after` milliseconds.
   */
  #pauseUntil(task: Promise<void> | null, after: number): void {
    const conn = this.#conn;
    this.#paused ??= [];
    if (conn.phase === "open" && !this.#socketPaused) {
      this.#socketPaused = true;
      this.#pausedAt = performance.now();
      conn.socket.pause();
    }
    const next =
      after === AT_ONCE
        ? () => this.resume()
        : () => {
            const go = () => this.resume(true);
            if (after > 0) setTimeout(go, after);
            else setImmediate(go);
          };
    if (!task) {
      next();
      return;
    }
    task.then(next, (err) => {
      conn.ctx.log.error("handler failed", { id: conn.idText, error: String(err) });
      conn.stop("internal error");
    });
  }

  /** Reads on: the input held while paused; `fresh`: after a turn of the event loop. */
  resume(fresh = false): void {
    const conn = this.#conn;
    if (fresh) {
      this.#sliceFrames = 0;
      this.#sliceWork = 0;
    }
    if (this.#socketPaused) {
      this.#socketPaused = false;
      // The client was not silent while the server did not read: that time is not
      // counted toward heartbeat_timeout.
      const now = performance.now();
      conn.lastSeen = Math.min(now, conn.lastSeen + (now - this.#pausedAt));
      this.#pausedAt = 0;
      if (conn.phase !== "closed") conn.socket.resume();
    }
    const chunks = this.#paused ?? [];
    this.#paused = null;
    this.#pausedBytes = 0;
    const first = conn.firstPlain;
    conn.firstPlain = null;
    if (first && !conn.stopped) {
      this.#handlePlain(first);
      if (this.#inflight && chunks.length === 0) this.#pauseUntil(this.#takeInflight(), AT_ONCE);
    }
    // The rest of a record whose handling paused comes before any later frame.
    const record = this.#record;
    this.#record = null;
    if (record && !conn.stopped && this.opener) {
      this.#handleRecord(record.plain, record.at);
      if (this.#paused) {
        (this.#paused as Uint8Array[]).push(...chunks);
        return;
      }
      if (this.#inflight && chunks.length === 0) this.#pauseUntil(this.#takeInflight(), AT_ONCE);
    }
    for (let i = 0; i < chunks.length; i++) {
      this.#feed(chunks[i] as Uint8Array, true);
      if (this.#paused) {
        (this.#paused as Uint8Array[]).push(...chunks.slice(i + 1));
        return;
      }
    }
    if (conn.phase === "closed") this.opener?.dispose(); // the last input is handled
  }

  /**
   * The input held while the login is decided (see session-login.ts); holds on.
   * `recount`: what arrives from now on is counted afresh toward the bound on held bytes.
   */
  takePaused(recount = true): Uint8Array[] {
    const chunks = this.#paused ?? [];
    this.#paused = [];
    if (recount) this.#pausedBytes = 0;
    return chunks;
  }

  /** Holds `chunks` as the input to read once the login is admitted (`resume`). */
  setPaused(chunks: Uint8Array[]): void {
    this.#paused = chunks;
  }

  /** The socket is gone: frames that arrived before are still handled, then the key goes. */
  onClose(): void {
    if (!this.#paused || this.#conn.stopped) this.opener?.dispose();
  }
}

/** A promise settled once both are. */
function join(a: Promise<void> | null, b: Promise<void>): Promise<void> {
  return a ? Promise.all([a, b]).then(() => {}) : b;
}
