/**
 * X3DH (Marlinspike & Perrin, "The X3DH Key Agreement Protocol", rev. 1, 2016) with
 * curve X25519 and hash SHA-256 (§ 2.1), as pure functions.
 *
 * - § 2.2 KDF: HKDF-SHA256 over F || KM with F = 32 × 0xFF, salt = 32 zero bytes,
 *   info = `backbone-e2e/1 X3DH X25519 SHA-256`, 32 bytes. The info string is versioned
 *   so that PQXDH (which appends the KEM shared secret to KM) gets its own, and the
 *   prekey header reserves a `kem` byte for it.
 * - § 3.3: DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
 *   DH4 = DH(EK_A, OPK_B) when a one-time prekey was handed out.
 * - § 3.2: the bundle's signatures are verified first (see keys.ts `verifyBundle`).
 * - § 3.3 AD = Encode(IK_A) || Encode(IK_B) is extended in envelope.ts with the protocol
 *   label and both client IDs (§ 4.8 recommends identity information in AD).
 */
import { INFO_X3DH, KEY_BYTES, NO_PREKEY } from "./constants.ts";
import { E2EError } from "./errors.ts";
import {
  type Bundle,
  type Identity,
  type PreKey,
  type PublicIdentity,
  verifyBundle,
} from "./keys.ts";
import {
  dh,
  hkdfSha256,
  type KeyPair,
  type Random,
  systemRandom,
  x25519KeyPair,
} from "./primitives.ts";
import { concat } from "./ratchet.ts";

const F = new Uint8Array(KEY_BYTES).fill(0xff);
const SALT = new Uint8Array(KEY_BYTES);

/** What the initiator sends in the prekey header, besides its identity. */
export interface X3DHInit {
  ephemeral: Uint8Array;
  signedPreKeyId: number;
  /** `NO_PREKEY` (0xffffffff) when none was used. */
  oneTimePreKeyId: number;
}

function kdf(parts: Uint8Array[]): Uint8Array {
  const ikm = concat(F, ...parts);
  const sk = hkdfSha256(ikm, SALT, INFO_X3DH, KEY_BYTES);
  ikm.fill(0);
  for (const p of parts) p.fill(0);
  return sk;
}

/**
 * The initiator's side (§ 3.3): verifies `bundle` as `peerId`'s, then computes SK.
 * Returns SK (32), the header fields and the peer's signed prekey (the ratchet's first
 * remote key). Throws `E2EError`.
 */
export function x3dhInitiate(
  own: Identity,
  peerId: string,
  bundle: Bundle,
  random: Random = systemRandom,
  ephemeral?: KeyPair,
): { sk: Uint8Array; init: X3DHInit } {
  verifyBundle(bundle, peerId);
  if (bundle.oneTimePreKeys.length > 1) {
    throw new E2EError("MALFORMED", "a fetched bundle carries at most one one-time prekey");
  }
  const ek = ephemeral ?? x25519KeyPair(random);
  const spk = bundle.signedPreKey.key;
  const opk = bundle.oneTimePreKeys[0];
  const parts = [dh(own.dh.secret, spk), dh(ek.secret, bundle.identity.dhKey), dh(ek.secret, spk)];
  if (opk) parts.push(dh(ek.secret, opk.key));
  const sk = kdf(parts);
  ek.secret.fill(0);
  return {
    sk,
    init: {
      ephemeral: ek.public,
      signedPreKeyId: bundle.signedPreKey.id,
      oneTimePreKeyId: opk ? opk.id : NO_PREKEY,
    },
  };
}

/**
 * The responder's side (§ 3.4): `peer` is the initiator's identity, already verified
 * against its client ID; `spk` and `opk` are the prekeys the header names. Returns SK.
 */
export function x3dhRespond(
  own: Identity,
  peer: PublicIdentity,
  init: X3DHInit,
  spk: PreKey,
  opk: PreKey | undefined,
): Uint8Array {
  if ((init.oneTimePreKeyId === NO_PREKEY) !== (opk === undefined)) {
    throw new E2EError("UNKNOWN_PREKEY", "one-time prekey not held");
  }
  const parts = [
    dh(spk.secret, peer.dhKey),
    dh(own.dh.secret, init.ephemeral),
    dh(spk.secret, init.ephemeral),
  ];
  if (opk) parts.push(dh(opk.secret, init.ephemeral));
  return kdf(parts);
}
