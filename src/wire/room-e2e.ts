/**
 * End-to-end encrypted room messages on the wire (docs/PROTOCOL.md § End-to-end
 * encrypted room messages): C2C type 5, client → server only. One frame carries one
 * room message as a ciphertext per member; the server hands each member only its own
 * ciphertext, as an ordinary room message (type 3 live, type 4 stored) with the true
 * sender — Signal's multi-recipient sealed sender, split on the server. Pure code, no
 * I/O, bounds checked before every read.
 *
 * ```
 * 0x05 || message_id (8) || room_len (1) || room (room_len) || count (u16) ||
 *   count × ( member (16) || length (u16) || ciphertext (length) )
 * ```
 * Integers big-endian. `count` ≥ 1, every `length` ≥ 1, no member twice, nothing after
 * the last ciphertext.
 */
import { WireError } from "../errors.ts";
import { idToBytes, idToText, isUuid } from "../ids.ts";
import { ID_BYTES, MAX_MESSAGE_DATA } from "./constants.ts";
import { MAX_ROOM_NAME_BYTES } from "./room.ts";

/** C2C type (byte 0) of an end-to-end encrypted room message, client → server. */
export const C2C_ROOM_E2E = 5;
/** Bytes of the message ID the sender picks (echoed in the server's NOTICE `recipients`). */
export const MESSAGE_ID_BYTES = 8;
/** Bytes one recipient costs beyond its ciphertext: member ID and length. */
export const ENTRY_OVERHEAD = ID_BYTES + 2;

/** One member's ciphertext. */
export interface RoomCiphertext {
  /** The member's client ID (lowercase UUID text). */
  member: string;
  ciphertext: Uint8Array;
}

/** A decoded type 5 message. `ciphertext`s are `subarray`s of the input. */
export interface RoomE2EMessage {
  /** 16 hex digits. */
  messageId: string;
  /** The room's name as sent (without `#`; lenient UTF-8 decoding). */
  room: string;
  entries: RoomCiphertext[];
}

const utf8 = new TextEncoder();
const utf8Lenient = new TextDecoder("utf-8");

/** Bytes of a type 5 message's header before the first entry, for a name of `roomBytes`. */
export function roomE2EHeaderBytes(roomBytes: number): number {
  return 1 + MESSAGE_ID_BYTES + 1 + roomBytes + 2;
}

/**
 * Encodes a type 5 message. `messageId` is 8 bytes. Throws `WireError` `BAD_ROOM`,
 * `BAD_ADDRESS`, `MESSAGE_TOO_LARGE` (split the entries over several messages; see
 * `splitEntries`), `BAD_MESSAGE` (no entry, an empty ciphertext, a member twice).
 */
export function encodeRoomE2E(
  messageId: Uint8Array,
  room: string,
  entries: readonly RoomCiphertext[],
): Uint8Array {
  if (messageId.length !== MESSAGE_ID_BYTES)
    throw new WireError("BAD_MESSAGE", "a message ID is 8 bytes");
  const name = utf8.encode(room);
  if (name.length === 0 || name.length > MAX_ROOM_NAME_BYTES)
    throw new WireError("BAD_ROOM", `a room name is 1-${MAX_ROOM_NAME_BYTES} bytes of UTF-8`);
  if (entries.length === 0 || entries.length > 0xffff)
    throw new WireError("BAD_MESSAGE", "a room message goes to 1-65535 members");
  let size = roomE2EHeaderBytes(name.length);
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.ciphertext.length === 0 || e.ciphertext.length > 0xffff)
      throw new WireError("BAD_MESSAGE", "a ciphertext is 1-65535 bytes");
    if (!isUuid(e.member))
      throw new WireError("BAD_ADDRESS", `not a client ID: ${JSON.stringify(e.member)}`);
    const id = e.member.toLowerCase();
    if (seen.has(id)) throw new WireError("BAD_MESSAGE", `member ${id} twice`);
    seen.add(id);
    size += ENTRY_OVERHEAD + e.ciphertext.length;
  }
  if (size > MAX_MESSAGE_DATA)
    throw new WireError(
      "MESSAGE_TOO_LARGE",
      `room message of ${size} bytes exceeds ${MAX_MESSAGE_DATA}`,
    );
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  out[0] = C2C_ROOM_E2E;
  out.set(messageId, 1);
  let at = 1 + MESSAGE_ID_BYTES;
  out[at++] = name.length;
  out.set(name, at);
  at += name.length;
  v.setUint16(at, entries.length);
  at += 2;
  for (const e of entries) {
    out.set(idToBytes(e.member), at);
    v.setUint16(at + ID_BYTES, e.ciphertext.length);
    out.set(e.ciphertext, at + ENTRY_OVERHEAD);
    at += ENTRY_OVERHEAD + e.ciphertext.length;
  }
  return out;
}

/**
 * Decodes a type 5 message. Throws `WireError` `MESSAGE_TRUNCATED` (shorter than what
 * it announces, room_len 0, count 0, a length 0) or `BAD_MESSAGE` (bytes after the last
 * entry, a member twice).
 */
export function decodeRoomE2E(b: Uint8Array): RoomE2EMessage {
  const truncated = () =>
    new WireError("MESSAGE_TRUNCATED", `E2E room message of ${b.length} bytes is malformed`);
  const lenAt = 1 + MESSAGE_ID_BYTES;
  const len = b[lenAt];
  if (len === undefined || len === 0 || b.length < roomE2EHeaderBytes(len)) throw truncated();
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const room = utf8Lenient.decode(b.subarray(lenAt + 1, lenAt + 1 + len));
  let at = lenAt + 1 + len;
  const count = v.getUint16(at);
  if (count === 0) throw truncated();
  at += 2;
  const entries: RoomCiphertext[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    if (b.length < at + ENTRY_OVERHEAD) throw truncated();
    const member = idToText(b.subarray(at, at + ID_BYTES));
    const length = v.getUint16(at + ID_BYTES);
    at += ENTRY_OVERHEAD;
    if (length === 0 || b.length < at + length) throw truncated();
    if (seen.has(member)) throw new WireError("BAD_MESSAGE", `member ${member} twice`);
    seen.add(member);
    entries.push({ member, ciphertext: b.subarray(at, at + length) });
    at += length;
  }
  if (at !== b.length) throw new WireError("BAD_MESSAGE", "bytes after the last ciphertext");
  return {
    messageId: Buffer.from(b.subarray(1, 1 + MESSAGE_ID_BYTES)).toString("hex"),
    room,
    entries,
  };
}

/**
 * Splits `entries` into groups that each fit one type 5 message for `room` (in order;
 * a single entry too large for a message is its own group, and encoding it throws).
 */
export function splitEntries(room: string, entries: readonly RoomCiphertext[]): RoomCiphertext[][] {
  const roomBytes = utf8.encode(room).length;
  const groups: RoomCiphertext[][] = [];
  let group: RoomCiphertext[] = [];
  let size = roomE2EHeaderBytes(roomBytes);
  for (const e of entries) {
    const cost = ENTRY_OVERHEAD + e.ciphertext.length;
    if (group.length > 0 && (size + cost > MAX_MESSAGE_DATA || group.length === 0xffff)) {
      groups.push(group);
      group = [];
      size = roomE2EHeaderBytes(roomBytes);
    }
    group.push(e);
    size += cost;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
