/**
 * Message data (docs/PROTOCOL.md § Messages): the plaintext inside an encrypted frame.
 * Byte 0 is `(format << 4) | type`. Pure code, no I/O, bounds checked before every read.
 */
import { WireError } from "../errors.ts";
import {
  C2C_HEADER_BYTES,
  CONTROL_HEADER_BYTES,
  ID_BYTES,
  MAX_MESSAGE_DATA,
  STORED_HEADER_BYTES,
} from "./constants.ts";
import { decodeRoomMessage } from "./room.ts";

/** Message formats (high nibble of byte 0). 3–15 are reserved. */
export const Format = { C2C: 0, CONTROL: 1, S2S: 2 } as const;

/** C2C types (low nibble when the format is C2C). */
export const C2CType = {
  DIRECT: 0,
  BROADCAST: 1,
  STORED: 2,
  /** A room message, live (docs/PROTOCOL.md § Rooms; src/wire/room.ts). */
  ROOM: 3,
  /** A room message held while the recipient was offline (server → client). */
  ROOM_STORED: 4,
} as const;
export type C2CType = (typeof C2CType)[keyof typeof C2CType];

/** C2S / S2C types (low nibble when the format is CONTROL). 10–14 are reserved. */
export const ControlType = {
  HEARTBEAT: 0,
  CONFIG: 1,
  SERVER_STATUS: 2,
  CLIENT_STATUS: 3,
  NOTICE: 4,
  /** c2s: how many stored messages this connection has received (docs/PROTOCOL.md § ACK). */
  ACK: 5,
  /** c2s, first frame only: session tag and receive choices (docs/PROTOCOL.md § SESSION). */
  SESSION: 6,
  /** both ways: room membership requests, replies and events, JSON (docs/PROTOCOL.md § Rooms). */
  ROOM: 7,
  /** c2s request / s2c reply: the E2E key directory (docs/PROTOCOL.md § KEYS). */
  KEYS: 8,
  /** both ways, once offered and accepted: records of many messages (docs/PROTOCOL.md § BATCH). */
  BATCH: 9,
  STOP: 15,
} as const;
export type ControlType = (typeof ControlType)[keyof typeof ControlType];

/**
 * S2S types: commands the server core posts on a client queue. They never travel on
 * a socket (scoping); the body of STOP is the reason.
 */
export const S2SType = { STOP: 0, CONFIG: 1 } as const;

const CONTROL_TYPES: ReadonlySet<number> = new Set(Object.values(ControlType));

/** A decoded C2C message. `address` is the recipient (client → server) or sender (server → client). */
export interface C2CMessage {
  format: typeof Format.C2C;
  type: C2CType;
  address: Uint8Array;
  /** Unix seconds the server stored the message (types STORED, ROOM_STORED), else 0. */
  queuedAt: number;
  data: Uint8Array;
  /** The room (without `#`) of a room message (types ROOM, ROOM_STORED). */
  room?: string;
}

/** A decoded C2S or S2C message. */
export interface ControlMessage {
  format: typeof Format.CONTROL;
  type: ControlType;
  /** Unix seconds, as sent. */
  timestamp: number;
  body: Uint8Array;
}

/** A server-internal message (only ever valid on a client queue, never on a socket). */
export interface S2SMessage {
  format: typeof Format.S2S;
  type: number;
  body: Uint8Array;
}

export type Message = C2CMessage | ControlMessage | S2SMessage;

/** Current time as the protocol's u32 unix seconds. */
export function unixNow(): number {
  return Math.floor(Date.now() / 1000) >>> 0;
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function readU32(b: Uint8Array, at: number): number {
  return (
    (((b[at] as number) << 24) |
      ((b[at + 1] as number) << 16) |
      ((b[at + 2] as number) << 8) |
      (b[at + 3] as number)) >>>
    0
  );
}

function checkLength(length: number): void {
  if (length > MAX_MESSAGE_DATA) {
    throw new WireError(
      "MESSAGE_TOO_LARGE",
      `message of ${length} bytes exceeds ${MAX_MESSAGE_DATA}`,
    );
  }
}

function checkId(address: Uint8Array): void {
  if (address.length !== ID_BYTES) throw new WireError("BAD_ADDRESS", "an address is 16 bytes");
}

/** Encodes a direct or broadcast C2C: `byte0 || address (16) || data`. */
export function encodeC2C(type: C2CType, address: Uint8Array, data: Uint8Array): Uint8Array {
  checkId(address);
  if (type === C2CType.STORED) throw new WireError("BAD_TYPE", "use encodeStored for type 2");
  checkLength(C2C_HEADER_BYTES + data.length);
  const out = new Uint8Array(C2C_HEADER_BYTES + data.length);
  out[0] = (Format.C2C << 4) | type;
  out.set(address, 1);
  out.set(data, C2C_HEADER_BYTES);
  return out;
}

/** Encodes a stored C2C: `0x02 || sender (16) || queued_at (u32) || data`. */
export function encodeStored(sender: Uint8Array, queuedAt: number, data: Uint8Array): Uint8Array {
  checkId(sender);
  checkLength(STORED_HEADER_BYTES + data.length);
  const out = new Uint8Array(STORED_HEADER_BYTES + data.length);
  out[0] = (Format.C2C << 4) | C2CType.STORED;
  out.set(sender, 1);
  writeU32(out, C2C_HEADER_BYTES, queuedAt);
  out.set(data, STORED_HEADER_BYTES);
  return out;
}

const utf8 = new TextEncoder();

/** Body given as bytes, text (UTF-8) or a JSON value (serialized as UTF-8 JSON). */
export type Body = Uint8Array | string | Record<string, unknown>;

function bodyBytes(body: Body | undefined): Uint8Array {
  if (body === undefined) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  return utf8.encode(typeof body === "string" ? body : JSON.stringify(body));
}

/** Encodes a C2S/S2C message: `byte0 || timestamp (u32) || body`. */
export function encodeControl(type: ControlType, body?: Body, timestamp = unixNow()): Uint8Array {
  const bytes = bodyBytes(body);
  checkLength(CONTROL_HEADER_BYTES + bytes.length);
  const out = new Uint8Array(CONTROL_HEADER_BYTES + bytes.length);
  out[0] = (Format.CONTROL << 4) | type;
  writeU32(out, 1, timestamp);
  out.set(bytes, CONTROL_HEADER_BYTES);
  return out;
}

/** Encodes an S2S message: `0x2t || body`. Only ever placed on a client queue. */
export function encodeS2S(type: number, body: Uint8Array): Uint8Array {
  checkLength(1 + body.length);
  const out = new Uint8Array(1 + body.length);
  out[0] = (Format.S2S << 4) | (type & 0x0f);
  out.set(body, 1);
  return out;
}

/**
 * Decodes message data. Fields are `subarray`s of `bytes` (no copy).
 * Throws `WireError`: `MESSAGE_EMPTY`, `MESSAGE_TRUNCATED`, `MESSAGE_RESERVED`
 * (reserved format or type: to be discarded and counted, never acted on).
 */
export function decodeMessage(bytes: Uint8Array): Message {
  if (bytes.length === 0) throw new WireError("MESSAGE_EMPTY", "empty message");
  const b0 = bytes[0] as number;
  const format = b0 >>> 4;
  const type = b0 & 0x0f;
  switch (format) {
    case Format.C2C: {
      if (type === C2CType.ROOM || type === C2CType.ROOM_STORED) {
        const m = decodeRoomMessage(bytes);
        const { address, queuedAt, room, data } = m;
        return { format: Format.C2C, type: type as C2CType, address, queuedAt, data, room };
      }
      if (type > C2CType.ROOM_STORED) throw reserved(b0);
      const header = type === C2CType.STORED ? STORED_HEADER_BYTES : C2C_HEADER_BYTES;
      if (bytes.length < header) throw truncated("C2C", bytes.length, header);
      return {
        format: Format.C2C,
        type: type as C2CType,
        address: bytes.subarray(1, C2C_HEADER_BYTES),
        queuedAt: type === C2CType.STORED ? readU32(bytes, C2C_HEADER_BYTES) : 0,
        data: bytes.subarray(header),
      };
    }
    case Format.CONTROL: {
      if (!CONTROL_TYPES.has(type)) throw reserved(b0);
      if (bytes.length < CONTROL_HEADER_BYTES) {
        throw truncated("control", bytes.length, CONTROL_HEADER_BYTES);
      }
      return {
        format: Format.CONTROL,
        type: type as ControlType,
        timestamp: readU32(bytes, 1),
        body: bytes.subarray(CONTROL_HEADER_BYTES),
      };
    }
    case Format.S2S:
      return { format: Format.S2S, type, body: bytes.subarray(1) };
    default:
      throw reserved(b0);
  }
}

function reserved(b0: number): WireError {
  return new WireError(
    "MESSAGE_RESERVED",
    `reserved format/type 0x${b0.toString(16).padStart(2, "0")}`,
  );
}

function truncated(what: string, got: number, need: number): WireError {
  return new WireError("MESSAGE_TRUNCATED", `${what} message of ${got} bytes, need ${need}`);
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** The body of ACK: the count as a u32. */
export function encodeAckBody(count: number): Uint8Array {
  const out = new Uint8Array(4);
  writeU32(out, 0, count >>> 0);
  return out;
}

/** The count of an ACK body, or null when the body is not exactly 4 bytes. */
export function decodeAckBody(body: Uint8Array): number | null {
  return body.length === 4 ? readU32(body, 0) : null;
}

/** Decodes a UTF-8 text body (STOP reason); invalid UTF-8 throws `WireError`. */
export function decodeText(body: Uint8Array): string {
  try {
    return utf8Strict.decode(body);
  } catch (cause) {
    throw new WireError("BAD_TEXT", "body is not valid UTF-8", { cause });
  }
}

/** Decodes a JSON object body; anything but a JSON object throws `WireError`. */
export function decodeJson(body: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeText(body));
  } catch (cause) {
    throw new WireError("BAD_JSON", "body is not valid JSON", { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new WireError("BAD_JSON", "body is not a JSON object");
  }
  return value as Record<string, unknown>;
}
