/**
 * The E2E layer in the client library against a real server and SQLite file: messages
 * between clients with keys are encrypted and marked, the server's database never
 * holds the plaintext of a stored E2E message, plaintext is never shown as encrypted,
 * and trust rules hold (a verified peer's changed key blocks sending).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
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
  const r = mkdtempSync(join(tmpdir(), "backbone-e2e-int-"));
  roots.push(r);
  return join(r, "state");
}

interface Peer {
  id: string;
  client: Awaited<ReturnType<typeof connectE2E>>["client"];
  e2e: E2EManager;
  got: IncomingMessage[];
  text(): string[];
  close(): Promise<void>;
}

async function peer(
  c: Cluster,
  who: string | Identity,
  dir = stateDir(),
  takeover = false,
): Promise<Peer & { dir: string; identity: Identity }> {
  const identity = typeof who === "string" ? await c.enroll(who) : who;
  const { client, e2e } = await connectE2E({
    identity: { ...identity, server: c.address },
    backoff: { initialMs: 20, maxMs: 200 },
    e2e: { stateDir: dir, takeover },
  });
  const got: IncomingMessage[] = [];
  client.on("message", (m) => got.push(m));
  await e2e.keysSynced;
  return {
    id: identity.id,
    identity,
    dir,
    client,
    e2e,
    got,
    text: () => got.map((m) => new TextDecoder().decode(m.data)),
    async close() {
      await client.close();
      e2e.close();
    },
  };
}

describe("E2E in the client library", () => {
  test("direct messages between clients with keys are encrypted both ways and marked", async () => {
    await using c = await startCluster();
    const alice = await peer(c, "alice");
    const bob = await peer(c, "bob");
    expect(await alice.e2e.send("bob", "hello bob")).toEqual({ to: bob.id, e2e: true });
    await until(() => bob.got.length === 1);
    expect(bob.got[0]).toMatchObject({
      from: alice.id,
      e2e: true,
      verified: false,
      kind: "direct",
    });
    expect(bob.text()).toEqual(["hello bob"]);
    await bob.e2e.send(alice.id, "hi alice");
    await until(() => alice.got.length === 1);
    expect(alice.got[0]).toMatchObject({ e2e: true, verified: false });
    expect(alice.text()).toEqual(["hi alice"]);
    // Both sides compute the same safety number.
    expect(alice.e2e.safetyNumber(bob.id)).toMatch(/^\d{60}$/);
    expect(alice.e2e.safetyNumber(bob.id)).toBe(bob.e2e.safetyNumber(alice.id) as string);
    await alice.close();
    await bob.close();
  });

  test("stored for an offline client: the server's database holds no byte of the plaintext", async () => {
    await using c = await startCluster();
    const bobIdentity = await c.enroll("bob");
    const bob = await peer(c, bobIdentity);
    const bobDir = bob.dir;
    await bob.close(); // keys published; now offline
    const alice = await peer(c, "alice");
    const secrets = Array.from({ length: 40 }, (_, i) => `TOPSECRET-${i}-${"pqz".repeat(i % 5)}`);
    for (const s of secrets) await alice.e2e.send("bob", s);
    await alice.client.ping();
    expect((await alice.client.serverStatus()).messages_queued).toBe(40);
    await c.server.router.allStored();
    const files = ["backbone.db", "backbone.db-wal"].map((f) => join(c.dir, f)).filter(existsSync);
    const haystack = Buffer.concat(files.map((f) => readFileSync(f)));
    expect(haystack.length).toBeGreaterThan(0);
    for (const s of secrets) {
      // No 8-byte window of any secret appears (each secret is ≥ 12 bytes).
      for (let i = 0; i + 8 <= s.length; i += 4)
        expect(haystack.includes(Buffer.from(s.slice(i, i + 8)))).toBe(false);
    }
    // The positive control: a plaintext message is there in clear.
    alice.client.send(bob.id, "PLAINCONTROL-1234");
    await alice.client.ping();
    await c.server.router.allStored();
    const after = Buffer.concat(files.filter(existsSync).map((f) => readFileSync(f)));
    expect(after.includes(Buffer.from("PLAINCONTROL-1234"))).toBe(true);
    // Bob comes back: every message once, in order, marked.
    const back = await peer(c, bobIdentity, bobDir);
    await until(() => back.got.length === 41, 10000, "stored messages");
    expect(back.text()).toEqual([...secrets, "PLAINCONTROL-1234"]);
    expect(back.got.slice(0, 40).every((m) => m.e2e === true && m.kind === "stored")).toBe(true);
    expect(back.got[40]).toMatchObject({ e2e: false, verified: false });
    await alice.close();
    await back.close();
  });

  test("plaintext is never shown as encrypted: a peer without keys, and a downgrade by a peer with keys", async () => {
    await using c = await startCluster();
    const alice = await peer(c, "alice");
    const bob = await peer(c, "bob");
    const plain = await c.client("carol"); // no E2E layer at all
    const warnings: string[] = [];
    bob.e2e.on("plaintext", (w) => warnings.push(`${w.direction}:${w.id}`));
    plain.send(bob.id, "from carol");
    await until(() => bob.got.length === 1);
    expect(bob.got[0]).toMatchObject({ e2e: false, verified: false });
    expect(warnings).toEqual([]); // carol never had keys
    // Bob sends to carol: she has no keys, so plaintext with a warning.
    const carolGot: string[] = [];
    plain.on("message", (m) => carolGot.push(new TextDecoder().decode(m.data)));
    expect(await bob.e2e.send("carol", "to carol")).toEqual({ to: plain.id, e2e: false });
    await expect(bob.e2e.send("carol", "x", { requireE2E: true })).rejects.toMatchObject({
      code: "NO_KEYS",
    });
    await until(() => carolGot.length === 1);
    expect(carolGot).toEqual(["to carol"]);
    // Alice (known to bob as an E2E peer) sends plaintext through the bare client.
    await alice.e2e.send("bob", "encrypted first");
    alice.client.send(bob.id, "downgraded");
    await until(() => bob.got.length === 3);
    expect(bob.got.slice(1).map((m) => [new TextDecoder().decode(m.data), m.e2e])).toEqual([
      ["encrypted first", true],
      ["downgraded", false],
    ]);
    expect(warnings).toEqual([`out:${plain.id}`, `in:${alice.id}`]);
    // A broadcast is never E2E: shown as it is, e2e false, no downgrade warning.
    alice.client.broadcast("to everyone");
    await until(() => bob.got.length === 4);
    expect(bob.got[3]).toMatchObject({ kind: "broadcast", e2e: false });
    expect(warnings.length).toBe(2);
    await alice.close();
    await bob.close();
  });

  test("a verified peer whose key changes: announced, marked unverified, sending refused until accepted", async () => {
    await using c = await startCluster();
    const aliceIdentity = await c.enroll("alice");
    const alice = await peer(c, aliceIdentity);
    const bob = await peer(c, "bob");
    await alice.e2e.send("bob", "first");
    await until(() => bob.got.length === 1);
    const fp = bob.e2e.state.knownPeers.get(alice.id)?.fingerprint as string;
    bob.e2e.verify(alice.id, fp);
    await alice.e2e.send("bob", "verified now");
    await until(() => bob.got.length === 2);
    expect(bob.got[1]).toMatchObject({ e2e: true, verified: true });
    // Alice re-installs: a new state directory, a new identity.
    await alice.close();
    const changes: { blocked: boolean }[] = [];
    bob.e2e.on("keyChanged", (k) => changes.push(k));
    const alice2 = await peer(c, aliceIdentity, stateDir(), true);
    await alice2.e2e.send("bob", "new me");
    await until(() => bob.got.length === 3);
    expect(bob.got[2]).toMatchObject({ e2e: true, verified: false });
    expect(changes).toMatchObject([{ blocked: true }]);
    await expect(bob.e2e.send(alice.id, "hello?")).rejects.toMatchObject({ code: "KEY_CHANGED" });
    bob.e2e.acceptKey(alice.id);
    await bob.e2e.send(alice.id, "accepted");
    await until(() => alice2.got.length === 1);
    expect(alice2.got[0]).toMatchObject({ e2e: true });
    await alice2.close();
    await bob.close();
  });

  test("a peer that re-installed while messages were queued for it: asked again, re-sent on a new session, in order", async () => {
    await using c = await startCluster();
    const bobIdentity = await c.enroll("bob");
    const bob = await peer(c, bobIdentity);
    await bob.close();
    const alice = await peer(c, "alice");
    const resent: { id: string; count: number; refused: string | null }[] = [];
    const changed: { blocked: boolean }[] = [];
    alice.e2e.on("resent", (r) => resent.push(r));
    alice.e2e.on("keyChanged", (k) => changed.push(k));
    await alice.e2e.send("bob", "to the old bob 1");
    await alice.e2e.send("bob", "to the old bob 2");
    // bob re-installs: a fresh state directory, new keys (taking over his own identity).
    const failed: { from: string; code: string; retry: boolean }[] = [];
    const fresh = stateDir();
    const { client, e2e } = await connectE2E({
      identity: { ...bobIdentity, server: c.address },
      e2e: { stateDir: fresh, takeover: true },
    });
    e2e.on("decryptFailed", (f) => failed.push(f));
    const got: IncomingMessage[] = [];
    client.on("message", (m) => got.push(m));
    const text = () => got.map((m) => new TextDecoder().decode(m.data));
    await e2e.keysSynced;
    await until(() => failed.length === 2, 5000, "two undecryptable messages reported");
    expect(failed.map((f) => [f.from, f.retry])).toEqual([
      [alice.id, true],
      [alice.id, true],
    ]);
    expect((await client.serverStatus()).messages_queued).toBe(0); // not redelivered forever
    // bob asked alice again; alice fetched his new bundle (loud: his key changed) and re-sent.
    await until(() => got.length === 2, 5000, "both messages re-sent");
    expect(text()).toEqual(["to the old bob 1", "to the old bob 2"]);
    expect(got.every((m) => m.e2e === true)).toBe(true);
    expect(resent).toEqual([{ id: bobIdentity.id, count: 2, refused: null }]);
    expect(changed).toMatchObject([{ blocked: false }]);
    // Each once: the log no longer holds them, a replayed request re-sends nothing.
    expect(alice.e2e.state.sent.filter((e) => e.peer === bobIdentity.id)).toEqual([]);
    // And the new session carries on both ways.
    await alice.e2e.send("bob", "hello new bob");
    await until(() => got.length === 3);
    await e2e.send(alice.id, "hi alice");
    await until(() => alice.got.length === 1);
    expect(alice.text()).toEqual(["hi alice"]);
    expect(failed).toHaveLength(2);
    await client.close();
    e2e.close();
    await alice.close();
  });

  test("a message sent pinned (--peer-key) is not re-sent to a re-installed peer's unverified key; the others are", async () => {
    await using c = await startCluster();
    const bobIdentity = await c.enroll("bob");
    const bob = await peer(c, bobIdentity);
    const alice = await peer(c, "alice");
    await alice.e2e.send("bob", "first");
    await until(() => bob.got.length === 1);
    const pin = alice.e2e.state.knownPeers.get(bob.id)?.fingerprint as string;
    await bob.close();
    await alice.e2e.send("bob", "pinned", { peerKey: pin });
    await alice.e2e.send("bob", "ordinary");
    const resent: { count: number; refused: string | null }[] = [];
    alice.e2e.on("resent", (r) => resent.push(r));
    const bob2 = await peer(c, bobIdentity, stateDir(), true);
    await until(() => resent.length === 1, 5000, "the re-send decision");
    expect(resent[0]?.count).toBe(1);
    expect(resent[0]?.refused).toMatch(/1 sent in strict mode \(or pinned\) not sent again/);
    await until(() => bob2.got.length === 1);
    expect(bob2.text()).toEqual(["ordinary"]);
    await bob2.close();
    await alice.close();
  });

  test("a verified peer that re-installed: its key change blocks the re-send until accepted", async () => {
    await using c = await startCluster();
    const bobIdentity = await c.enroll("bob");
    const bob = await peer(c, bobIdentity);
    const alice = await peer(c, "alice");
    await alice.e2e.send("bob", "first");
    await until(() => bob.got.length === 1);
    alice.e2e.verify(bob.id, alice.e2e.state.knownPeers.get(bob.id)?.fingerprint as string);
    await bob.close();
    await alice.e2e.send("bob", "queued for the old bob");
    const resent: { count: number; refused: string | null }[] = [];
    alice.e2e.on("resent", (r) => resent.push(r));
    const bob2 = await peer(c, bobIdentity, stateDir(), true);
    await until(() => resent.length === 1, 5000, "the re-send decision");
    expect(resent[0]?.count).toBe(0);
    expect(resent[0]?.refused).toMatch(/identity key of verified peer .* changed/);
    expect(bob2.got).toEqual([]);
    await bob2.close();
    await alice.close();
  });

  test("the client's incoming hook: a throw stops acknowledging, so stored messages come again", async () => {
    await using c = await startCluster();
    const bobIdentity = await c.enroll("bob");
    const alice = await c.client("alice");
    for (const t of ["one", "two", "three"]) alice.send(bobIdentity.id, t);
    await alice.ping();
    const errors: Error[] = [];
    const seen: string[] = [];
    const failing = await c.client(bobIdentity, {
      incoming: (m) => {
        const text = new TextDecoder().decode(m.data);
        if (text === "two") throw new Error("disk full");
        seen.push(text);
        return m;
      },
    });
    failing.on("incomingError", ({ error }) => errors.push(error));
    await until(() => seen.length === 2 && errors.length === 1, 5000, "the batch");
    expect(seen).toEqual(["one", "three"]);
    await failing.ping();
    await failing.close();
    // "one" was handled and acknowledged; nothing from the failure on was.
    const got: string[] = [];
    const ok = await c.client(bobIdentity, {
      incoming: (m) => {
        got.push(new TextDecoder().decode(m.data));
        return m;
      },
    });
    await until(() => got.length === 2, 5000, "redelivery");
    expect(got).toEqual(["two", "three"]);
    await ok.ping();
    await until(
      async () => (await alice.serverStatus()).messages_queued === 0,
      5000,
      "acknowledged",
    );
  });

  test("a name that now maps to another ID: announced; refused by name when the old one was verified", async () => {
    await using c = await startCluster();
    const alice = await peer(c, "alice");
    const bob = await peer(c, "bob");
    const carol = await peer(c, "carol");
    await alice.e2e.send("bob", "hi bob"); // records bob under his name
    await until(() => bob.got.length === 1);
    // Seen from alice: "bob" used to be bob's ID; now the server says "bob" is carol's.
    // (A server cannot re-enroll a taken name; a lying server can answer anything. We
    // stand in for it by renaming carol in the registry.)
    const changes: { name: string; previous: string; id: string; blocked: boolean }[] = [];
    alice.e2e.on("nameChanged", (n) => changes.push(n));
    const db = new (await import("bun:sqlite")).Database(join(c.dir, "backbone.db"));
    db.run("UPDATE clients SET name = 'bob-old', name_key = 'bob-old' WHERE id = ?", [bob.id]);
    db.run("UPDATE clients SET name = 'bob', name_key = 'bob' WHERE id = ?", [carol.id]);
    db.close();
    expect(await alice.e2e.send("bob", "who are you?")).toEqual({ to: carol.id, e2e: true });
    expect(changes).toEqual([{ name: "bob", previous: bob.id, id: carol.id, blocked: false }]);
    // Had alice verified the old bob, writing to "bob" would be refused.
    alice.e2e.verify(bob.id, alice.e2e.state.knownPeers.get(bob.id)?.fingerprint as string);
    await expect(alice.e2e.send("bob", "again")).rejects.toMatchObject({ code: "NAME_CHANGED" });
    expect(changes.at(-1)).toMatchObject({ blocked: true });
    // By ID, each is reachable.
    await alice.e2e.send(bob.id, "by id");
    await until(() => bob.got.length === 2 && carol.got.length === 1);
    expect(carol.text()).toEqual(["who are you?"]);
    await alice.close();
    await bob.close();
    await carol.close();
  });
});
