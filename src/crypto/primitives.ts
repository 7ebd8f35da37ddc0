/**
 * The small primitives of backbone/1: SHA-256, HKDF-SHA256, X25519, fingerprints,
 * randomness and wiping. docs/PROTOCOL.md § Keys and primitives.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { HandshakeError } from "../errors.ts";
import { copyBytes } from "../wire/bytes.ts";
import { X25519_BYTES } from "../wire/constants.ts";

/*
 * SHA-256 and HKDF run through node:crypto (BoringSSL) rather than @noble/hashes:
 * measured here (Bun 1.4.5, AMD EPYC) SHA-256 of a 2.5 KiB challenge costs 1.7 µs
 * against 39 µs, HKDF of 64 bytes 0.9 µs against 11.5 µs — both once per login on the
 * server's event loop (docs/BENCHMARKS.md § Handshakes). test/kat.test.ts checks them
 * against RFC 5869's and NIST's vectors.
 */

/** SHA-256 (FIPS 180-4) of the concatenation of `parts`: 32 bytes. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/**
 * HKDF-SHA256 (RFC 5869): `length` bytes (at most 8160) from `ikm`, `salt` (empty
 * means 32 zero bytes, as the RFC says) and `info`. Throws `RangeError` past 8160.
 */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * 32)
    throw new RangeError("HKDF-SHA256 output is 0 to 8160 bytes");
  return new Uint8Array(hkdfSync("sha256", ikm, salt, info, length));
}

/*
 * X25519 runs through node:crypto (BoringSSL) rather than @noble/curves: measured here
 * (Bun 1.4.5, AMD EPYC) a key pair plus one shared secret costs 0.047 ms against
 * 0.72 ms with noble — and on the server it runs on the event loop, once per login.
 * The tests check it against RFC 7748's vectors and against noble.
 */
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");

function privateKeyObject(secret: Uint8Array): KeyObject {
  if (secret.length !== X25519_BYTES) throw new RangeError("an X25519 secret is 32 bytes");
  const der = Buffer.concat([PKCS8_X25519, secret]);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

/**
 * An X25519 secret parsed once, with its public key (RFC 7748 § 6.1): one side of a
 * handshake computes its public key and then one shared secret from the same secret,
 * and parsing it twice cost a quarter of that work (measured: 89 µs for both steps
 * parsing twice, 67 µs parsing once). The caller keeps and wipes the secret bytes;
 * `dispose` drops the parsed key.
 */
export class X25519Secret {
  /** The 32-byte public key. */
  readonly publicKey: Uint8Array;
  #key: KeyObject | null;

  constructor(secret: Uint8Array) {
    this.#key = privateKeyObject(secret);
    const spki = createPublicKey(this.#key).export({ format: "der", type: "spki" });
    this.publicKey = new Uint8Array(spki.subarray(spki.length - X25519_BYTES));
  }

  /** X25519(secret, peerPublic); throws as {@link x25519Shared} does. */
  shared(peerPublic: Uint8Array): Uint8Array {
    if (!this.#key) throw new RangeError("X25519 secret already disposed");
    return sharedWith(this.#key, peerPublic);
  }

  dispose(): void {
    this.#key = null;
  }
}

/** A fresh X25519 secret scalar (32 random bytes; X25519 clamps it itself). */
export function x25519Secret(): Uint8Array {
  return randomBytes(X25519_BYTES);
}

/** The X25519 public key of a secret scalar. */
export function x25519Public(secret: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(secret)).export({ format: "der", type: "spki" });
  return copyBytes(spki, spki.length - X25519_BYTES);
}

/**
 * X25519(secret, peerPublic). A low-order peer key (all-zero result) throws
 * `HandshakeError` at stage `key-exchange`.
 */
export function x25519Shared(secret: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  return sharedWith(privateKeyObject(secret), peerPublic);
}

function sharedWith(privateKey: KeyObject, peerPublic: Uint8Array): Uint8Array {
  if (peerPublic.length !== X25519_BYTES) {
    throw new HandshakeError("key-exchange", "BAD_EPHEMERAL", "ephemeral key is not 32 bytes");
  }
  let shared: Uint8Array;
  try {
    const publicKey = createPublicKey({
      key: Buffer.concat([SPKI_X25519, peerPublic]),
      format: "der",
      type: "spki",
    });
    shared = new Uint8Array(diffieHellman({ privateKey, publicKey }));
  } catch (cause) {
    throw new HandshakeError("key-exchange", "LOW_ORDER_KEY", "low-order X25519 key", { cause });
  }
  // An all-zero result means a low-order peer key (RFC 7748 § 6.1): abort, whatever the library did.
  if (shared.every((b) => b === 0)) {
    throw new HandshakeError("key-exchange", "LOW_ORDER_KEY", "low-order X25519 key");
  }
  return shared;
}

/** Cryptographically random bytes. */
export function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

/** Overwrites key material with zeros. */
export function wipe(...buffers: (Uint8Array | undefined | null)[]): void {
  for (const b of buffers) b?.fill(0);
}

/** ASCII/UTF-8 bytes of a label. */
export function label(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Concatenates byte arrays in one allocation. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Constant-time equality of two byte arrays (length is not secret). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/** `SHA256:` + unpadded base64 of SHA-256(SPKI DER), as OpenSSH prints fingerprints. */
export function fingerprint(spki: Uint8Array): string {
  return `SHA256:${Buffer.from(sha256(spki)).toString("base64").replace(/=+$/, "")}`;
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Bytes of a hex string (no prefix). */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError("invalid hex");
  return new Uint8Array(Buffer.from(hex, "hex"));
}
