/**
 * SESSION (control type 6, byte 0 `0x16`; docs/PROTOCOL.md § SESSION): the session tag
 * and receive choices a client announces as its first frame after the response.
 *
 * Body, version 1 (18 bytes):
 *
 * | offset | length | field |
 * |---|---|---|
 * | 0 | 1 | `version` = 1 |
 * | 1 | 1 | `receive` flags: `0x01` live, `0x02` stored; other bits 0 (ignored) |
 * | 2 | 16 | `tag`: chosen by the client, random per process |
 *
 * Later versions keep these 18 bytes and may append; a reader ignores what follows.
 */
import { FRAME_HEADER_BYTES } from "./constants.ts";

export const SESSION_VERSION = 1;
export const SESSION_BODY_BYTES = 18;
export const SESSION_TAG_BYTES = 16;
export const RECEIVE_LIVE = 0x01;
export const RECEIVE_STORED = 0x02;
/** byte 0 of SESSION: format 1, type 6. */
export const SESSION_BYTE = 0x16;

/** What a session receives: `all` (live and stored), `live`, `stored`, or `none`. */
export type Receive = "all" | "live" | "stored" | "none";

export function receiveFlags(receive: Receive): number {
  return (
    (receive === "all" || receive === "live" ? RECEIVE_LIVE : 0) |
    (receive === "all" || receive === "stored" ? RECEIVE_STORED : 0)
  );
}

export function encodeSessionBody(tag: Uint8Array, receive: Receive): Uint8Array {
  if (tag.length !== SESSION_TAG_BYTES) throw new RangeError("a session tag is 16 bytes");
  const out = new Uint8Array(SESSION_BODY_BYTES);
  out[0] = SESSION_VERSION;
  out[1] = receiveFlags(receive);
  out.set(tag, 2);
  return out;
}

/** The body's tag (hex) and choices; null when it is too short or its version is 0. */
export function decodeSessionBody(
  body: Uint8Array,
): { tag: string; live: boolean; stored: boolean } | null {
  if (body.length < SESSION_BODY_BYTES || body[0] === 0) return null;
  const flags = body[1] as number;
  return {
    tag: Buffer.from(body.subarray(2, SESSION_BODY_BYTES)).toString("hex"),
    live: (flags & RECEIVE_LIVE) !== 0,
    stored: (flags & RECEIVE_STORED) !== 0,
  };
}

/**
 * The first frame in `bytes` (received after the response): its payload and the bytes
 * after it; "partial" when only part of it has arrived; null when nothing has.
 */
export function firstFrame(
  bytes: Uint8Array,
): { payload: Uint8Array; rest: Uint8Array } | "partial" | null {
  if (bytes.length === 0) return null;
  if (bytes.length < FRAME_HEADER_BYTES) return "partial";
  const size = ((bytes[0] as number) << 8) | (bytes[1] as number);
  if (bytes.length < FRAME_HEADER_BYTES + size) return "partial";
  return {
    payload: bytes.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + size),
    rest: bytes.subarray(FRAME_HEADER_BYTES + size),
  };
}
