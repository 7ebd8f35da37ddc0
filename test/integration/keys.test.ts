/**
 * The E2E key directory (docs/PROTOCOL.md § KEYS, control type 0x18) against a real
 * server and SQLite file: publish, fetch with one-time prekeys handed out once (also to
 * concurrent fetchers), rate limits, NOTICE `prekeys_low`, revoke, refused bundles, and
 * clients that know nothing of 0x18.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "../../src/client/client.ts";
import { fetchBundle, syncKeys } from "../../src/e2e/directory.ts";
import {
  encodeBundle,
  generateIdentity,
  generateOneTimePreKeys,
  generateSignedPreKey,
  identityKeyBytes,
  publicIdentity,
} from "../../src/e2e/keys.ts";
import { encodeChain, type RolloverLink, signRollover } from "../../src/e2e/rollover.ts";
import { E2EState } from "../../src/e2e/state.ts";
import { KEY_FETCH_BURST, PREKEYS_LOW } from "../../src/server/keys.ts";
import { ControlType } from "../../src/wire/message.ts";
import { notices, startCluster, until } from "../helpers/cluster.ts";
import { isControl, jsonBody } from "../helpers/raw.ts";

const request = (c: Client) => (r: Record<string, unknown>) => c.keyDirectory(r);

function tempState(id: string): E2EState & { cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), "backbone-keys-"));
  const st = E2EState.open(join(root, "state"), id) as E2EState & { cleanup(): void };
  st.cleanup = () => {
    st.close();
    rmSync(root, { recursive: true, force: true });
  };
  return st;
}

/** A bundle for `signerId` with `opks` one-time prekeys, base64. */
function bundleFor(signerId: string, opks: number, firstOpk = 1000) {
  const identity = generateIdentity(signerId);
  const spk = generateSignedPreKey(identity, 1);
  const keys = generateOneTimePreKeys(identity, firstOpk, opks);
  const bytes = encodeBundle({
    identity: publicIdentity(identity),
    signedPreKey: spk,
    oneTimePreKeys: keys,
  });
  return { identity, b64: Buffer.from(bytes).toString("base64") };
}

describe("key directory", () => {
  test("publish, then fetch a verified bundle; each fetch takes one one-time prekey", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const st = tempState(alice.id);
    try {
      expect(await syncKeys(request(alice), st)).toBe(100);
      // Nothing more to publish when enough are left.
      expect(await syncKeys(request(alice), st)).toBe(100);
      const got = await fetchBundle(request(bob), "alice");
      expect(got?.id).toBe(alice.id);
      expect(got?.name).toBe("alice");
      expect(got?.bundle.oneTimePreKeys.length).toBe(1);
      expect(st.oneTimePreKeys.has(got?.bundle.oneTimePreKeys[0]?.id as number)).toBe(true);
      expect(await alice.keyDirectory({ op: "count" })).toEqual({
        op: "count",
        published: true,
        one_time_prekeys: 99,
        identity: Buffer.from(identityKeyBytes(publicIdentity(st.identity))).toString("base64"),
      });
      // By ID too; and a client without keys is "no keys", an unknown one "unknown".
      expect((await fetchBundle(request(bob), alice.id))?.id).toBe(alice.id);
      expect(await fetchBundle(request(alice), "bob")).toBeNull();
      await expect(fetchBundle(request(alice), "nobody")).rejects.toMatchObject({
        code: "DIRECTORY_UNKNOWN",
      });
    } finally {
      st.cleanup();
    }
  });

  test("concurrent fetchers never get the same one-time prekey, and exhaustion leaves the signed prekey", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const { b64 } = bundleFor(alice.id, 7);
    expect(await alice.keyDirectory({ op: "publish", bundle: b64, replace: true })).toEqual({
      op: "publish",
      one_time_prekeys: 7,
    });
    const fetchers = await Promise.all(["b", "c", "d"].map((n) => c.client(n)));
    const results = await Promise.all(
      fetchers.flatMap((f) => Array.from({ length: 5 }, () => fetchBundle(request(f), alice.id))),
    );
    const ids = results.flatMap((r) => r?.bundle.oneTimePreKeys.map((k) => k.id) ?? []);
    expect(ids.length).toBe(7);
    expect(new Set(ids).size).toBe(7);
    expect(results.filter((r) => r?.bundle.oneTimePreKeys.length === 0).length).toBe(8);
    expect(await c.store.keys.countKeys(alice.id)).toBe(0);
  });

  test(`fetches are rate-limited per requester (burst ${KEY_FETCH_BURST}); others are unaffected`, async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    await alice.keyDirectory({ op: "publish", bundle: bundleFor(alice.id, 0).b64, replace: true });
    const greedy = await c.client("greedy");
    const replies = await Promise.all(
      Array.from({ length: KEY_FETCH_BURST + 5 }, () =>
        greedy.keyDirectory({ op: "fetch", client: "alice" }),
      ),
    );
    const limited = replies.filter((r) => r.error === "rate_limited").length;
    expect(limited).toBeGreaterThanOrEqual(4);
    expect(limited).toBeLessThanOrEqual(5);
    const polite = await c.client("polite");
    expect((await polite.keyDirectory({ op: "fetch", client: "alice" })).bundle).toBeString();
  });

  test("the owner gets NOTICE prekeys_low when its one-time prekeys run low, and refills", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const seen = notices(alice);
    const st = tempState(alice.id);
    try {
      await syncKeys(request(alice), st);
      const bob = await c.client("bob");
      const fetches = 100 - PREKEYS_LOW + 1;
      for (let i = 0; i < fetches; i += 10) {
        await Promise.all(
          Array.from({ length: Math.min(10, fetches - i) }, () => c.store.keys.takeKeys(alice.id)),
        );
      }
      expect(seen).toEqual([]); // store-level takes notify nobody; the server's fetch does
      await fetchBundle(request(bob), "alice");
      await until(() => seen.length === 1, 5000, "NOTICE prekeys_low");
      expect(seen[0]).toMatchObject({
        address: alice.id,
        status: "prekeys_low",
        one_time_prekeys: PREKEYS_LOW - 2,
      });
      expect(await syncKeys(request(alice), st)).toBe(100);
    } finally {
      st.cleanup();
    }
  });

  test("revoke deletes the bundle", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    await alice.keyDirectory({ op: "publish", bundle: bundleFor(alice.id, 3).b64, replace: true });
    expect(await c.store.keys.countKeys(alice.id)).toBe(3);
    await c.server.revoke(alice.id);
    expect(await c.store.keys.countKeys(alice.id)).toBeNull();
    expect(await bob.keyDirectory({ op: "fetch", client: alice.id })).toMatchObject({
      error: "unknown",
    });
  });

  test("refused: a bundle signed for another ID, a one-time prekey ID seen before, another identity without replace", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    // Bob republishing Alice's bundle under his own ID (unknown key-share at the source).
    const alices = bundleFor(alice.id, 2);
    expect(await bob.keyDirectory({ op: "publish", bundle: alices.b64, replace: true })).toEqual({
      op: "publish",
      error: "bad bundle",
    });
    expect(
      await alice.keyDirectory({ op: "publish", bundle: alices.b64, replace: true }),
    ).toMatchObject({ one_time_prekeys: 2 });
    // The same one-time prekey IDs again (append or replace, same identity): stale.
    const again = encodeBundle({
      identity: publicIdentity(alices.identity),
      signedPreKey: generateSignedPreKey(alices.identity, 2),
      oneTimePreKeys: generateOneTimePreKeys(alices.identity, 1001, 1),
    });
    const b64 = Buffer.from(again).toString("base64");
    expect(await alice.keyDirectory({ op: "publish", bundle: b64 })).toMatchObject({
      error: "stale_prekey",
    });
    expect(await alice.keyDirectory({ op: "publish", bundle: b64, replace: true })).toMatchObject({
      error: "stale_prekey",
    });
    // Another identity: only with replace.
    const other = bundleFor(alice.id, 1, 5000);
    expect(await alice.keyDirectory({ op: "publish", bundle: other.b64 })).toMatchObject({
      error: "identity_mismatch",
    });
    expect(
      await alice.keyDirectory({ op: "publish", bundle: other.b64, replace: true }),
    ).toMatchObject({ one_time_prekeys: 1 });
    // Garbage and bad requests get one reply each, in order. This is Alice's sixth
    // publish: over the publish burst (5), so it is refused before it is even parsed.
    const replies = await Promise.all([
      alice.keyDirectory({ op: "publish", bundle: "AAAA" }),
      alice.keyDirectory({ op: "nonsense" }),
      alice.keyDirectory({ op: "fetch" }),
      alice.keyDirectory({ op: "delete" }),
      alice.keyDirectory({ op: "count" }),
    ]);
    expect(replies).toEqual([
      { op: "publish", error: "rate_limited" },
      { error: "bad request" },
      { op: "fetch", error: "bad request" },
      { op: "delete", deleted: true },
      { op: "count", published: false },
    ]);
  });

  test("a client that knows nothing of 0x18 is unaffected: no KEYS or NOTICE unless it asks", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    await alice.keyDirectory({ op: "publish", bundle: bundleFor(alice.id, 1).b64, replace: true });
    const raw = await c.raw("plain");
    // Others fetch and publish around it; it only sees its own traffic.
    await alice.keyDirectory({ op: "fetch", client: "alice" });
    const before = await raw.heartbeat();
    expect(
      before.filter((m) => isControl(m, ControlType.KEYS) || isControl(m, ControlType.NOTICE)),
    ).toEqual([]);
    // Its own KEYS request gets exactly one reply of type 0x18.
    raw.sendControl(ControlType.KEYS, { op: "count" });
    const got = await raw.heartbeat();
    const keys = got.filter((m) => isControl(m, ControlType.KEYS));
    expect(keys.map(jsonBody)).toEqual([{ op: "count", published: false }]);
    // A publish that does not parse: "bad bundle" (Bob is well within his burst).
    const bob = await c.client("bob");
    expect(await bob.keyDirectory({ op: "publish", bundle: "AAAA" })).toEqual({
      op: "publish",
      error: "bad bundle",
    });
  });

  test("a rollover chain: stored with the bundle and handed out with it; a chain that does not lead to it refused", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const old = generateIdentity(alice.id);
    const current = bundleFor(alice.id, 1);
    const chainOf = (links: RolloverLink[]) => Buffer.from(encodeChain(links)).toString("base64");
    const publish = (rollover: string) =>
      alice.keyDirectory({ op: "publish", rollover, bundle: current.b64, replace: true });
    // Signed for another ID, ending at another key, or not a chain: refused.
    const mallory = generateIdentity(bob.id);
    expect(await publish(chainOf([signRollover(mallory, current.identity)]))).toMatchObject({
      error: "bad bundle",
    });
    expect(await publish(chainOf([signRollover(old, generateIdentity(alice.id))]))).toMatchObject({
      error: "bad bundle",
    });
    expect(await publish("AAAA")).toMatchObject({ error: "bad bundle" });
    // A valid one: every fetch carries it, byte for byte.
    const good = chainOf([signRollover(old, current.identity)]);
    expect(await publish(good)).toMatchObject({ one_time_prekeys: 1 });
    const fetched = await bob.keyDirectory({ op: "fetch", client: "alice" });
    expect(fetched.rollover).toBe(good);
    expect((await fetchBundle(request(bob), "alice"))?.rollover).toHaveLength(1);
    // Without one, none is handed out.
    expect((await bob.keyDirectory({ op: "fetch", client: "bob" })).rollover).toBeUndefined();
  });
});
