/**
 * BATCH (control type 9, byte 0 `0x19`; docs/PROTOCOL.md § BATCH): records of many
 * messages. One encrypted frame — one counter, one nonce, one tag — carries several
 * messages, in order, once both sides have opted in.
 *
 * Message data `0x19 || timestamp (u32) || kind (1) || rest`:
 *
 * | kind | name | rest |
 * |---|---|---|
 * | `0x00` | offer (c2s) / accept (s2c) | `version (1)` = 1; later versions may append |
 * | `0x01` | record | 1 … `MAX_BATCH_MESSAGES` entries `length (u16) \|\| message_data` |
 *
 * Pure code, no I/O, bounds checked before every read.
 */
import { WireError } from "../errors.ts";
import { copyBytes } from "./bytes.ts";
import {
  CONTROL_HEADER_BYTES,
  MAX_BATCH_MESSAGES,
  MAX_BATCHED_MESSAGE,
  MAX_MESSAGE_DATA,
} from "./constants.ts";
import { unixNow } from "./message.ts";

/** byte 0 of BATCH: format 1, type 9. */
export const BATCH_BYTE = 0x19;
/** Kinds (the byte after the control header). */
export const BATCH_OFFER = 0x00;
export const BATCH_RECORD = 0x01;
/** The only version defined. */
export const BATCH_VERSION = 1;
/** `0x19 || timestamp || kind`: the bytes before a record's first entry. */
export const BATCH_HEADER_BYTES = CONTROL_HEADER_BYTES + 1;
/** Each entry's `length (u16)`. */
export const BATCH_ENTRY_HEADER_BYTES = 2;
/** The most messages one record may carry; the largest message a record can carry (65511). */
export { MAX_BATCH_MESSAGES, MAX_BATCHED_MESSAGE };

/** The offer (client) or accept (server): `0x19 || timestamp || 0x00 || 0x01`. */
export function encodeBatchOffer(timestamp = unixNow()): Uint8Array {
  const out = new Uint8Array(BATCH_HEADER_BYTES + 1);
  out[0] = BATCH_BYTE;
  writeU32(out, 1, timestamp);
  out[CONTROL_HEADER_BYTES] = BATCH_OFFER;
  out[BATCH_HEADER_BYTES] = BATCH_VERSION;
  return out;
}

/**
 * The kind of a BATCH message (`plain[0]` already `0x19`): `BATCH_OFFER` with a version
 * ≥ 1, `BATCH_RECORD`, or null for anything else (no kind byte, version 0, an unknown
 * kind: discarded and counted, like a reserved type).
 */
export function batchKind(plain: Uint8Array): number | null {
  if (plain.length <= CONTROL_HEADER_BYTES) return null;
  const kind = plain[CONTROL_HEADER_BYTES] as number;
  if (kind === BATCH_RECORD) return kind;
  if (kind === BATCH_OFFER && plain.length > BATCH_HEADER_BYTES && plain[BATCH_HEADER_BYTES] !== 0)
    return kind;
  return null;
}

/** Bytes `message` takes inside a record. */
export function entryLength(message: Uint8Array): number {
  return BATCH_ENTRY_HEADER_BYTES + message.length;
}

/**
 * Writes the record of `msgs[from..to)` into `out` at 0 (which must hold
 * `BATCH_HEADER_BYTES` + the entries); returns its length.
 */
export function writeRecord(
  msgs: readonly Uint8Array[],
  from: number,
  to: number,
  out: Uint8Array,
  timestamp = unixNow(),
): number {
  out[0] = BATCH_BYTE;
  writeU32(out, 1, timestamp);
  out[CONTROL_HEADER_BYTES] = BATCH_RECORD;
  let at = BATCH_HEADER_BYTES;
  for (let i = from; i < to; i++) {
    const m = msgs[i] as Uint8Array;
    out[at] = m.length >>> 8;
    out[at + 1] = m.length & 0xff;
    out.set(m, at + BATCH_ENTRY_HEADER_BYTES);
    at += BATCH_ENTRY_HEADER_BYTES + m.length;
  }
  return at;
}

/** Encodes a record of `messages` (2 … MAX_BATCH_MESSAGES, each 1 … 65511 bytes, 65519 in all). */
export function encodeRecord(messages: readonly Uint8Array[], timestamp = unixNow()): Uint8Array {
  let size = BATCH_HEADER_BYTES;
  for (const m of messages) {
    if (m.length === 0) throw new WireError("MESSAGE_EMPTY", "empty message in a record");
    size += entryLength(m);
  }
  if (messages.length === 0 || messages.length > MAX_BATCH_MESSAGES)
    throw new WireError("BATCH_COUNT", `a record holds 1 to ${MAX_BATCH_MESSAGES} messages`);
  if (size > MAX_MESSAGE_DATA)
    throw new WireError("MESSAGE_TOO_LARGE", `record of ${size} bytes exceeds ${MAX_MESSAGE_DATA}`);
  const out = new Uint8Array(size);
  writeRecord(messages, 0, messages.length, out, timestamp);
  return out;
}

/**
 * Checks a whole record (`plain`: `0x19 || timestamp || 0x01 || entries`) before any of
 * its messages is acted on; returns how many messages it holds. Throws `WireError`
 * `BATCH_MALFORMED` naming the fault: no entry, a length field cut short, an entry of
 * length 0 or running past the end, a BATCH inside, more than MAX_BATCH_MESSAGES.
 */
export function checkRecord(plain: Uint8Array): number {
  const end = plain.length;
  let at = BATCH_HEADER_BYTES;
  let n = 0;
  if (at >= end) throw malformed("a record with no message");
  while (at < end) {
    if (end - at < BATCH_ENTRY_HEADER_BYTES)
      throw malformed("a record entry's length is cut short");
    const len = ((plain[at] as number) << 8) | (plain[at + 1] as number);
    at += BATCH_ENTRY_HEADER_BYTES;
    if (len === 0) throw malformed("an empty message in a record");
    if (len > end - at)
      throw malformed(`a record entry of ${len} bytes runs past the record (${end - at} left)`);
    if (plain[at] === BATCH_BYTE) throw malformed("a BATCH inside a record");
    at += len;
    if (++n > MAX_BATCH_MESSAGES)
      throw malformed(`a record of more than ${MAX_BATCH_MESSAGES} messages`);
  }
  return n;
}

/**
 * Calls `each` with every message of a record that passed `checkRecord`, in order, as a
 * copy (a message kept by a queue must not hold the whole record in memory), from
 * entry offset `at`; stops when `each` returns false and returns the offset of the next
 * entry (`plain.length` when all were taken).
 */
export function eachInRecord(
  plain: Uint8Array,
  at: number,
  each: (message: Uint8Array) => boolean,
): number {
  const end = plain.length;
  while (at < end) {
    const len = ((plain[at] as number) << 8) | (plain[at + 1] as number);
    const start = at + BATCH_ENTRY_HEADER_BYTES;
    at = start + len;
    // Each message a copy of its own size: kept (queued, held), it must not keep the record.
    if (!each(copyBytes(plain, start, at))) return at;
  }
  return end;
}

function malformed(why: string): WireError {
  return new WireError("BATCH_MALFORMED", why);
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}
