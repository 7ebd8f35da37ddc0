/**
 * End-to-end encrypted rooms at their limits (docs/E2E.md § Rooms), against a real
 * server: more new members than the key directory's fetch burst, a message too large
 * once encrypted, and a verified member whose key changed.
 */
import { describe, expect, test } from "bun:test";
import type { Identity } from "../../src/client/identity.ts";
import { startCluster, until } from "../helpers/cluster.ts";
import { member, room } from "../helpers/e2e-rooms.ts";

describe("E2E rooms with many new members", () => {
  test("more members than the directory's fetch burst: the first message waits for the budget and reaches every one", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    await alice.client.rooms.create("big", { public: true });
    const ids: string[] = [];
    const dirs: { identity: Identity; dir: string }[] = [];
    for (let i = 0; i < 33; i++) {
      const m = await member(c, `m${i}`);
      await m.client.rooms.join("big");
      ids.push(m.id);
      dirs.push({ identity: m.identity, dir: m.dir });
      await m.close(); // keys published; the copy waits in the queue
    }
    const r = await alice.e2e.sendRoom("big", "to all 33");
    expect(r.members.sort()).toEqual([...ids].sort());
    expect(r.skipped).toEqual([]);
    await alice.client.ping();
    expect((await alice.client.serverStatus()).messages_queued).toBe(33);
    // The last member (whose bundle came after the waits) decrypts it.
    const last = dirs[32] as { identity: Identity; dir: string };
    const back = await member(c, last.identity, { dir: last.dir });
    await until(() => back.got.length === 1, 5000, "the last member's copy");
    expect(back.got[0]).toMatchObject({ e2e: true, room: "big" });
    await back.close();
    await alice.close();
  });
});

describe("E2E room message size", () => {
  test("a message that would not fit once encrypted is refused before anything is encrypted or sent", async () => {
    await using c = await startCluster({ max_message_size: 4096 });
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    await room("ops", alice.client, bob.client);
    // 3000 bytes pad to 4096; with the prekey envelope's 229 bytes that is over 4096.
    await expect(alice.e2e.sendRoom("ops", "x".repeat(3000))).rejects.toMatchObject({
      code: "TOO_LARGE",
    });
    expect(alice.sent).toEqual([]);
    const r = await alice.e2e.sendRoom("ops", "y".repeat(2000));
    expect(r.e2e).toBe(true);
    await until(() => bob.got.length === 1, 5000, "the one that fits");
    expect(bob.text()).toEqual(["y".repeat(2000)]);
    await alice.close();
    await bob.close();
  });
});

describe("E2E rooms and changed keys", () => {
  test("a verified member whose key changed stops the room's messages until accepted; then they go to its new key", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bobIdentity = await c.enroll("bob");
    const bob = await member(c, bobIdentity);
    await room("ops", alice.client, bob.client);
    await alice.e2e.sendRoom("ops", "hello");
    await until(() => bob.got.length === 1, 5000, "first");
    alice.e2e.verify(bob.id, bob.e2e.fingerprint);
    await bob.close();
    // bob re-installs: a new E2E identity, published, and a message to the room.
    // A fresh state directory; a re-install takes over the directory's entry explicitly.
    const again = await member(c, bobIdentity, { takeover: true });
    expect(again.e2e.fingerprint).not.toBe(bob.e2e.fingerprint);
    const changed: boolean[] = [];
    alice.e2e.on("keyChanged", ({ blocked }) => changed.push(blocked));
    await again.e2e.sendRoom("ops", "new me");
    await until(() => alice.got.length === 1, 5000, "the new key's message");
    expect(changed).toEqual([true]);
    await expect(alice.e2e.sendRoom("ops", "still you?")).rejects.toMatchObject({
      code: "KEY_CHANGED",
    });
    await again.client.ping();
    expect(again.got).toEqual([]);
    alice.e2e.acceptKey(again.id);
    expect((await alice.e2e.sendRoom("ops", "welcome back")).e2e).toBe(true);
    await until(() => again.got.length === 1, 5000, "after accepting");
    expect(again.text()).toEqual(["welcome back"]);
    await alice.close();
    await again.close();
  });
});
