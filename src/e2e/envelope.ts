/**
 * The E2E envelope carried in C2C `data` (docs/E2E.md § Envelope), its associated data
 * and padding.
 *
 * ```
 * prekey message:  ff e2 || version (1) = 1 || type (1) = 1 ||
 *                  signing_key (32) || dh_key (32) || dh_signature (64) ||
 *                  ephemeral (32) || spk_id (u32) || opk_id (u32, ffffffff = none) ||
 *                  kem (1) = 0 || header (40) || ciphertext
 * message:         ff e2 || version (1) = 1 || type (1) = 2 || header (40) || ciphertext
 * header:          ratchet_key (32) || pn (u32) || n (u32)
 * ciphertext:      AES-256-GCM(padded plaintext) || tag (16)
 * ```
 * Everything before the ciphertext is authenticated (it is appended to the associated
 * data). Integers are big-endian.
 */

import { idToBytes } from "../ids.ts";
import { roomKey } from "../rooms/names.ts";
import { copyBytes } from "../wire/bytes.ts";
import {
  HEADER_BYTES,
  KEM_NONE,
  MAGIC,
  MAX_PLAINTEXT,
  PAD_BUCKETS,
  PROTOCOL_LABEL,
  TAG_BYTES,
  TYPE_MESSAGE,
  TYPE_PREKEY,
  VERSION,
} from "./constants.ts";
import { E2EError } from "./errors.ts";
import { identityKeyBytes, type PublicIdentity } from "./keys.ts";
import { concat, decodeHeader, type Header } from "./ratchet.ts";
import type { X3DHInit } from "./x3dh.ts";

/** Bytes of the prekey fields between the type byte and the ratchet header. */
export const PREKEY_FIELDS_BYTES = 32 + 32 + 64 + 32 + 4 + 4 + 1;
/** Overhead of a prekey message over its padded plaintext. */
export const PREKEY_OVERHEAD = 4 + PREKEY_FIELDS_BYTES + HEADER_BYTES + TAG_BYTES;

/** True when C2C `data` is an E2E envelope (starts with the magic `ff e2`). */
export function isEnvelope(data: Uint8Array): boolean {
  return data.length >= 2 && data[0] === MAGIC[0] && data[1] === MAGIC[1];
}

/** The padded size of a plaintext of `length` bytes (the smallest bucket > length). */
export function paddedSize(length: number): number {
  for (const b of PAD_BUCKETS) if (length < b) return b;
  throw new E2EError("TOO_LARGE", `an E2E message holds at most ${MAX_PLAINTEXT} bytes`);
}

/** Pads: plaintext || 0x80 || zeros, to `paddedSize` (ISO/IEC 7816-4). */
export function pad(plaintext: Uint8Array): Uint8Array {
  const out = new Uint8Array(paddedSize(plaintext.length));
  out.set(plaintext, 0);
  out[plaintext.length] = 0x80;
  return out;
}

/** Removes the padding; throws `E2EError` `MALFORMED` when there is none or the size is no bucket. */
export function unpad(padded: Uint8Array): Uint8Array {
  if (!PAD_BUCKETS.includes(padded.length)) throw new E2EError("MALFORMED", "bad padding");
  let i = padded.length - 1;
  while (i >= 0 && padded[i] === 0) i--;
  if (i < 0 || padded[i] !== 0x80) throw new E2EError("MALFORMED", "bad padding");
  return copyBytes(padded, 0, i);
}

/**
 * Associated data of a message from `senderId` to `recipientId` (X3DH § 3.3 AD, with
 * the protocol label and both client IDs, Double Ratchet § 3.4 AD):
 * `"backbone-e2e/1" || 0x00 || sender_id (16) || recipient_id (16) ||
 *  sender signing_key || sender dh_key || recipient signing_key || recipient dh_key`.
 */
export function associatedData(
  senderId: string,
  sender: PublicIdentity,
  recipientId: string,
  recipient: PublicIdentity,
): Uint8Array {
  return concat(
    new TextEncoder().encode(PROTOCOL_LABEL),
    Uint8Array.of(0),
    idToBytes(senderId),
    idToBytes(recipientId),
    identityKeyBytes(sender),
    identityKeyBytes(recipient),
  );
}

/**
 * Associated data of a **room** message (docs/E2E.md § Rooms): as `associatedData` with
 * `0x01` in place of the `0x00` after the label, and the room bound at the end:
 * `"backbone-e2e/1" || 0x01 || sender_id (16) || recipient_id (16) || Encode(IK_sender)
 *  || Encode(IK_recipient) || room_len (1) || room`, where `room` is the UTF-8 of the
 * room's key (`roomKey`: NFKC, lower case, NFKC — the name as the server compares it).
 * So a room message opens only as a message of that room, never of another room and
 * never as a direct message, and a direct message never opens as a room message.
 */
export function roomAssociatedData(
  senderId: string,
  sender: PublicIdentity,
  recipientId: string,
  recipient: PublicIdentity,
  room: string,
): Uint8Array {
  const name = new TextEncoder().encode(roomKey(room));
  if (name.length === 0 || name.length > 255)
    throw new E2EError("MALFORMED", "a room name is 1-255 bytes of UTF-8");
  const ad = associatedData(senderId, sender, recipientId, recipient);
  ad[PROTOCOL_LABEL.length] = 1;
  return concat(ad, Uint8Array.of(name.length), name);
}

/** The bytes before the ciphertext of a prekey message. */
export function prekeyPrefix(
  sender: PublicIdentity,
  init: X3DHInit,
  header: Uint8Array,
): Uint8Array {
  const fields = new Uint8Array(PREKEY_FIELDS_BYTES);
  const v = new DataView(fields.buffer);
  fields.set(sender.signingKey, 0);
  fields.set(sender.dhKey, 32);
  fields.set(sender.dhSignature, 64);
  fields.set(init.ephemeral, 128);
  v.setUint32(160, init.signedPreKeyId);
  v.setUint32(164, init.oneTimePreKeyId);
  fields[168] = KEM_NONE;
  return concat(MAGIC, Uint8Array.of(VERSION, TYPE_PREKEY), fields, header);
}

/** The bytes before the ciphertext of an ordinary message. */
export function messagePrefix(header: Uint8Array): Uint8Array {
  return concat(MAGIC, Uint8Array.of(VERSION, TYPE_MESSAGE), header);
}

/** A parsed envelope. */
export type Envelope =
  | {
      type: typeof TYPE_PREKEY;
      sender: PublicIdentity;
      init: X3DHInit;
      header: Header;
      prefix: Uint8Array;
      ciphertext: Uint8Array;
    }
  | { type: typeof TYPE_MESSAGE; header: Header; prefix: Uint8Array; ciphertext: Uint8Array };

/** Parses an envelope; throws `E2EError` `MALFORMED` / `UNSUPPORTED`. */
export function decodeEnvelope(data: Uint8Array): Envelope {
  if (!isEnvelope(data) || data.length < 4) throw new E2EError("MALFORMED", "not an E2E envelope");
  if (data[2] !== VERSION) throw new E2EError("UNSUPPORTED", "unknown E2E envelope version");
  const type = data[3];
  if (type === TYPE_MESSAGE) {
    const end = 4 + HEADER_BYTES;
    if (data.length < end + TAG_BYTES) throw new E2EError("MALFORMED", "E2E message too short");
    return {
      type,
      header: decodeHeader(data.subarray(4, end)),
      prefix: copyBytes(data, 0, end),
      ciphertext: copyBytes(data, end),
    };
  }
  if (type === TYPE_PREKEY) {
    const f = 4;
    const end = f + PREKEY_FIELDS_BYTES + HEADER_BYTES;
    if (data.length < end + TAG_BYTES) throw new E2EError("MALFORMED", "E2E message too short");
    if (data[f + 168] !== KEM_NONE) throw new E2EError("UNSUPPORTED", "KEM (PQXDH) not supported");
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return {
      type,
      sender: {
        signingKey: copyBytes(data, f, f + 32),
        dhKey: copyBytes(data, f + 32, f + 64),
        dhSignature: copyBytes(data, f + 64, f + 128),
      },
      init: {
        ephemeral: copyBytes(data, f + 128, f + 160),
        signedPreKeyId: v.getUint32(f + 160),
        oneTimePreKeyId: v.getUint32(f + 164),
      },
      header: decodeHeader(data.subarray(end - HEADER_BYTES, end)),
      prefix: copyBytes(data, 0, end),
      ciphertext: copyBytes(data, end),
    };
  }
  throw new E2EError("UNSUPPORTED", "unknown E2E envelope type");
}
