/**
 * Primitives of the end-to-end layer: X25519 with key validation, Ed25519 (strict,
 * RFC 8032 § 5.1.7 without ZIP-215 leniency), HMAC-SHA256, HKDF-SHA256 (RFC 5869) and
 * AES-256-GCM. X25519 runs through node:crypto (about 15× faster here than noble, see
 * src/crypto/primitives.ts); test/e2e-core.test.ts checks it against @noble/curves.
 */

import { gcm } from "@noble/ciphers/aes.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes, x25519Public, x25519Shared } from "../crypto/primitives.ts";
import { KEY_BYTES, SIGNATURE_BYTES } from "./constants.ts";
import { E2EError } from "./errors.ts";

/** A source of random bytes; tests and vectors pass a deterministic one. */
export type Random = (length: number) => Uint8Array;
export const systemRandom: Random = randomBytes;

/** An X25519 or Ed25519 key pair: 32-byte secret and public key. */
export interface KeyPair {
  secret: Uint8Array;
  public: Uint8Array;
}

// 2^255 - 19, little-endian, for the canonical-encoding check.
const P = (1n << 255n) - 19n;
// A fixed clamped scalar: X25519 with it yields all zeros exactly for low-order points.
const PROBE = new Uint8Array(32).fill(0x55);

function littleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] as number);
  return n;
}

/**
 * Checks a peer's X25519 public key: 32 bytes, canonical (bit 255 clear and u < p;
 * RFC 7748 § 5 would mask and reduce, we refuse instead), and not of small order (an
 * all-zero shared secret, RFC 7748 § 6.1). Throws `E2EError` `BAD_KEY`.
 */
export function checkX25519Public(key: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw new E2EError("BAD_KEY", "an X25519 key is 32 bytes");
  if (littleEndian(key) >= P) throw new E2EError("BAD_KEY", "non-canonical X25519 key");
  try {
    x25519Shared(PROBE, key);
  } catch (cause) {
    throw new E2EError("BAD_KEY", "low-order X25519 key", { cause });
  }
}

/** A fresh X25519 key pair. */
export function x25519KeyPair(random: Random = systemRandom): KeyPair {
  const secret = random(KEY_BYTES);
  return { secret, public: x25519Public(secret) };
}

/** X25519 public key of a secret. */
export function x25519PublicOf(secret: Uint8Array): Uint8Array {
  return x25519Public(secret);
}

/** DH(secret, peer) after `checkX25519Public(peer)`; throws `E2EError` `BAD_KEY`. */
export function dh(secret: Uint8Array, peer: Uint8Array): Uint8Array {
  checkX25519Public(peer);
  try {
    return x25519Shared(secret, peer);
  } catch (cause) {
    throw new E2EError("BAD_KEY", "low-order X25519 key", { cause });
  }
}

/** A fresh Ed25519 key pair (the secret is the 32-byte RFC 8032 seed). */
export function ed25519KeyPair(random: Random = systemRandom): KeyPair {
  const secret = random(KEY_BYTES);
  return { secret, public: ed25519.getPublicKey(secret) };
}

/**
 * Checks an Ed25519 public key: 32 bytes, a canonical encoding of a curve point that is
 * not of small order. Throws `E2EError` `BAD_KEY`.
 */
export function checkEd25519Public(key: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw new E2EError("BAD_KEY", "an Ed25519 key is 32 bytes");
  let small: boolean;
  try {
    small = ed25519.Point.fromBytes(key, false).isSmallOrder();
  } catch (cause) {
    throw new E2EError("BAD_KEY", "malformed Ed25519 key", { cause });
  }
  if (small) throw new E2EError("BAD_KEY", "small-order Ed25519 key");
}

/** Ed25519 signature (RFC 8032 § 5.1.6). */
export function sign(secret: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, secret);
}

/** Strict Ed25519 verification (RFC 8032 § 5.1.7, `zip215: false`); false on any failure. */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== KEY_BYTES) return false;
  try {
    checkEd25519Public(publicKey);
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** HMAC-SHA256 (RFC 2104). */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(sha256, key, data);
}

/** HKDF-SHA256 (RFC 5869). */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: string,
  length: number,
): Uint8Array {
  return hkdf(sha256, ikm, salt, new TextEncoder().encode(info), length);
}

/** AES-256-GCM seal: ciphertext || 16-byte tag. */
export function aeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  return gcm(key, nonce, ad).encrypt(plaintext);
}

/** AES-256-GCM open; throws `E2EError` `DECRYPT_FAILED` when authentication fails. */
export function aeadOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  try {
    return gcm(key, nonce, ad).decrypt(sealed);
  } catch (cause) {
    throw new E2EError("DECRYPT_FAILED", "message failed authentication", { cause });
  }
}
