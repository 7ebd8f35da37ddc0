/**
 * Every bound of backbone/1 as a named constant, with its reason.
 * Section references are to docs/PROTOCOL.md.
 */

/** A frame is `size (u16) || payload`; size 0 is a protocol error (§ Framing). */
export const FRAME_HEADER_BYTES = 2;
export const MAX_FRAME_PAYLOAD = 0xffff;

/** AES-256-GCM tag appended to every encrypted payload (§ Encrypted frames). */
export const TAG_BYTES = 16;
/** The largest plaintext message that fits one frame: 65535 − 16. */
export const MAX_MESSAGE_DATA = MAX_FRAME_PAYLOAD - TAG_BYTES;

/** A client ID is a UUID, on the wire as its 16 RFC 9562 bytes. */
export const ID_BYTES = 16;
/** The broadcast address `ff…ff`. */
export const BROADCAST_ID = new Uint8Array(ID_BYTES).fill(0xff);

/** C2C header: byte 0 then the 16-byte address. */
export const C2C_HEADER_BYTES = 1 + ID_BYTES;
/** Stored (type 2) C2C header adds `queued_at (u32)`. */
export const STORED_HEADER_BYTES = C2C_HEADER_BYTES + 4;
/**
 * The most C2C data a client may put in one message. It is bounded by the stored
 * form, which is 4 bytes longer than the direct one: any message the server accepts
 * must still fit one frame if it has to be stored and delivered later.
 */
export const MAX_C2C_DATA = MAX_MESSAGE_DATA - STORED_HEADER_BYTES;

/** Control (C2S/S2C) header: byte 0 then the u32 timestamp. */
export const CONTROL_HEADER_BYTES = 1 + 4;

/** X25519 public keys, secrets and the client's random `r_c` (§ Handshake). */
export const X25519_BYTES = 32;
export const R_C_BYTES = 32;
/** OAEP plaintext: `E_c || r_c`. */
export const OAEP_PLAINTEXT_BYTES = X25519_BYTES + R_C_BYTES;

/** `challenge_data` starts with E_s; at least 32 random bytes must follow it. */
export const MIN_CHALLENGE_SIZE = 64;
export const DEFAULT_CHALLENGE_SIZE = 2048;

/** RSA identity keys: modulus sizes we accept, and the default. */
export const RSA_BITS = [2048, 3072, 4096] as const;
export type RsaBits = (typeof RSA_BITS)[number];
export const DEFAULT_RSA_BITS: RsaBits = 3072;
/** Signature lengths a response may carry: one per accepted modulus size. */
export const SIGNATURE_LENGTHS = RSA_BITS.map((b) => b / 8);

/** Largest challenge a client reads: key_size (2) + a 4096-bit SPKI + up to the frame. */
export const MAX_CHALLENGE_PAYLOAD = MAX_FRAME_PAYLOAD;
/** Largest response a server reads: OAEP block + AEAD(id + signature) for 4096-bit keys. */
export const MAX_RESPONSE_PAYLOAD = 512 + ID_BYTES + 512 + TAG_BYTES;

/**
 * Nonces are `0x00000000 || counter (u64)`, but a connection is closed with STOP
 * `rekey required` before a counter reaches 2^32 — far below GCM's limits.
 */
export const COUNTER_LIMIT = 2 ** 32;

/** At most this many messages in one record (BATCH, § BATCH). */
export const MAX_BATCH_MESSAGES = 1024;
/** The largest message a record can carry, alone: 65519 − 6 (record header) − 2 (length). */
export const MAX_BATCHED_MESSAGE = MAX_MESSAGE_DATA - CONTROL_HEADER_BYTES - 1 - 2;

/** At most this many entries in one CLIENT_STATUS request. */
export const MAX_STATUS_QUERY = 256;

/** Labels of the key schedule (ASCII, no terminator). */
export const LABEL_TRANSCRIPT = "backbone/1 transcript";
export const LABEL_KEYS = "backbone/1 keys";
export const LABEL_AUTH = "backbone/1 auth";

/** The TCP port a server listens on unless told otherwise. */
export const DEFAULT_PORT = 7447;

/** Protocol name and version as shown in SERVER_STATUS. */
export const PROTOCOL = "backbone/1";
