/**
 * Layouts of the two plaintext-framed handshake payloads (docs/PROTOCOL.md § Handshake).
 *
 *   challenge: key_size (u16) || server_spki (key_size) || challenge_data
 *              challenge_data = E_s (32) || random (≥ 32)
 *   response:  oaep_block (modulus bytes) || sealed (AEAD of client_id (16) || signature, + 16-byte tag)
 */
import { WireError } from "../errors.ts";
import {
  ID_BYTES,
  MAX_FRAME_PAYLOAD,
  MIN_CHALLENGE_SIZE,
  SIGNATURE_LENGTHS,
  TAG_BYTES,
  X25519_BYTES,
} from "./constants.ts";

export interface Challenge {
  /** Server public key, SubjectPublicKeyInfo DER. */
  serverSpki: Uint8Array;
  /** The whole challenge_data, E_s first. */
  challengeData: Uint8Array;
  /** E_s: the server's ephemeral X25519 public key (first 32 bytes of challenge_data). */
  serverEphemeral: Uint8Array;
}

/** Encodes a challenge payload. Throws `WireError` if it would not fit one frame. */
export function encodeChallenge(serverSpki: Uint8Array, challengeData: Uint8Array): Uint8Array {
  if (serverSpki.length === 0) throw new WireError("BAD_CHALLENGE", "empty server key");
  if (challengeData.length < MIN_CHALLENGE_SIZE) {
    throw new WireError(
      "BAD_CHALLENGE",
      `challenge data must be at least ${MIN_CHALLENGE_SIZE} bytes`,
    );
  }
  const size = 2 + serverSpki.length + challengeData.length;
  if (size > MAX_FRAME_PAYLOAD) {
    throw new WireError("BAD_CHALLENGE", `challenge of ${size} bytes does not fit one frame`);
  }
  const out = new Uint8Array(size);
  out[0] = serverSpki.length >>> 8;
  out[1] = serverSpki.length & 0xff;
  out.set(serverSpki, 2);
  out.set(challengeData, 2 + serverSpki.length);
  return out;
}

/** Decodes a challenge payload (fields are subarrays). Throws `WireError` `BAD_CHALLENGE`. */
export function decodeChallenge(payload: Uint8Array): Challenge {
  if (payload.length < 2)
    throw new WireError("BAD_CHALLENGE", "challenge shorter than its key size field");
  const keySize = ((payload[0] as number) << 8) | (payload[1] as number);
  if (keySize === 0) throw new WireError("BAD_CHALLENGE", "challenge carries an empty server key");
  const dataAt = 2 + keySize;
  if (payload.length < dataAt + MIN_CHALLENGE_SIZE) {
    throw new WireError(
      "BAD_CHALLENGE",
      `challenge of ${payload.length} bytes is too short for a ${keySize}-byte key and ${MIN_CHALLENGE_SIZE} bytes of data`,
    );
  }
  const challengeData = payload.subarray(dataAt);
  return {
    serverSpki: payload.subarray(2, dataAt),
    challengeData,
    serverEphemeral: challengeData.subarray(0, X25519_BYTES),
  };
}

/** Length of the sealed part of a response whose signature is `signatureBytes` long. */
export function sealedResponseLength(signatureBytes: number): number {
  return ID_BYTES + signatureBytes + TAG_BYTES;
}

/**
 * Splits a response payload for a server whose modulus is `modulusBytes` long. The
 * length must be exactly `modulusBytes + 16 + signature + 16` for a signature length
 * of 256, 384 or 512; otherwise throws `WireError` `BAD_RESPONSE`.
 */
export function splitResponse(
  payload: Uint8Array,
  modulusBytes: number,
): { block: Uint8Array; sealed: Uint8Array; signatureBytes: number } {
  const signatureBytes = payload.length - modulusBytes - ID_BYTES - TAG_BYTES;
  if (!SIGNATURE_LENGTHS.includes(signatureBytes)) {
    throw new WireError("BAD_RESPONSE", `response of ${payload.length} bytes has no valid layout`);
  }
  return {
    block: payload.subarray(0, modulusBytes),
    sealed: payload.subarray(modulusBytes),
    signatureBytes,
  };
}
