/**
 * E2E keys: the identity (an Ed25519 signing key and an X25519 key signed by it), the
 * signed prekey and one-time prekeys (X3DH § 2.4, § 3.1), their signatures and the
 * bundle a client publishes. docs/E2E.md § Keys and § Bundle encoding.
 *
 * Every signature is Ed25519 over
 *   context (UTF-8) || 0x00 || client_id (16) || key_id (u32 BE) || key (32)
 * so a signature made for one purpose (identity DH key, signed prekey, one-time prekey)
 * or for one client ID verifies for no other (the unknown key-share defence).
 */
import { idToBytes } from "../ids.ts";
import { copyBytes } from "../wire/bytes.ts";
import {
  CONTEXT_IDENTITY_DH,
  CONTEXT_ONE_TIME_PREKEY,
  CONTEXT_SIGNED_PREKEY,
  KEY_BYTES,
  MAX_ONE_TIME_PREKEYS,
  SIGNATURE_BYTES,
} from "./constants.ts";
import { E2EError } from "./errors.ts";
import {
  checkEd25519Public,
  checkX25519Public,
  ed25519KeyPair,
  type KeyPair,
  type Random,
  sign,
  systemRandom,
  verify,
  x25519KeyPair,
} from "./primitives.ts";

/** The public half of an E2E identity (what peers see and pin). */
export interface PublicIdentity {
  /** Ed25519 public key (32). */
  signingKey: Uint8Array;
  /** X25519 identity key (32), `IK` of X3DH. */
  dhKey: Uint8Array;
  /** Signature of `dhKey` in context `identity-dh` (64). */
  dhSignature: Uint8Array;
}

/** A client's E2E identity, secrets included. */
export interface Identity {
  clientId: string;
  signing: KeyPair;
  dh: KeyPair;
  dhSignature: Uint8Array;
}

/** A public prekey with its ID and signature. */
export interface PublicPreKey {
  id: number;
  key: Uint8Array;
  signature: Uint8Array;
}

/** A prekey we hold the secret of. */
export interface PreKey extends PublicPreKey {
  secret: Uint8Array;
}

/**
 * A bundle as published: identity, signed prekey, up to 100 one-time prekeys. A fetched
 * bundle carries at most one one-time prekey (none once they run out).
 */
export interface Bundle {
  identity: PublicIdentity;
  signedPreKey: PublicPreKey;
  oneTimePreKeys: PublicPreKey[];
}

/** The bytes signed for `key` of `clientId` in `context`. */
export function signedPayload(
  context: string,
  clientId: string,
  keyId: number,
  key: Uint8Array,
): Uint8Array {
  const ctx = new TextEncoder().encode(context);
  const out = new Uint8Array(ctx.length + 1 + 16 + 4 + key.length);
  out.set(ctx, 0);
  out[ctx.length] = 0;
  out.set(idToBytes(clientId), ctx.length + 1);
  new DataView(out.buffer).setUint32(ctx.length + 17, keyId >>> 0);
  out.set(key, ctx.length + 21);
  return out;
}

/** A new identity for `clientId`. */
export function generateIdentity(clientId: string, random: Random = systemRandom): Identity {
  const signing = ed25519KeyPair(random);
  const dh = x25519KeyPair(random);
  const dhSignature = sign(
    signing.secret,
    signedPayload(CONTEXT_IDENTITY_DH, clientId, 0, dh.public),
  );
  return { clientId, signing, dh, dhSignature };
}

/** The public half of `identity`. */
export function publicIdentity(identity: Identity): PublicIdentity {
  return {
    signingKey: identity.signing.public,
    dhKey: identity.dh.public,
    dhSignature: identity.dhSignature,
  };
}

/** The 64-byte identity key encoding: signing key || DH key (`Encode(IK)`, X3DH § 2.5). */
export function identityKeyBytes(identity: PublicIdentity): Uint8Array {
  const out = new Uint8Array(2 * KEY_BYTES);
  out.set(identity.signingKey, 0);
  out.set(identity.dhKey, KEY_BYTES);
  return out;
}

function makePreKey(identity: Identity, context: string, id: number, random: Random): PreKey {
  const pair = x25519KeyPair(random);
  const signature = sign(
    identity.signing.secret,
    signedPayload(context, identity.clientId, id, pair.public),
  );
  return { id, key: pair.public, secret: pair.secret, signature };
}

/** A signed prekey with `id` (X3DH § 3.1). */
export function generateSignedPreKey(
  identity: Identity,
  id: number,
  random: Random = systemRandom,
): PreKey {
  return makePreKey(identity, CONTEXT_SIGNED_PREKEY, id, random);
}

/** `count` one-time prekeys with IDs `firstId`, `firstId + 1`, … (signed, see module doc). */
export function generateOneTimePreKeys(
  identity: Identity,
  firstId: number,
  count: number,
  random: Random = systemRandom,
): PreKey[] {
  const out: PreKey[] = [];
  for (let i = 0; i < count; i++) {
    out.push(makePreKey(identity, CONTEXT_ONE_TIME_PREKEY, (firstId + i) >>> 0, random));
  }
  return out;
}

/**
 * Checks a peer's identity as the identity of `clientId`: both keys well-formed and
 * the DH key signed for this client ID. Throws `E2EError` `BAD_KEY` / `BAD_SIGNATURE`.
 */
export function verifyIdentity(identity: PublicIdentity, clientId: string): void {
  checkEd25519Public(identity.signingKey);
  checkX25519Public(identity.dhKey);
  const payload = signedPayload(CONTEXT_IDENTITY_DH, clientId, 0, identity.dhKey);
  if (!verify(identity.signingKey, payload, identity.dhSignature)) {
    throw new E2EError("BAD_SIGNATURE", "identity key signature does not verify");
  }
}

function verifyPreKey(
  identity: PublicIdentity,
  clientId: string,
  context: string,
  preKey: PublicPreKey,
): void {
  checkX25519Public(preKey.key);
  const payload = signedPayload(context, clientId, preKey.id, preKey.key);
  if (!verify(identity.signingKey, payload, preKey.signature)) {
    throw new E2EError("BAD_SIGNATURE", "prekey signature does not verify");
  }
}

/**
 * Checks every key and signature of `bundle` as the bundle of `clientId` (X3DH § 3.2:
 * "Alice verifies the prekey signature and aborts the protocol if verification fails").
 * Throws `E2EError`.
 */
export function verifyBundle(bundle: Bundle, clientId: string): void {
  verifyIdentity(bundle.identity, clientId);
  verifyPreKey(bundle.identity, clientId, CONTEXT_SIGNED_PREKEY, bundle.signedPreKey);
  if (bundle.oneTimePreKeys.length > MAX_ONE_TIME_PREKEYS) {
    throw new E2EError("MALFORMED", "too many one-time prekeys");
  }
  const ids = new Set<number>();
  for (const opk of bundle.oneTimePreKeys) {
    if (ids.has(opk.id)) throw new E2EError("MALFORMED", "duplicate one-time prekey ID");
    ids.add(opk.id);
    verifyPreKey(bundle.identity, clientId, CONTEXT_ONE_TIME_PREKEY, opk);
  }
}

/** Encoded size of one prekey entry: id (4) || key (32) || signature (64). */
export const PREKEY_ENTRY_BYTES = 4 + KEY_BYTES + SIGNATURE_BYTES;
/** Bundle encoding version. */
export const BUNDLE_VERSION = 1;

/**
 * Bundle encoding (docs/E2E.md § Bundle encoding):
 * `version (1) || signing_key (32) || dh_key (32) || dh_signature (64) ||
 *  spk_id (4) || spk (32) || spk_signature (64) || kem_count (1) = 0 ||
 *  opk_count (1) || opk_count × (id (4) || key (32) || signature (64))`.
 * `kem_count` is reserved for PQXDH's signed KEM prekeys and is 0 in version 1.
 */
export function encodeBundle(bundle: Bundle): Uint8Array {
  const n = bundle.oneTimePreKeys.length;
  if (n > MAX_ONE_TIME_PREKEYS) throw new E2EError("MALFORMED", "too many one-time prekeys");
  const out = new Uint8Array(1 + 128 + PREKEY_ENTRY_BYTES + 2 + n * PREKEY_ENTRY_BYTES);
  const view = new DataView(out.buffer);
  out[0] = BUNDLE_VERSION;
  out.set(bundle.identity.signingKey, 1);
  out.set(bundle.identity.dhKey, 33);
  out.set(bundle.identity.dhSignature, 65);
  let at = 129;
  const put = (p: PublicPreKey) => {
    view.setUint32(at, p.id >>> 0);
    out.set(p.key, at + 4);
    out.set(p.signature, at + 36);
    at += PREKEY_ENTRY_BYTES;
  };
  put(bundle.signedPreKey);
  out[at++] = 0;
  out[at++] = n;
  for (const p of bundle.oneTimePreKeys) put(p);
  return out;
}

/** Parses a bundle (no signature checks; call `verifyBundle`). Throws `E2EError` `MALFORMED`. */
export function decodeBundle(bytes: Uint8Array): Bundle {
  const bad = (why: string) => new E2EError("MALFORMED", `bad bundle: ${why}`);
  if (bytes.length < 1 + 128 + PREKEY_ENTRY_BYTES + 2) throw bad("too short");
  if (bytes[0] !== BUNDLE_VERSION) throw new E2EError("UNSUPPORTED", "unknown bundle version");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const copy = (from: number, len: number) => copyBytes(bytes, from, from + len);
  let at = 129;
  const take = (): PublicPreKey => {
    const p = { id: view.getUint32(at), key: copy(at + 4, 32), signature: copy(at + 36, 64) };
    at += PREKEY_ENTRY_BYTES;
    return p;
  };
  const identity = { signingKey: copy(1, 32), dhKey: copy(33, 32), dhSignature: copy(65, 64) };
  const signedPreKey = take();
  if (bytes[at++] !== 0) throw new E2EError("UNSUPPORTED", "KEM prekeys are not supported");
  const n = bytes[at++] as number;
  if (n > MAX_ONE_TIME_PREKEYS) throw bad("too many one-time prekeys");
  if (bytes.length !== at + n * PREKEY_ENTRY_BYTES) throw bad("wrong length");
  const oneTimePreKeys: PublicPreKey[] = [];
  for (let i = 0; i < n; i++) oneTimePreKeys.push(take());
  return { identity, signedPreKey, oneTimePreKeys };
}
