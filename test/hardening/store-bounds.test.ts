/**
 * The offline store's bounds (docs/PROTOCOL.md § Offline delivery, § What is
 * guaranteed) hold over any sequence of events — also for messages accepted for live
 * delivery whose recipient then went before they were written: stopped as a slow
 * consumer, or its connection cut. Those are stored within the per-sender and
 * per-recipient bounds; what does not fit is reported to a sender still connected
 * (NOTICE `rejected`), and counted (`messages_dropped`) and logged for one that left.
 *
 * The attack (issue 9): flood a recipient that never reads until the server stops
 * it, and repeat — every stop used to store its whole backlog, past every bound.
 */
import { expect, test } from "bun:test";
import type { Client } from "../../src/client/client.ts";
import type { Notice } from "../../src/client/types.ts";
import { idKey, idToBytes } from "../../src/ids.ts";
import type { Connection } from "../../src/server/connection.ts";
import { Format, type Message } from "../../src/wire/message.ts";
import { type Cluster, MemoryLog, notices, startCluster, until } from "../helpers/cluster.ts";
import type { RawSession } from "../helpers/raw.ts";

const PER_SENDER = 20;
const PER_RECIPIENT = 30;
const SETTINGS = {
  max_outbound_bytes: 64 * 1024,
  queue_max_per_sender: PER_SENDER,
  queue_max_messages: PER_RECIPIENT,
};

function connectionOf(c: Cluster, id: string): Connection | undefined {
  return c.server.router.online.get(idKey(idToBytes(id)));
}

/** `tag` (one letter) and an index, padded to `size` bytes. */
function tagged(tag: string, i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(new TextEncoder().encode(`${tag}${i}:`));
  return out;
}

function tagOf(data: Uint8Array): string {
  return String.fromCharCode(data[0] as number);
}

/** What the store holds for `recipient`, per sender. */
async function storedFor(c: Cluster, recipient: string): Promise<Map<string, number>> {
  const held = await c.store.peek(recipient, 100_000);
  const by = new Map<string, number>();
  for (const m of held) by.set(m.sender, (by.get(m.sender) ?? 0) + 1);
  return by;
}

/**
 * Fills the kernel's buffers toward `victim` (which does not read) with 16 KB messages
 * from `sender`, until the server itself holds a backlog for it. Returns how many.
 */
async function fillKernel(c: Cluster, sender: Client, victim: RawSession): Promise<number> {
  const conn = connectionOf(c, victim.id) as Connection;
  let n = 0;
  // Two at a time: half the backlog bound, so the server does not stop it yet.
  while (conn.phase === "open" && (conn.outbox?.pendingBytes ?? 0) === 0 && n < 4000) {
    for (let i = 0; i < 2; i++) sender.send(victim.id, tagged("B", n++, 16_000));
    await sender.ping();
  }
  expect(conn.phase).toBe("open");
  expect(conn.outbox?.pendingBytes ?? 0).toBeGreaterThan(0);
  return n;
}

test("messages left by a recipient stopped as a slow consumer are stored within the bounds; the rest is reported or logged", async () => {
  const log = new MemoryLog();
  await using c = await startCluster(SETTINGS, log);
  const alice = await c.client("alice");
  const carol = await c.client("carol");
  const toAlice: Notice[] = notices(alice);
  const bobId = await c.enroll("bob");

  for (let round = 0; round < 3; round++) {
    const bob = await c.raw(bobId);
    bob.sock.pause(); // never reads: the kernel's buffers fill, then the server's backlog
    const big = await fillKernel(c, alice, bob);
    // Carol's messages wait in the server's backlog for bob; then she leaves.
    let carolSent = 0;
    if (round === 0) {
      for (; carolSent < 25; carolSent++) carol.send(bob.id, tagged("C", carolSent, 100));
      await carol.ping();
      await carol.close();
    }
    // Alice sends small messages until the server stops bob.
    let small = 0;
    const noticesBefore = toAlice.length;
    while (connectionOf(c, bob.id)?.phase === "open" && small < 20_000) {
      for (let i = 0; i < 50; i++) alice.send(bob.id, tagged("A", small++, 100));
      await alice.ping();
    }
    expect(c.server.stats.slowConsumers).toBe(round + 1);
    bob.sock.resume();
    const { reason, before } = await bob.expectStop(10_000);
    expect(reason).toBe("slow consumer");
    await c.server.router.allStored();
    await alice.ping(); // every NOTICE for alice has arrived

    // The bounds hold.
    const stored = await storedFor(c, bobId.id);
    const total = [...stored.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(PER_RECIPIENT);
    for (const n of stored.values()) expect(n).toBeLessThanOrEqual(PER_SENDER);

    if (round === 0) {
      // Every message is accounted for: delivered before the STOP, stored, or refused.
      const got = (tag: string) =>
        before.filter((m: Message) => m.format === Format.C2C && tagOf(m.data) === tag).length;
      const refused = toAlice
        .slice(noticesBefore)
        .filter((n) => n.status === "rejected" && n.address === bobId.id);
      // Refused: left undelivered by bob and not fitting in the store (told so), or sent
      // after bob was gone and not fitting (the ordinary NOTICE rejected).
      const undelivered = refused.filter((n) => n.reason.includes("connection ended before"));
      expect(undelivered.length).toBeGreaterThan(0);
      const aliceStored = stored.get(alice.id) ?? 0;
      expect(got("B") + got("A") + aliceStored + refused.length).toBe(big + small);
      // Carol left: what of hers did not fit is counted and logged, not lost silently.
      const carolDropped = carolSent - got("C") - (stored.get(carol.id) ?? 0);
      expect(carolDropped).toBeGreaterThan(0);
      expect(c.server.stats.dropped).toBe(undelivered.length + carolDropped);
      const lines = log.find("undelivered messages dropped");
      const logged = lines.reduce((a, e) => a + Number(e.fields.count), 0);
      const untold = lines.reduce(
        (a, e) => a + Number(e.fields.count) - Number(e.fields.senders_told),
        0,
      );
      expect(logged).toBe(c.server.stats.dropped);
      expect(untold).toBe(carolDropped);
      console.log(
        `round 0: alice sent ${big + small} (delivered ${got("B") + got("A")}, stored ${aliceStored}, refused with NOTICE ${refused.length}, of them left undelivered ${undelivered.length}); carol sent ${carolSent} (delivered ${got("C")}, stored ${stored.get(carol.id) ?? 0}, dropped and logged ${carolDropped})`,
      );
    }
    await until(() => c.server.connectionCount === 1, 5000, "bob's connection to close");
  }
  const status = await alice.serverStatus();
  expect(status.messages_dropped).toBe(c.server.stats.dropped);
  expect(status.messages_queued).toBeLessThanOrEqual(PER_RECIPIENT);
}, 60_000);

test("messages left by a recipient whose connection is cut are stored within the bounds", async () => {
  await using c = await startCluster(SETTINGS);
  const alice = await c.client("alice");
  const toAlice = notices(alice);
  const bob = await c.raw("bob");
  bob.sock.pause();
  await fillKernel(c, alice, bob);
  // Well under the backlog bound (no STOP), well over the store's bounds.
  for (let i = 0; i < 200; i++) alice.send(bob.id, tagged("A", i, 100));
  await alice.ping();
  expect(connectionOf(c, bob.id)?.phase).toBe("open");
  bob.sock.destroy();
  await until(() => c.server.router.online.size === 1, 5000, "bob's connection to end");
  await c.server.router.allStored();
  await alice.ping();
  const stored = await storedFor(c, bob.id);
  expect(stored.get(alice.id) ?? 0).toBeLessThanOrEqual(PER_SENDER);
  const refused = toAlice.filter((n) => n.status === "rejected").length;
  expect(refused).toBeGreaterThanOrEqual(200 - PER_SENDER);
  expect(c.server.stats.dropped).toBe(refused);
});
