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
 */
import type { Socket } from "bun";
import { frameLength, type Sealer } from "../crypto/channel.ts";
import { COUNTER_LIMIT } from "../wire/constants.ts";

/** A live direct C2C (storable if undelivered). */
export const LIVE = 0;
/** Anything else: control messages, broadcasts (never stored). */
export const CONTROL = -1;
/** A positive kind is the store sequence number of a held message being delivered. */

const LAST_COUNTER = COUNTER_LIMIT - 1;
const STOP_BYTE = 0x1f;

/** Most bytes sealed into one write; the rest waits for the next flush. */
const MAX_BATCH = 256 * 1024;

export class Outbox {
  readonly #socket: Socket<unknown>;
  readonly #sealer: Sealer;
  #msgs: Uint8Array[] = [];
  #kinds: number[] = [];
  #bytes = 0;
  /** Sealed bytes the socket has not taken yet, and the messages they hold. */
  #unsent: Buffer | null = null;
  #unsentAt = 0;
  #unsentEnds: number[] = [];
  #unsentMsgs: Uint8Array[] = [];
  #unsentKinds: number[] = [];
  #deliveredSeq = 0;
  #closed = false;
  /** Called when everything queued so far has been handed to the socket. */
  onIdle: (() => void) | null = null;
  /**
   * Called when the next counter is the last one (2^32 − 1), which is kept for STOP
   * `rekey required` (docs/PROTOCOL.md § Encrypted frames); nothing else is sealed.
   */
  onExhausted: (() => void) | null = null;

  constructor(socket: Socket<unknown>, sealer: Sealer) {
    this.#socket = socket;
    this.#sealer = sealer;
  }

  /** Bytes waiting: queued plaintext plus sealed bytes the socket has not taken. */
  get pendingBytes(): number {
    return this.#bytes + (this.#unsent ? this.#unsent.length - this.#unsentAt : 0);
  }

  get idle(): boolean {
    return this.#msgs.length === 0 && this.#unsent === null;
  }

  /** The frame counter the next sealed message will use. */
  get counter(): number {
    return this.#sealer.counter;
  }

  /** Highest store sequence number handed to TCP in full. */
  get deliveredSeq(): number {
    return this.#deliveredSeq;
  }

  /** Queues a message; `kind` is LIVE, CONTROL or a store sequence number. */
  push(message: Uint8Array, kind: number): void {
    if (this.#closed) return;
    this.#msgs.push(message);
    this.#kinds.push(kind);
    this.#bytes += message.length;
  }

  /** Seals and writes what is queued, unless earlier bytes still wait for `drain`. */
  flush(): void {
    if (this.#closed || this.#unsent || this.#msgs.length === 0) return;
    // Frames that may still be sealed before the last counter, which only STOP may use.
    let room = LAST_COUNTER - this.#sealer.counter;
    if (room <= 0) {
      const stop = room === 0 ? this.#msgs.findIndex((m) => m[0] === STOP_BYTE) : -1;
      if (stop < 0) {
        this.onExhausted?.();
        return;
      }
      // Only the STOP can still go out; nothing queued before it could be sealed anyway.
      this.#msgs = this.#msgs.slice(stop, stop + 1);
      this.#kinds = this.#kinds.slice(stop, stop + 1);
      this.#bytes = (this.#msgs[0] as Uint8Array).length;
      room = 1;
    }
    let count = 0;
    let size = 0;
    while (count < this.#msgs.length && count < room && (count === 0 || size < MAX_BATCH)) {
      size += frameLength(this.#msgs[count] as Uint8Array);
      count++;
    }
    const out = Buffer.allocUnsafe(size);
    const ends: number[] = new Array(count);
    let at = 0;
    for (let i = 0; i < count; i++) {
      at = this.#sealer.sealInto(this.#msgs[i] as Uint8Array, out, at);
      ends[i] = at;
    }
    const msgs = this.#msgs.splice(0, count);
    const kinds = this.#kinds.splice(0, count);
    for (const m of msgs) this.#bytes -= m.length;
    const written = this.#socket.write(out);
    this.#settle(out, Math.max(0, written), ends, msgs, kinds);
    if (!this.#unsent) {
      if (this.#msgs.length > 0) this.flush();
      else this.onIdle?.();
    }
  }

  /** Called on the socket's `drain`: writes what is left, then flushes the queue. */
  drain(): void {
    if (this.#closed || !this.#unsent) return;
    const unsent = this.#unsent;
    const written = this.#socket.write(unsent.subarray(this.#unsentAt));
    this.#settle(
      unsent,
      this.#unsentAt + Math.max(0, written),
      this.#unsentEnds,
      this.#unsentMsgs,
      this.#unsentKinds,
    );
    if (!this.#unsent) this.flush();
    if (this.idle) this.onIdle?.();
  }

  /** Records how far `buffer` got; keeps what is left for `drain`. */
  #settle(buffer: Buffer, upTo: number, ends: number[], msgs: Uint8Array[], kinds: number[]): void {
    let i = 0;
    while (i < ends.length && (ends[i] as number) <= upTo) {
      const kind = kinds[i] as number;
      if (kind > this.#deliveredSeq) this.#deliveredSeq = kind;
      i++;
    }
    if (upTo >= buffer.length) {
      this.#unsent = null;
      this.#unsentAt = 0;
      this.#unsentEnds = [];
      this.#unsentMsgs = [];
      this.#unsentKinds = [];
      return;
    }
    this.#unsent = buffer;
    this.#unsentAt = upTo;
    this.#unsentEnds = ends.slice(i);
    this.#unsentMsgs = msgs.slice(i);
    this.#unsentKinds = kinds.slice(i);
  }

  /**
   * Takes the live direct messages that have not been sealed yet out of the queue,
   * so they can be stored or handed to a replacing connection; drops queued control
   * messages. With `unsent` (only once the socket is gone), also takes those sealed
   * but not written in full.
   */
  takeUndelivered(unsent = false): Uint8Array[] {
    const live: Uint8Array[] = [];
    if (unsent) {
      for (let i = 0; i < this.#unsentMsgs.length; i++) {
        if (this.#unsentKinds[i] === LIVE) live.push(this.#unsentMsgs[i] as Uint8Array);
      }
      this.#unsentMsgs = [];
      this.#unsentKinds = [];
    }
    for (let i = 0; i < this.#msgs.length; i++) {
      if (this.#kinds[i] === LIVE) live.push(this.#msgs[i] as Uint8Array);
    }
    this.#msgs = [];
    this.#kinds = [];
    this.#bytes = 0;
    return live;
  }

  /** Stops all writing (the socket is gone) and wipes the sending key. */
  close(): void {
    this.#closed = true;
    this.#sealer.dispose();
  }
}
