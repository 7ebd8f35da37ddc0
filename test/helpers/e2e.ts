/**
 * Helpers for E2E tests: a deterministic random source (SHA-256 of a label and a
 * counter, for vectors only — never for anything secret) and ready-made parties.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type Bundle,
  generateIdentity,
  generateOneTimePreKeys,
  generateSignedPreKey,
  type Identity,
  type PreKey,
  publicIdentity,
} from "../../src/e2e/keys.ts";
import type { Random } from "../../src/e2e/primitives.ts";
import type { PeerSessions, PreKeyStore } from "../../src/e2e/session.ts";

/** Bytes from SHA-256(label || counter), counter incremented per 32-byte block. */
export function seededRandom(label: string): Random {
  let counter = 0;
  const enc = new TextEncoder().encode(label);
  return (length: number) => {
    const out = new Uint8Array(length);
    for (let at = 0; at < length; at += 32) {
      const c = new Uint8Array(4);
      new DataView(c.buffer).setUint32(0, counter++);
      out.set(sha256(Uint8Array.from([...enc, ...c])).subarray(0, Math.min(32, length - at)), at);
    }
    return out;
  };
}

/** A client with identity, prekeys and (initially empty) sessions. */
export interface Party {
  id: string;
  identity: Identity;
  preKeys: PreKeyStore;
  spk: PreKey;
  opks: PreKey[];
}

export function makeParty(id: string, random?: Random, opkCount = 5): Party {
  const identity = generateIdentity(id, random);
  const spk = generateSignedPreKey(identity, 1, random);
  const opks = generateOneTimePreKeys(identity, 100, opkCount, random);
  return {
    id,
    identity,
    spk,
    opks,
    preKeys: { signedPreKeys: [spk], oneTimePreKeys: new Map(opks.map((k) => [k.id, k])) },
  };
}

/** The bundle a directory would hand out: identity, signed prekey, at most one OPK. */
export function fetchedBundle(p: Party, withOpk = true): Bundle {
  const opk = withOpk ? p.opks.find((k) => p.preKeys.oneTimePreKeys.has(k.id)) : undefined;
  return {
    identity: publicIdentity(p.identity),
    signedPreKey: { id: p.spk.id, key: p.spk.key, signature: p.spk.signature },
    oneTimePreKeys: opk ? [{ id: opk.id, key: opk.key, signature: opk.signature }] : [],
  };
}

export function empty(peerId: string): PeerSessions {
  return { peerId, sessions: [] };
}

export const ALICE = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";
export const BOB = "5b2e6a1c-8d3f-4e2a-9b7c-1d2e3f4a5b6c";
export const MALLORY = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
