/**
 * An independent rendering of the backbone/1 key schedule and frame encryption
 * (docs/PROTOCOL.md § Handshake step 3, § Encrypted frames), written straight from the
 * primitives (noble X25519, @noble/hashes HKDF/SHA-256, node:crypto AES-256-GCM) and
 * sharing no code with src/handshake or src/crypto/channel, so tests can check the
 * project's code against it.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ascii, cat } from "./bytes.ts";

export interface Schedule {
  eCPublic: Uint8Array;
  eSPublic: Uint8Array;
  shared: Uint8Array;
  th: Uint8Array;
  kC2s: Uint8Array;
  kS2c: Uint8Array;
}

/** E_s is the first 32 bytes of challenge_data, which follows key_size and the SPKI. */
export function serverEphemeralOf(challengePayload: Uint8Array): Uint8Array {
  const keySize = ((challengePayload[0] as number) << 8) | (challengePayload[1] as number);
  return challengePayload.slice(2 + keySize, 2 + keySize + 32);
}

/** The client's view of the schedule, from the challenge, e_c and r_c. */
export function clientSchedule(
  challengePayload: Uint8Array,
  eCSecret: Uint8Array,
  rC: Uint8Array,
): Schedule {
  const eSPublic = serverEphemeralOf(challengePayload);
  const eCPublic = x25519.getPublicKey(eCSecret);
  const shared = x25519.getSharedSecret(eCSecret, eSPublic);
  const th = sha256(cat(ascii("backbone/1 transcript"), challengePayload, eCPublic));
  const okm = hkdf(sha256, cat(shared, rC), th, ascii("backbone/1 keys"), 64);
  return { eCPublic, eSPublic, shared, th, kC2s: okm.slice(0, 32), kS2c: okm.slice(32) };
}

/** The bytes the client signs: "backbone/1 auth" || th || client_id. */
export function signedBytes(th: Uint8Array, clientId: Uint8Array): Uint8Array {
  return cat(ascii("backbone/1 auth"), th, clientId);
}

function nonce(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(counter), 4);
  return n;
}

/** AES-256-GCM seal: ciphertext || 16-byte tag. */
export function gcmSeal(key: Uint8Array, counter: number, message: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-256-gcm", key, nonce(counter));
  return cat(c.update(message), c.final(), c.getAuthTag());
}

/** AES-256-GCM open; throws when the tag does not verify. */
export function gcmOpen(key: Uint8Array, counter: number, payload: Uint8Array): Uint8Array {
  const end = payload.length - 16;
  const d = createDecipheriv("aes-256-gcm", key, nonce(counter));
  d.setAuthTag(payload.subarray(end));
  return cat(d.update(payload.subarray(0, end)), d.final());
}
