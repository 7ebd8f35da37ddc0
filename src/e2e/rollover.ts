/**
 * Signed key rollover (docs/E2E.md § Key rollover): a client replaces its E2E identity
 * and signs the new one with the old, so that a peer who knew (and perhaps verified) the
 * old key can follow the change without the loud key-change warning.
 *
 * A link is `old (64) || new (64) || signature (64)`, where `old` and `new` are
 * `Encode(IK)` (Ed25519 ‖ X25519 public keys) and the signature is Ed25519 by the old
 * signing key over
 *   "backbone-e2e/1 rollover" || 0x00 || client_id (16) || key_id (u32) = 0 || old || new
 * (keys.ts `signedPayload`, like every other signature: another context or client ID
 * never verifies). A chain is `count (1) || count × link`, oldest first, each link's
 * `old` the previous link's `new`.
 *
 * The rollover envelope (C2C data, not encrypted: public keys and signatures only):
 *   ff e2 || version (1) = 01 || type (1) = 03 ||
 *   signing_key (32) || dh_key (32) || dh_signature (64) || chain
 */
import { copyBytes } from "../wire/bytes.ts";
import {
  CONTEXT_ROLLOVER,
  KEY_BYTES,
  MAGIC,
  MAX_ROLLOVER_LINKS,
  SIGNATURE_BYTES,
  TYPE_ROLLOVER,
  VERSION,
} from "./constants.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint } from "./fingerprint.ts";
import {
  type Identity,
  identityKeyBytes,
  type PublicIdentity,
  publicIdentity,
  signedPayload,
  verifyIdentity,
} from "./keys.ts";
import type { KnownPeers } from "./known-peers.ts";
import { checkEd25519Public, sign, verify } from "./primitives.ts";

/** One rollover: `next` signed by `previous` (both `Encode(IK)`, 64 bytes). */
export interface RolloverLink {
  previous: Uint8Array;
  next: Uint8Array;
  signature: Uint8Array;
}

const IK_BYTES = 2 * KEY_BYTES;
/** Encoded size of one link. */
export const LINK_BYTES = 2 * IK_BYTES + SIGNATURE_BYTES;

const same = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** The link by which `previous` hands over to `next` (both identities of `previous.clientId`). */
export function signRollover(previous: Identity, next: Identity): RolloverLink {
  const prev = identityKeyBytes(publicIdentity(previous));
  const nxt = identityKeyBytes(publicIdentity(next));
  const signature = sign(previous.signing.secret, rolloverPayload(previous.clientId, prev, nxt));
  return { previous: prev, next: nxt, signature };
}

function rolloverPayload(clientId: string, previous: Uint8Array, next: Uint8Array): Uint8Array {
  const keys = new Uint8Array(2 * IK_BYTES);
  keys.set(previous, 0);
  keys.set(next, IK_BYTES);
  return signedPayload(CONTEXT_ROLLOVER, clientId, 0, keys);
}

/** True when `link` is a valid rollover of `clientId` (its old signing key signed it). */
export function verifyLink(link: RolloverLink, clientId: string): boolean {
  const signingKey = link.previous.subarray(0, KEY_BYTES);
  try {
    checkEd25519Public(signingKey);
  } catch {
    return false;
  }
  return verify(signingKey, rolloverPayload(clientId, link.previous, link.next), link.signature);
}

/** `count (1) || count × link`. */
export function encodeChain(chain: RolloverLink[]): Uint8Array {
  if (chain.length > MAX_ROLLOVER_LINKS) throw new E2EError("MALFORMED", "rollover chain too long");
  const out = new Uint8Array(1 + chain.length * LINK_BYTES);
  out[0] = chain.length;
  chain.forEach((l, i) => {
    const at = 1 + i * LINK_BYTES;
    out.set(l.previous, at);
    out.set(l.next, at + IK_BYTES);
    out.set(l.signature, at + 2 * IK_BYTES);
  });
  return out;
}

/** Inverse of `encodeChain` (no signature checks). Throws `E2EError` `MALFORMED`. */
export function decodeChain(bytes: Uint8Array): RolloverLink[] {
  const n = bytes[0];
  if (n === undefined || n > MAX_ROLLOVER_LINKS || bytes.length !== 1 + n * LINK_BYTES) {
    throw new E2EError("MALFORMED", "bad rollover chain");
  }
  const out: RolloverLink[] = [];
  for (let i = 0; i < n; i++) {
    const at = 1 + i * LINK_BYTES;
    out.push({
      previous: copyBytes(bytes, at, at + IK_BYTES),
      next: copyBytes(bytes, at + IK_BYTES, at + 2 * IK_BYTES),
      signature: copyBytes(bytes, at + 2 * IK_BYTES, at + LINK_BYTES),
    });
  }
  return out;
}

/**
 * Follows `chain` from the identity whose fingerprint is `from` to `to` (`Encode(IK)`):
 * true only when a run of consecutive links, each validly signed for `clientId` by the
 * key before it, leads from one to the other. A chain for another client ID or made in
 * another context, a gap, or a forged link gives false.
 */
export function chainLeadsTo(
  chain: RolloverLink[],
  clientId: string,
  from: string,
  to: Uint8Array,
): boolean {
  const fp = (ik: Uint8Array) =>
    identityFingerprint({
      signingKey: ik.subarray(0, KEY_BYTES),
      dhKey: ik.subarray(KEY_BYTES),
      dhSignature: new Uint8Array(SIGNATURE_BYTES),
    });
  const start = chain.findIndex((l) => fp(l.previous) === from);
  if (start < 0) return false;
  let at = chain[start]?.previous as Uint8Array;
  for (const link of chain.slice(start)) {
    if (!same(link.previous, at) || !verifyLink(link, clientId)) return false;
    at = link.next;
    if (same(at, to)) return true;
  }
  return false;
}

/** The rollover envelope announcing `identity` with `chain`. */
export function encodeRolloverEnvelope(
  identity: PublicIdentity,
  chain: RolloverLink[],
): Uint8Array {
  const body = encodeChain(chain);
  const out = new Uint8Array(4 + 128 + body.length);
  out.set(MAGIC, 0);
  out[2] = VERSION;
  out[3] = TYPE_ROLLOVER;
  out.set(identity.signingKey, 4);
  out.set(identity.dhKey, 36);
  out.set(identity.dhSignature, 68);
  out.set(body, 132);
  return out;
}

/** True for C2C data that is a rollover envelope. */
export function isRolloverEnvelope(data: Uint8Array): boolean {
  return (
    data.length >= 4 &&
    data[0] === MAGIC[0] &&
    data[1] === MAGIC[1] &&
    data[2] === VERSION &&
    data[3] === TYPE_ROLLOVER
  );
}

/**
 * Parses a rollover envelope from `senderId` (as the server stated it) and checks the
 * new identity's own signature for that ID. Throws `E2EError`.
 */
export function decodeRolloverEnvelope(
  data: Uint8Array,
  senderId: string,
): { identity: PublicIdentity; chain: RolloverLink[] } {
  if (!isRolloverEnvelope(data) || data.length < 133) {
    throw new E2EError("MALFORMED", "bad rollover envelope");
  }
  const identity = {
    signingKey: copyBytes(data, 4, 36),
    dhKey: copyBytes(data, 36, 68),
    dhSignature: copyBytes(data, 68, 132),
  };
  verifyIdentity(identity, senderId);
  return { identity, chain: decodeChain(data.subarray(132)) };
}

/** What following a rollover changed in `known_peers`. */
export interface RolledOver {
  id: string;
  previous: string;
  fingerprint: string;
  /** The peer was verified and stays so. */
  verified: boolean;
}

/**
 * Records in `known` that peer `id` moved to `identity` when `chain` leads there from
 * the key recorded for it: the new key replaces the old one and keeps its verified
 * status, and a pending change to it is settled. Returns what changed, or null when
 * nothing did (unknown peer, key already recorded, or no valid chain from the recorded
 * key: then the ordinary key-change rules apply when the new key is used).
 */
export function followRollover(
  known: KnownPeers,
  id: string,
  identity: PublicIdentity,
  chain: RolloverLink[],
  now: number,
): RolledOver | null {
  const peer = known.get(id);
  const fingerprint = identityFingerprint(identity);
  if (!peer || peer.fingerprint === fingerprint) return null;
  if (!chainLeadsTo(chain, id, peer.fingerprint, identityKeyBytes(identity))) return null;
  const previous = peer.fingerprint;
  peer.fingerprint = fingerprint;
  peer.pending = null;
  peer.firstSeen = now;
  return { id: peer.id, previous, fingerprint, verified: peer.verified };
}
