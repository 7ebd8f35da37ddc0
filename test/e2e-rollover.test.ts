/**
 * Signed key rollover (docs/E2E.md § Key rollover), in memory and on disk: a link
 * verifies only for its client ID and context, chains are followed link by link from
 * the recorded key, a followed rollover keeps "verified", the state keeps the old
 * identity for messages in flight.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CONTEXT_IDENTITY_DH,
  CONTEXT_ONE_TIME_PREKEY,
  CONTEXT_ROLLOVER,
  CONTEXT_SIGNED_PREKEY,
} from "../src/e2e/constants.ts";
import { identityFingerprint } from "../src/e2e/fingerprint.ts";
import {
  generateIdentity,
  type Identity,
  identityKeyBytes,
  publicIdentity,
  signedPayload,
} from "../src/e2e/keys.ts";
import { KnownPeers } from "../src/e2e/known-peers.ts";
import { sign } from "../src/e2e/primitives.ts";
import {
  chainLeadsTo,
  decodeChain,
  decodeRolloverEnvelope,
  encodeChain,
  encodeRolloverEnvelope,
  followRollover,
  type RolloverLink,
  signRollover,
  verifyLink,
} from "../src/e2e/rollover.ts";
import { E2EState } from "../src/e2e/state.ts";
import { ALICE, MALLORY, seededRandom } from "./helpers/e2e.ts";

const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ik = (i: Identity) => identityKeyBytes(publicIdentity(i));
const fp = (i: Identity) => identityFingerprint(publicIdentity(i));

function identities(n: number, id = ALICE): Identity[] {
  const random = seededRandom(`rollover ${id}`);
  return Array.from({ length: n }, () => generateIdentity(id, random));
}

describe("rollover links", () => {
  test("a link verifies for its client ID and context only", () => {
    const [k1, k2] = identities(2) as [Identity, Identity];
    const link = signRollover(k1, k2);
    expect(verifyLink(link, ALICE)).toBe(true);
    // Another client ID: the same keys and signature do not verify.
    expect(verifyLink(link, MALLORY)).toBe(false);
    // The same bytes signed in every other context: refused.
    const keys = new Uint8Array([...link.previous, ...link.next]);
    for (const ctx of [CONTEXT_IDENTITY_DH, CONTEXT_SIGNED_PREKEY, CONTEXT_ONE_TIME_PREKEY]) {
      const signature = sign(k1.signing.secret, signedPayload(ctx, ALICE, 0, keys));
      expect(verifyLink({ ...link, signature }, ALICE), ctx).toBe(false);
    }
    const right = sign(k1.signing.secret, signedPayload(CONTEXT_ROLLOVER, ALICE, 0, keys));
    expect(verifyLink({ ...link, signature: right }, ALICE)).toBe(true);
    // Signed by the new key instead of the old: refused.
    const byNew = sign(k2.signing.secret, signedPayload(CONTEXT_ROLLOVER, ALICE, 0, keys));
    expect(verifyLink({ ...link, signature: byNew }, ALICE)).toBe(false);
  });

  test("chains: followed from the recorded key through every link, gaps and forgeries refused", () => {
    const [k1, k2, k3, m] = identities(4) as [Identity, Identity, Identity, Identity];
    const chain = [signRollover(k1, k2), signRollover(k2, k3)];
    expect(decodeChain(encodeChain(chain))).toEqual(chain);
    expect(chainLeadsTo(chain, ALICE, fp(k1), ik(k3))).toBe(true);
    expect(chainLeadsTo(chain, ALICE, fp(k2), ik(k3))).toBe(true);
    expect(chainLeadsTo(chain, ALICE, fp(k1), ik(k2))).toBe(true);
    // Not from a key we never knew, not backwards, not to a key outside the chain.
    expect(chainLeadsTo(chain, ALICE, fp(m), ik(k3))).toBe(false);
    expect(chainLeadsTo(chain, ALICE, fp(k3), ik(k1))).toBe(false);
    expect(chainLeadsTo(chain, ALICE, fp(k1), ik(m))).toBe(false);
    // A gap (the middle link missing) or a link someone else signed: refused.
    expect(chainLeadsTo([chain[1] as RolloverLink], ALICE, fp(k1), ik(k3))).toBe(false);
    const forged = signRollover(m, k3);
    forged.previous = ik(k2);
    expect(chainLeadsTo([chain[0] as RolloverLink, forged], ALICE, fp(k1), ik(k3))).toBe(false);
    // The whole chain under another client ID: refused.
    expect(chainLeadsTo(chain, MALLORY, fp(k1), ik(k3))).toBe(false);
  });

  test("the envelope names the new identity, checked for the sender's ID", () => {
    const [k1, k2] = identities(2) as [Identity, Identity];
    const env = encodeRolloverEnvelope(publicIdentity(k2), [signRollover(k1, k2)]);
    const got = decodeRolloverEnvelope(env, ALICE);
    expect(identityFingerprint(got.identity)).toBe(fp(k2));
    expect(() => decodeRolloverEnvelope(env, MALLORY)).toThrow(
      expect.objectContaining({ code: "BAD_SIGNATURE" }),
    );
    expect(() => decodeRolloverEnvelope(env.subarray(0, env.length - 1), ALICE)).toThrow(
      expect.objectContaining({ code: "MALFORMED" }),
    );
  });

  test("known_peers: a followed rollover keeps verified; without a valid chain nothing changes", () => {
    const [k1, k2, m] = identities(3) as [Identity, Identity, Identity];
    const known = new KnownPeers();
    known.observe(ALICE, "alice", fp(k1), 100);
    known.verify(ALICE, fp(k1));
    // A chain from a key we never knew, or signed by another: ignored.
    expect(followRollover(known, ALICE, publicIdentity(k2), [signRollover(m, k2)], 200)).toBeNull();
    expect(known.get(ALICE)).toMatchObject({ fingerprint: fp(k1), verified: true });
    const moved = followRollover(known, ALICE, publicIdentity(k2), [signRollover(k1, k2)], 200);
    expect(moved).toEqual({ id: ALICE, previous: fp(k1), fingerprint: fp(k2), verified: true });
    expect(known.get(ALICE)).toMatchObject({ fingerprint: fp(k2), verified: true, pending: null });
    // The new key seen again: the same key, nothing to announce.
    expect(known.observe(ALICE, undefined, fp(k2), 300).status).toBe("same");
    // A pending change (the new key was used before the rollover arrived) is settled.
    const k3 = identities(4)[3] as Identity;
    expect(known.observe(ALICE, undefined, fp(k3), 400)).toMatchObject({ blocked: true });
    expect(
      followRollover(known, ALICE, publicIdentity(k3), [signRollover(k2, k3)], 500),
    ).toMatchObject({ verified: true });
    expect(known.get(ALICE)).toMatchObject({ fingerprint: fp(k3), verified: true, pending: null });
  });
});

describe("rotation in the state", () => {
  test("a rotated state keeps the old identity, prekeys and sessions, survives a reload, prunes after the grace period", () => {
    const dir = mkdtempSync(join(tmpdir(), "backbone-e2e-rollover-"));
    made.push(dir);
    let now = 1_000_000;
    const st = E2EState.open(join(dir, "s"), ALICE, { now: () => now });
    const before = fp(st.identity);
    const oldSpk = st.signedPreKeys[0]?.id as number;
    st.transaction(() => st.rotateIdentity());
    st.transaction(() => st.rotateIdentity());
    expect(st.rollovers).toHaveLength(2);
    expect(st.retired).toHaveLength(2);
    expect(fp(st.retired[1]?.identity as Identity)).toBe(before);
    expect(st.retired[1]?.signedPreKeys[0]?.id).toBe(oldSpk);
    // Prekey IDs keep growing across identities: a prekey message names one identity.
    expect(st.signedPreKeys[0]?.id).toBeGreaterThan(oldSpk);
    expect(chainLeadsTo(st.rollovers, ALICE, before, ik(st.identity))).toBe(true);
    st.close();
    const again = E2EState.open(join(dir, "s"), ALICE, { now: () => now });
    expect(again.rollovers).toEqual(st.rollovers);
    expect(again.retired.map((r) => fp(r.identity))).toEqual(st.retired.map((r) => fp(r.identity)));
    expect(again.ownIdentityKeys()).toHaveLength(3);
    now += 31 * 24 * 3600;
    expect(again.transaction(() => again.pruneRetired())).toBe(true);
    expect(again.retired).toEqual([]);
    // The chain is kept: a peer who knew the first key can still follow.
    expect(again.rollovers).toHaveLength(2);
    again.close();
  });
});
