/**
 * The backbone/1 key schedule (docs/PROTOCOL.md § Handshake, step 3):
 *
 *   shared = X25519(e, E_peer)                 (an all-zero result aborts)
 *   th     = SHA-256("backbone/1 transcript" || challenge_payload || E_c)
 *   okm    = HKDF-SHA256(ikm = shared || r_c, salt = th, info = "backbone/1 keys", L = 64)
 *   k_c2s  = okm[0:32]   k_s2c = okm[32:64]
 *   signed = "backbone/1 auth" || th || client_id
 */
import { concat, hkdfSha256, label, sha256, wipe } from "../crypto/primitives.ts";
import { copyBytes } from "../wire/bytes.ts";
import { LABEL_AUTH, LABEL_KEYS, LABEL_TRANSCRIPT } from "../wire/constants.ts";

const TRANSCRIPT = label(LABEL_TRANSCRIPT);
const KEYS = label(LABEL_KEYS);
const AUTH = label(LABEL_AUTH);

/** th: binds the server key, the challenge data and the client's ephemeral key. */
export function transcriptHash(
  challengePayload: Uint8Array,
  clientEphemeral: Uint8Array,
): Uint8Array {
  return sha256(TRANSCRIPT, challengePayload, clientEphemeral);
}

/** Session keys from the X25519 secret and r_c. Wipes its intermediate key material. */
export function deriveKeys(
  shared: Uint8Array,
  rC: Uint8Array,
  th: Uint8Array,
): { c2s: Uint8Array; s2c: Uint8Array } {
  const ikm = concat(shared, rC);
  const okm = hkdfSha256(ikm, th, KEYS, 64);
  const keys = { c2s: copyBytes(okm, 0, 32), s2c: copyBytes(okm, 32, 64) };
  wipe(ikm, okm);
  return keys;
}

/** The bytes the client signs with RSA-PSS. */
export function authMessage(th: Uint8Array, clientId: Uint8Array): Uint8Array {
  return concat(AUTH, th, clientId);
}
