/**
 * Offline delivery (docs/PROTOCOL.md § Sessions and delivery): NOTICE queued to the
 * sender, delivery at the next login as kind "stored" with queued_at, oldest first and
 * before any live message, and the store bounds (NOTICE rejected, nothing evicted).
 */
import { describe, expect, test } from "bun:test";
import type { IncomingMessage } from "../../src/client/types.ts";
import { C2CType, Format } from "../../src/wire/message.ts";
import { inbox, notices, startCluster, until } from "../helpers/cluster.ts";
import { text } from "../helpers/raw.ts";

describe("offline delivery", () => {
  test("queued while offline, delivered as stored, in order, before live messages", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    const heard = notices(alice);
    const stored = 300; // more than one batch of the server's stored delivery
    const t0 = Math.floor(Date.now() / 1000);
    for (let i = 0; i < stored; i++) alice.send(bobId.id, `s${i}`);
    await alice.ping();
    expect(heard.length).toBe(stored);
    expect(heard.every((n) => n.status === "queued" && n.address === bobId.id)).toBe(true);
    expect((await alice.serverStatus()).messages_queued).toBe(stored);

    const bob = await c.client(bobId);
    const got: IncomingMessage[] = [];
    bob.on("message", (m) => got.push(m));
    // Sent after bob's login, so they are live — and must still come after the stored ones.
    for (let i = 0; i < 50; i++) alice.send(bob.id, `l${i}`);
    await until(() => got.length === stored + 50, 5000, "stored and live messages");
    const texts = got.map((m) => new TextDecoder().decode(m.data));
    expect(texts).toEqual([
      ...Array.from({ length: stored }, (_, i) => `s${i}`),
      ...Array.from({ length: 50 }, (_, i) => `l${i}`),
    ]);
    for (const m of got.slice(0, stored)) {
      expect(m.kind).toBe("stored");
      expect(m.from).toBe(alice.id);
      expect(m.queuedAt).toBeInstanceOf(Date);
      const at = (m.queuedAt as Date).getTime() / 1000;
      expect(at).toBeGreaterThanOrEqual(t0);
      expect(at).toBeLessThanOrEqual(Date.now() / 1000);
    }
    for (const m of got.slice(stored)) {
      expect(m.kind).toBe("direct");
      expect(m.queuedAt).toBeNull();
    }
    expect(heard.length).toBe(stored); // the live ones got no NOTICE
    await until(async () => (await bob.serverStatus()).messages_queued === 0, 3000, "queue empty");
    const status = await bob.serverStatus();
    expect(status.messages_stored).toBe(stored);
  });

  test("stored messages reach a raw client as 0x02 with sender and queued_at", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    alice.send(bobId.id, "first");
    alice.send(bobId.id, "second");
    await alice.ping();
    const bob = await c.raw(bobId);
    for (const want of ["first", "second"]) {
      const m = await bob.nextMessage();
      expect(m.format === Format.C2C && m.type).toBe(C2CType.STORED);
      if (m.format !== Format.C2C) return;
      expect(Buffer.from(m.address).toString("hex")).toBe(alice.id.replaceAll("-", ""));
      expect(Math.abs(m.queuedAt - Date.now() / 1000)).toBeLessThan(60);
      expect(text(m)).toBe(want);
    }
    expect(await bob.heartbeat()).toEqual([]);
  });

  test("several senders: each one's messages stay in order", async () => {
    await using c = await startCluster();
    const senders = await Promise.all(["s1", "s2", "s3"].map((n) => c.client(n)));
    const bobId = await c.enroll("bob");
    for (let i = 0; i < 40; i++) for (const s of senders) s.send(bobId.id, `${s.name}:${i}`);
    await Promise.all(senders.map((s) => s.ping()));
    const bob = await c.client(bobId);
    const got = inbox(bob);
    await until(() => got.length === 120, 5000, "120 stored messages");
    for (const s of senders) {
      expect(got.filter((m) => m.from === s.id).map((m) => m.text)).toEqual(
        Array.from({ length: 40 }, (_, i) => `${s.name}:${i}`),
      );
    }
  });

  test("ping is a barrier: the NOTICE for an earlier message has arrived when it resolves", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    for (let round = 1; round <= 5; round++) {
      const heard = notices(alice);
      alice.send(bobId.id, `round ${round}`);
      await alice.ping();
      expect(heard.map((n) => n.status)).toEqual(["queued"]);
      alice.removeAllListeners("notice");
    }
  });

  test("store bounds: over the per-sender bound NOTICE rejected; nothing already stored is evicted", async () => {
    await using c = await startCluster({ queue_max_per_sender: 3, queue_max_messages: 5 });
    const alice = await c.client("alice");
    const carol = await c.client("carol");
    const bobId = await c.enroll("bob");
    const fromAlice = notices(alice);
    const fromCarol = notices(carol);
    for (let i = 0; i < 4; i++) alice.send(bobId.id, `a${i}`);
    await alice.ping();
    expect(fromAlice.map((n) => n.status)).toEqual(["queued", "queued", "queued", "rejected"]);
    for (let i = 0; i < 3; i++) carol.send(bobId.id, `c${i}`);
    await carol.ping();
    // Per sender 3, per recipient 5: carol's third would be the sixth message.
    expect(fromCarol.map((n) => n.status)).toEqual(["queued", "queued", "rejected"]);
    const bob = await c.client(bobId);
    const got = inbox(bob);
    await until(() => got.length === 5, 3000, "five stored messages");
    await bob.ping();
    expect(got.map((m) => m.text)).toEqual(["a0", "a1", "a2", "c0", "c1"]);
    expect(got.every((m) => m.kind === "stored")).toBe(true);
  });
});
