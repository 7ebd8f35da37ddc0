/**
 * The client queue of one connection (seed spec: "a queue maintained by the server to
 * deliver messages to a client handler"), and its writer.
 *
 * Everything the server sends on an authenticated connection passes through here:
 * messages are queued as plaintext, then sealed in order into one buffer and written
 * with one `write` per flush — the one place a counter is assigned (docs/PROTOCOL.md
 * § Encrypted frames). Bun's `write` may take part of a buffer: the rest waits for
 * `drain`, and nothing more is written until it has gone.
 *
 * Each entry remembers what it is, so that when the connection ends, the direct C2C
 * messages that never reached the socket can be stored for later, and held messages
 * can be removed from the store once they have been handed to TCP in full.
 *
 * The outbox is also the one place the client's backlog is bounded
 * (`max_outbound_bytes`, docs/PROTOCOL.md § Limits): every message queued toward the
 * client — replies, NOTICEs, CONFIG, live and stored C2C, and live messages deferred
 * while stored ones go out — counts, whoever queued it. Past `limit`, the owner hears
 * `outboxOverflow` once (the connection stops the client as a slow consumer).
 */
import type { Socket } from "bun";
import { frameLength, type Sealer } from "../crypto/channel.ts";
import { writeRecord } from "../wire/batch.ts";
import { COUNTER_LIMIT, MAX_MESSAGE_DATA } from "../wire/constants.ts";
import { planFrames, SWITCH } from "./records.ts";

/** A live direct C2C (storable if undelivered). */
export const LIVE = 0;
/** Anything else: control messages, broadcasts (never stored). */
export const CONTROL = -1;
export { SWITCH };

/** A positive kind is the store sequence number of a held message being delivered. */

const LAST_COUNTER = COUNTER_LIMIT - 1;
const STOP_BYTE = 0x1f;

/**
 * What one queued message is counted as besides its sealed frame: the bookkeeping of
 * an entry (the array view, its slot and kind). Without it, a flood of 1-byte replies
 * (HEARTBEAT) would hold many times the bound in memory before it was reached.
 */
export const ENTRY_BYTES = 64;

/** Bytes one message counts for in the backlog: its frame on the wire plus bookkeeping. */
function cost(message: Uint8Array): number {
  return frameLength(message) + ENTRY_BYTES;
}

/**
 * The plaintext of one record being assembled: sealing is synchronous, so one buffer
 * serves every outbox.
 */
const RECORD = Buffer.allocUnsafe(MAX_MESSAGE_DATA);

/** What an outbox tells its connection. */
export interface OutboxOwner {
  /** Everything queued so far has been handed to the socket. */
  outboxIdle(): void;
  /**
   * The next counter is the last one (2^32 − 1), kept for STOP `rekey required`
   * (docs/PROTOCOL.md § Encrypted frames); nothing else is sealed.
   */
  outboxExhausted(): void;
  /**
   * The backlog passed `limit` (told once per outbox). The message that passed it is
   * queued all the same: the owner decides (a connection stops the client).
   */
  outboxOverflow?(pending: number): void;
}

/** Sealed bytes the socket has not taken yet, and the messages they hold. */
interface Unsent {
  buffer: Buffer;
  /** How much of `buffer` was written. */
  at: number;
  /** End offset of each message's frame in `buffer`, with the message and its kind. */
  ends: number[];
  msgs: Uint8Array[];
  kinds: number[];
}

export class Outbox {
  readonly #socket: Socket<unknown>;
  readonly #sealer: Sealer;
  /** Queued plaintext and kinds; null while empty (an idle connection holds no arrays). */
  #msgs: Uint8Array[] | null = null;
  #kinds: number[] | null = null;
  #bytes = 0;
  /** Live messages deferred until `release()` (while stored ones are delivered). */
  #deferred: Uint8Array[] | null = null;
  #deferredKinds: number[] = [];
  #deferredBytes = 0;
  #overflowed = false;
  #unsent: Unsent | null = null;
  #deliveredSeq = 0;
  #closed = false;
  /** Records of many messages may be sealed (the peer accepts them). */
  #batching = false;
  readonly #owner: OutboxOwner | null;
  /** Bytes handed to the socket, and messages sealed (alone or in records; read by the monitor). */
  bytesOut = 0;
  framesOut = 0;

  /** Most bytes the backlog may hold (`pendingBytes`) before the owner is told. */
  limit: number;

  /**
   * `owner` hears when the outbox goes idle, runs out of counters or passes `limit`
   * bytes of backlog (no closures kept).
   */
  constructor(
    socket: Socket<unknown>,
    sealer: Sealer,
    owner: OutboxOwner | null = null,
    limit = Number.POSITIVE_INFINITY,
  ) {
    this.#socket = socket;
    this.#sealer = sealer;
    this.#owner = owner;
    this.limit = limit;
  }

  /**
   * The backlog in bytes: every message queued or deferred (its frame plus
   * ENTRY_BYTES) and the sealed bytes the socket has not taken yet.
   */
  get pendingBytes(): number {
    return this.sendingBytes + this.#deferredBytes;
  }

  /** The part of the backlog on its way to the socket (queued and unsent; not deferred). */
  get sendingBytes(): number {
    const u = this.#unsent;
    return this.#bytes + (u ? u.buffer.length - u.at : 0);
  }

  get idle(): boolean {
    return this.#msgs === null && this.#unsent === null;
  }

  /** The frame counter the next sealed message will use. */
  get counter(): number {
    return this.#sealer.counter;
  }

  /** Highest store sequence number handed to TCP in full. */
  get deliveredSeq(): number {
    return this.#deliveredSeq;
  }

  /**
   * From the next flush on, consecutive queued messages are sealed together as records
   * (docs/PROTOCOL.md § BATCH) — only once the peer has said it reads them. A message
   * queued with kind SWITCH turns this on itself, right after it is sealed.
   */
  startBatching(): void {
    this.#batching = true;
  }

  /** True once records of many messages may be sealed. */
  get batching(): boolean {
    return this.#batching;
  }

  /** Queues a message; `kind` is LIVE, CONTROL, SWITCH or a store sequence number. */
  push(message: Uint8Array, kind: number): void {
    if (this.#closed) return;
    if (this.#msgs === null || this.#kinds === null) {
      this.#msgs = [message];
      this.#kinds = [kind];
    } else {
      this.#msgs.push(message);
      this.#kinds.push(kind);
    }
    this.#bytes += cost(message);
    this.#check();
  }

  /**
   * Keeps a message aside until `release()` (live messages that arrive while stored ones
   * are delivered go after them); it counts toward the backlog meanwhile.
   */
  defer(message: Uint8Array, kind: number): void {
    if (this.#closed) return;
    this.#deferred ??= [];
    this.#deferred.push(message);
    this.#deferredKinds.push(kind);
    this.#deferredBytes += cost(message);
    this.#check();
  }

  /** Queues the deferred messages, in order, behind what is queued. */
  release(): void {
    const deferred = this.#deferred;
    const kinds = this.#deferredKinds;
    this.#deferred = null;
    this.#deferredKinds = [];
    this.#deferredBytes = 0;
    if (!deferred || this.#closed) return;
    for (let i = 0; i < deferred.length; i++) {
      const m = deferred[i] as Uint8Array;
      const kind = kinds[i] as number;
      if (this.#msgs === null || this.#kinds === null) {
        this.#msgs = [m];
        this.#kinds = [kind];
      } else {
        this.#msgs.push(m);
        this.#kinds.push(kind);
      }
      this.#bytes += cost(m);
    }
  }

  #check(): void {
    if (this.#overflowed || this.pendingBytes <= this.limit) return;
    // A burst queued in one go (a NOTICE for each of thousands of refused messages) is
    // a backlog only if the socket cannot take it: write what it takes, then judge.
    this.flush();
    if (this.#overflowed || this.pendingBytes <= this.limit) return;
    this.#overflowed = true;
    this.#owner?.outboxOverflow?.(this.pendingBytes);
  }

  /** Seals and writes what is queued, unless earlier bytes still wait for `drain`. */
  flush(): void {
    let msgs = this.#msgs;
    let kinds = this.#kinds;
    if (this.#closed || this.#unsent || msgs === null || kinds === null) return;
    // Frames that may still be sealed before the last counter, which only STOP may use.
    let room = LAST_COUNTER - this.#sealer.counter;
    if (room <= 0) {
      const stop = room === 0 ? msgs.findIndex((m) => m[0] === STOP_BYTE) : -1;
      if (stop < 0) {
        this.#owner?.outboxExhausted();
        return;
      }
      // Only the STOP can still go out; nothing queued before it could be sealed anyway.
      msgs = msgs.slice(stop, stop + 1);
      kinds = kinds.slice(stop, stop + 1);
      this.#bytes = cost(msgs[0] as Uint8Array);
      room = 1;
    }
    // Plan the frames: each is one message or (batching) a record of the messages
    // that follow (src/net/records.ts).
    const groups: number[] = [];
    const size = planFrames(msgs, kinds, room, this.#batching, groups);
    const count = groups[groups.length - 1] ?? 0;
    // Usually everything goes in one batch: take the arrays whole instead of splicing.
    if (count === msgs.length) {
      this.#msgs = null;
      this.#kinds = null;
    } else {
      this.#msgs = msgs.slice(count);
      this.#kinds = kinds.slice(count);
      msgs = msgs.slice(0, count);
      kinds = kinds.slice(0, count);
    }
    const out = Buffer.allocUnsafe(size);
    const ends: number[] = new Array(count);
    let at = 0;
    let i = 0;
    for (const end of groups) {
      if (end - i === 1) {
        const m = msgs[i] as Uint8Array;
        this.#bytes -= cost(m);
        at = this.#sealer.sealInto(m, out, at);
        if (kinds[i] === SWITCH) this.#batching = true;
        ends[i++] = at;
        continue;
      }
      const length = writeRecord(msgs, i, end, RECORD);
      at = this.#sealer.sealInto(RECORD.subarray(0, length), out, at);
      for (; i < end; i++) {
        this.#bytes -= cost(msgs[i] as Uint8Array);
        ends[i] = at;
      }
    }
    const written = this.#socket.write(out);
    if (written > 0) this.bytesOut += written;
    this.framesOut += count;
    this.#settle({ buffer: out, at: Math.max(0, written), ends, msgs, kinds });
    if (!this.#unsent) {
      if (this.#msgs !== null) this.flush();
      else this.#owner?.outboxIdle();
    }
  }

  /** Called on the socket's `drain`: writes what is left, then flushes the queue. */
  drain(): void {
    const u = this.#unsent;
    if (this.#closed || !u) return;
    const written = this.#socket.write(u.buffer.subarray(u.at));
    if (written > 0) this.bytesOut += written;
    u.at += Math.max(0, written);
    this.#settle(u);
    if (!this.#unsent) this.flush();
    if (this.idle) this.#owner?.outboxIdle();
  }

  /** Records how far a written buffer got; keeps what is left for `drain`. */
  #settle(u: Unsent): void {
    let i = 0;
    while (i < u.ends.length && (u.ends[i] as number) <= u.at) {
      const kind = u.kinds[i] as number;
      if (kind > this.#deliveredSeq) this.#deliveredSeq = kind;
      i++;
    }
    if (u.at >= u.buffer.length) {
      this.#unsent = null;
      return;
    }
    if (i > 0) {
      u.ends = u.ends.slice(i);
      u.msgs = u.msgs.slice(i);
      u.kinds = u.kinds.slice(i);
    }
    this.#unsent = u;
  }

  /**
   * Takes the live direct messages that have not been sealed yet out of the queue, then
   * the deferred ones (which would have gone out after it), so they can be stored or
   * handed to a replacing connection. Control messages stay queued (a NOTICE or reply must still go
   * out before a STOP) — unless `unsent` (only once the socket is gone), which also
   * takes those sealed but not written in full and drops everything else.
   */
  takeUndelivered(unsent = false): Uint8Array[] {
    const live: Uint8Array[] = [];
    const u = this.#unsent;
    if (unsent && u) {
      for (let i = 0; i < u.msgs.length; i++) {
        if (u.kinds[i] === LIVE) live.push(u.msgs[i] as Uint8Array);
      }
      u.msgs = [];
      u.kinds = [];
      u.ends = [];
    }
    const msgs = this.#msgs ?? [];
    const kinds = this.#kinds ?? [];
    const keptMsgs: Uint8Array[] = [];
    const keptKinds: number[] = [];
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i] as Uint8Array;
      if (kinds[i] === LIVE) live.push(m);
      else if (!unsent) {
        keptMsgs.push(m);
        keptKinds.push(kinds[i] as number);
      }
    }
    this.#msgs = keptMsgs.length > 0 ? keptMsgs : null;
    this.#kinds = keptMsgs.length > 0 ? keptKinds : null;
    this.#bytes = 0;
    for (const m of keptMsgs) this.#bytes += cost(m);
    const deferred = this.#deferred ?? [];
    for (let i = 0; i < deferred.length; i++)
      if (this.#deferredKinds[i] === LIVE) live.push(deferred[i] as Uint8Array);
    if (this.#deferred) this.#deferred = [];
    this.#deferredKinds = [];
    this.#deferredBytes = 0;
    return live;
  }

  /** Stops all writing (the socket is gone) and wipes the sending key. */
  close(): void {
    this.#closed = true;
    this.#sealer.dispose();
  }
}
