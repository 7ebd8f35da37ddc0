/**
 * Signed key rollover against a real server and SQLite file (docs/E2E.md § Key
 * rollover): a verified peer stays verified across a rollover (and a chain of them),
 * with a quiet notice and no key-change warning; messages in flight to the old key
 * still decrypt; a fetcher follows the chain the directory hands out; a new key
 * without a valid rollover still takes the loud path.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Identity } from "../../src/client/identity.ts";
import type { IncomingMessage } from "../../src/client/types.ts";
import { connectE2E } from "../../src/e2e/connect.ts";
import type { E2EManager } from "../../src/e2e/session-manager.ts";
import { type Cluster, startCluster, until } from "../helpers/cluster.ts";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});
function stateDir(): string {
  const r = mkdtempSync(join(tmpdir(), "backbone-e2e-roll-"));
  roots.push(r);
  return join(r, "state");
}

async function peer(c: Cluster, who: string | Identity, dir = stateDir(), takeover = false) {
  const identity = typeof who === "string" ? await c.enroll(who) : who;
  const { client, e2e } = await connectE2E({
    identity: { ...identity, server: c.address },
    backoff: { initialMs: 20, maxMs: 200 },
    e2e: { stateDir: dir, takeover },
  });
  const got: IncomingMessage[] = [];
  client.on("message", (m) => got.push(m));
  const events: { kind: string; verified?: boolean; blocked?: boolean }[] = [];
  e2e.on("keyChanged", (k) => events.push({ kind: "keyChanged", blocked: k.blocked }));
  e2e.on("keyRolledOver", (k) => events.push({ kind: "rolledOver", verified: k.verified }));
  e2e.on("decryptFailed", () => events.push({ kind: "decryptFailed" }));
  await e2e.keysSynced;
  return {
    id: identity.id,
    identity,
    dir,
    client,
    e2e,
    got,
    events,
    text: () => got.map((m) => new TextDecoder().decode(m.data)),
    async close() {
      await client.close();
      e2e.close();
    },
  };
}

/** Bob verifies alice after one exchange. */
async function verifiedPair(c: Cluster) {
  const alice = await peer(c, "alice");
  const bob = await peer(c, "bob");
  await alice.e2e.send("bob", "hello");
  await until(() => bob.got.length === 1);
  await bob.e2e.send("alice", "hi");
  await until(() => alice.got.length === 1);
  bob.e2e.verify(alice.id, bob.e2e.state.knownPeers.get(alice.id)?.fingerprint as string);
  return { alice, bob };
}

const verifiedOf = (e2e: E2EManager, id: string) => e2e.state.knownPeers.get(id);

describe("signed key rollover", () => {
  test("a verified peer rotates: quiet notice, still verified, messages in flight still decrypt", async () => {
    await using c = await startCluster();
    const { alice, bob } = await verifiedPair(c);
    const old = alice.e2e.fingerprint;
    const { previous, fingerprint } = alice.e2e.rotateIdentity();
    await alice.e2e.keysSynced;
    expect(previous).toBe(old);
    expect(fingerprint).not.toBe(old);
    // bob still writes on his session with alice's old key: it decrypts (retired identity).
    await bob.e2e.send("alice", "in flight to the old key");
    await until(() => alice.got.length === 2);
    expect(alice.text()[1]).toBe("in flight to the old key");
    // alice writes with her new key: bob follows the signed rollover, no warning.
    await alice.e2e.send("bob", "from my new key");
    await until(() => bob.got.length === 2);
    expect(bob.got[1]).toMatchObject({ e2e: true, verified: true });
    expect(bob.events).toEqual([{ kind: "rolledOver", verified: true }]);
    expect(verifiedOf(bob.e2e, alice.id)).toMatchObject({
      fingerprint,
      verified: true,
      pending: null,
    });
    // And bob's replies now reach alice's new key, sending never blocked.
    await bob.e2e.send("alice", "to the new key");
    await until(() => alice.got.length === 3);
    expect(alice.got[2]).toMatchObject({ e2e: true });
    expect(bob.e2e.safetyNumber(alice.id)).not.toBeNull();
    await alice.close();
    await bob.close();
  });

  test("a chain of rollovers, learnt from the directory by a peer that fetches", async () => {
    await using c = await startCluster();
    const { alice, bob } = await verifiedPair(c);
    // Two rollovers while bob is away; bob has lost his sessions (so he fetches).
    alice.e2e.rotateIdentity();
    await alice.e2e.keysSynced;
    const { fingerprint } = alice.e2e.rotateIdentity();
    await alice.e2e.keysSynced;
    bob.e2e.state.transaction(() => bob.e2e.state.peers.delete(alice.id));
    await bob.e2e.send("alice", "found you");
    await until(() => alice.got.length === 2);
    expect(alice.got[1]).toMatchObject({ e2e: true });
    expect(bob.events).toEqual([{ kind: "rolledOver", verified: true }]);
    expect(verifiedOf(bob.e2e, alice.id)).toMatchObject({ fingerprint, verified: true });
    await alice.close();
    await bob.close();
  });

  test("a new key without a rollover signature (a re-install) takes the loud path as before", async () => {
    await using c = await startCluster();
    const { alice, bob } = await verifiedPair(c);
    await alice.close();
    const again = await peer(c, alice.identity, stateDir(), true);
    await again.e2e.send("bob", "new me, unsigned");
    await until(() => bob.got.length === 2);
    expect(bob.got[1]).toMatchObject({ verified: false });
    expect(bob.events).toEqual([{ kind: "keyChanged", blocked: true }]);
    await expect(bob.e2e.send(alice.id, "?")).rejects.toMatchObject({ code: "KEY_CHANGED" });
    await again.close();
    await bob.close();
  });
});
