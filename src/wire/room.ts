/**
 * Room messages (docs/PROTOCOL.md § Rooms): C2C types 3 (ROOM) and 4 (ROOM_STORED), and
 * the ROOM control type 7 (byte 0 `0x17`) whose JSON bodies carry membership requests,
 * replies and events. Pure code, no I/O, bounds checked before every read.
 *
 * | byte0 | layout |
 * |---|---|
 * | `0x03` | `0x03 \|\| address (16) \|\| room_len (1) \|\| room (room_len) \|\| data` |
 * | `0x04` | `0x04 \|\| sender (16) \|\| queued_at (u32) \|\| room_len (1) \|\| room \|\| data` |
 *
 * Client → server the address of type 3 is 16 zero bytes (the server overwrites it);
 * server → client it is the true sender. `room` is the room's name in UTF-8 (1–255
 * bytes), without the `#`.
 */
import { WireError } from "../errors.ts";
import { C2C_HEADER_BYTES, ID_BYTES, MAX_MESSAGE_DATA, STORED_HEADER_BYTES } from "./constants.ts";

/** C2C type of a room message (live, both directions) and of a stored one (server → client). */
export const C2C_ROOM = 3;
export const C2C_ROOM_STORED = 4;
/** Control type ROOM (byte 0 `0x17`). */
export const ROOM_CONTROL_TYPE = 7;
export const ROOM_BYTE = 0x17;
/** The most UTF-8 bytes of a room name on the wire (its length is one byte). */
export const MAX_ROOM_NAME_BYTES = 255;

const utf8 = new TextEncoder();
/** Invalid UTF-8 in a name becomes U+FFFD: such a room never exists, so the message is refused. */
const utf8Lenient = new TextDecoder("utf-8");

/** A room message, decoded. Fields are `subarray`s of the input (no copy). */
export interface RoomMessage {
  /** Client → server: zeros; server → client: the sender's ID bytes. */
  address: Uint8Array;
  /** Unix seconds the server stored it (type 4), else 0. */
  queuedAt: number;
  /** The room's name (without `#`). */
  room: string;
  data: Uint8Array;
  /** Offset of `data` within the message. */
  dataOffset: number;
}

/** Bytes of the header before `data`: fixed part, length byte and the name. */
export function roomHeaderBytes(stored: boolean, roomBytes: number): number {
  return (stored ? STORED_HEADER_BYTES : C2C_HEADER_BYTES) + 1 + roomBytes;
}

/**
 * Encodes a room message: type 3 (`queuedAt` undefined) or type 4. `room` is sent as
 * given (UTF-8). Throws `WireError` `BAD_ROOM` or `MESSAGE_TOO_LARGE`.
 */
export function encodeRoomMessage(
  address: Uint8Array,
  room: string,
  data: Uint8Array,
  queuedAt?: number,
): Uint8Array {
  if (address.length !== ID_BYTES) throw new WireError("BAD_ADDRESS", "an address is 16 bytes");
  const name = utf8.encode(room);
  if (name.length === 0 || name.length > MAX_ROOM_NAME_BYTES) {
    throw new WireError("BAD_ROOM", `a room name is 1-${MAX_ROOM_NAME_BYTES} bytes of UTF-8`);
  }
  const stored = queuedAt !== undefined;
  const header = roomHeaderBytes(stored, name.length);
  if (header + data.length > MAX_MESSAGE_DATA) {
    throw new WireError(
      "MESSAGE_TOO_LARGE",
      `room message of ${header + data.length} bytes exceeds ${MAX_MESSAGE_DATA}`,
    );
  }
  const out = new Uint8Array(header + data.length);
  out[0] = stored ? C2C_ROOM_STORED : C2C_ROOM;
  out.set(address, 1);
  let at = C2C_HEADER_BYTES;
  if (stored) {
    const q = queuedAt >>> 0;
    out[at] = q >>> 24;
    out[at + 1] = (q >>> 16) & 0xff;
    out[at + 2] = (q >>> 8) & 0xff;
    out[at + 3] = q & 0xff;
    at += 4;
  }
  out[at] = name.length;
  out.set(name, at + 1);
  out.set(data, header);
  return out;
}

/**
 * Decodes a message of type 3 or 4. Throws `WireError` `MESSAGE_TRUNCATED` when it is
 * shorter than its header (room_len 0 or past the end: malformed). A name that is not
 * UTF-8 is decoded with U+FFFD in place of the bad bytes.
 */
export function decodeRoomMessage(b: Uint8Array): RoomMessage {
  const stored = ((b[0] as number) & 0x0f) === C2C_ROOM_STORED;
  const lenAt = stored ? STORED_HEADER_BYTES : C2C_HEADER_BYTES;
  const len = b[lenAt];
  if (len === undefined || len === 0 || b.length < lenAt + 1 + len) {
    throw new WireError(
      "MESSAGE_TRUNCATED",
      `room message of ${b.length} bytes is shorter than its header`,
    );
  }
  const room = utf8Lenient.decode(b.subarray(lenAt + 1, lenAt + 1 + len));
  const queuedAt = stored
    ? (((b[17] as number) << 24) |
        ((b[18] as number) << 16) |
        ((b[19] as number) << 8) |
        (b[20] as number)) >>>
      0
    : 0;
  const dataOffset = lenAt + 1 + len;
  return {
    address: b.subarray(1, C2C_HEADER_BYTES),
    queuedAt,
    room,
    data: b.subarray(dataOffset),
    dataOffset,
  };
}
