/**
 * Safety numbers, computed as Signal's NumericFingerprintGenerator does (libsignal
 * `fingerprint.rs`; the displayable form): for each side,
 *   h = SHA-512(version (u16 BE, 0) || key || stable_id || key), then 5,199 times
 *   h = SHA-512(h || key);
 * the first 30 bytes give six 5-byte big-endian chunks, each printed as
 * `chunk mod 100000` in 5 digits: 30 digits per side. The two 30-digit strings are
 * joined, the smaller first, so both sides print the same 60 digits.
 *
 * backbone's key is the 64-byte identity key encoding (Ed25519 || X25519, keys.ts
 * `identityKeyBytes`) and the stable ID is the client ID as canonical UUID text.
 */
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { identityKeyBytes, type PublicIdentity } from "./keys.ts";

/** Signal's iteration count for safety numbers. */
export const FINGERPRINT_ITERATIONS = 5200;
const FINGERPRINT_VERSION = Uint8Array.of(0, 0);

/** The 30-digit half of one side. */
export function fingerprintDigits(
  key: Uint8Array,
  stableId: Uint8Array,
  iterations = FINGERPRINT_ITERATIONS,
): string {
  let h: Uint8Array = Uint8Array.from([...FINGERPRINT_VERSION, ...key, ...stableId]);
  for (let i = 0; i < iterations; i++) {
    const input = new Uint8Array(h.length + key.length);
    input.set(h, 0);
    input.set(key, h.length);
    h = sha512(input);
  }
  let out = "";
  for (let i = 0; i < 30; i += 5) {
    let chunk = 0;
    for (let j = 0; j < 5; j++) chunk = chunk * 256 + (h[i + j] as number);
    out += String(chunk % 100000).padStart(5, "0");
  }
  return out;
}

/** The 60-digit number from both halves, the smaller first (libsignal `DisplayableFingerprint`). */
export function combineDigits(local: string, remote: string): string {
  return local <= remote ? local + remote : remote + local;
}

/** The safety number of two clients, the same on both sides. */
export function safetyNumber(
  localId: string,
  local: PublicIdentity,
  remoteId: string,
  remote: PublicIdentity,
): string {
  const enc = new TextEncoder();
  return combineDigits(
    fingerprintDigits(identityKeyBytes(local), enc.encode(localId.toLowerCase())),
    fingerprintDigits(identityKeyBytes(remote), enc.encode(remoteId.toLowerCase())),
  );
}

/** The safety number in 12 groups of 5 digits, as Signal shows it. */
export function formatSafetyNumber(digits: string): string {
  return (digits.match(/.{5}/g) ?? []).join(" ");
}

/** `SHA256:…` (unpadded base64) of a peer's identity key, as `known_peers` records it. */
export function identityFingerprint(identity: PublicIdentity): string {
  const digest = sha256(identityKeyBytes(identity));
  return `SHA256:${Buffer.from(digest).toString("base64").replace(/=+$/, "")}`;
}
