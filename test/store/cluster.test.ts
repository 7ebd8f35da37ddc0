/**
 * The cluster engine on a real redis-server: nodes as RedisCluster objects in one
 * process, each with its own connections, as separate processes would have.
 */
import { afterEach, describe, expect, test } from "bun:test";
import IORedis from "ioredis";
import { idToBytes } from "../../src/ids.ts";
import { type MailItem, RedisCluster } from "../../src/store/redis/cluster.ts";
import { RedisStore } from "../../src/store/redis/store.ts";
import type { QueueLimits } from "../../src/store/store.ts";
import { startRedis } from "../helpers/redis.ts";

const X = "00000000-0000-4000-8000-0000000000aa";
const Y = "00000000-0000-4000-8000-0000000000bb";
const limits: QueueLimits = { maxMessages: 100, maxBytes: 1 << 20, maxAge: 3600, maxPerSender: 50 };

/** A delivered C2C: byte0 (direct, 0x01) || sender || data. */
function plain(sender: string, text: string): Uint8Array {
  const data = new TextEncoder().encode(text);
  const out = new Uint8Array(17 + data.length);
  out[0] = 0x01;
  out.set(idToBytes(sender), 1);
  out.set(data, 17);
  return out;
}
const textOf = (p: Uint8Array) => new TextDecoder().decode(p.subarray(17));

const open: RedisCluster[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.abandon();
});

async function node(url: string, id: string, leaseMs = 10_000) {
  const mail: MailItem[] = [];
  const events = { retaken: 0 };
  const c = await RedisCluster.join({
    url,
    nodeId: id,
    leaseMs,
    onMail: (m) => mail.push(m),
    onLeaseRetaken: () => {
      events.retaken++;
    },
  });
  open.push(c);
  return { c, mail, events };
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

describe("cluster engine", () => {
  test("direct messages reach the node holding the session, in order; else held", async () => {
    await using redis = await startRedis();
    const a = await node(redis.url, "node-a");
    const b = await node(redis.url, "node-b");
    expect((await a.c.liveNodes()).sort()).toEqual(["node-a", "node-b"]);

    // No session anywhere: held in the inbox, within the bounds.
    const held = await a.c.route(X, plain(Y, "while away"), limits);
    expect(held).toEqual({ delivered: false, held: true });
    const store = await RedisStore.open(redis.url);
    const inbox = await store.peek(X, 10);
    expect(inbox.map((m) => [m.sender, new TextDecoder().decode(m.data)])).toEqual([
      [Y, "while away"],
    ]);

    // A live session on node B: every message goes to B's mailbox, in order.
    expect(await b.c.setSession(X, "s1", { live: true, stored: true })).toBe(1);
    for (let i = 0; i < 200; i++) {
      expect(await a.c.route(X, plain(Y, `m${i}`), limits)).toEqual({
        delivered: true,
        local: false,
        remoteNodes: 1,
      });
    }
    await until(() => b.mail.length === 200, "200 messages on node B");
    expect(b.mail.map((m) => (m.kind === "direct" ? textOf(m.plain) : m.kind))).toEqual(
      Array.from({ length: 200 }, (_, i) => `m${i}`),
    );
    expect(a.mail).toEqual([]);
    // Nothing more was held, and the mailbox is emptied once handled.
    expect(await store.pendingCount()).toBe(1);

    // A session on the routing node itself: the caller delivers, no mailbox write.
    await b.c.setSession(X, "s1", null);
    await a.c.setSession(X, "s2", { live: true, stored: false });
    expect(await a.c.route(X, plain(Y, "here"), limits)).toEqual({
      delivered: true,
      local: true,
      remoteNodes: 0,
    });
    // A session that takes no live messages does not make the client reachable.
    await a.c.setSession(X, "s2", { live: false, stored: false });
    expect(await a.c.route(X, plain(Y, "held again"), limits)).toMatchObject({ held: true });
    expect(await a.c.sessionsOf(X)).toEqual([
      { node: "node-a", session: "s2", live: false, stored: false },
    ]);
    store.close();
  });

  test("a bound refuses a message nobody receives live", async () => {
    await using redis = await startRedis();
    const a = await node(redis.url, "node-a");
    const tight = { ...limits, maxPerSender: 2 };
    const r = [];
    for (let i = 0; i < 3; i++) r.push(await a.c.route(X, plain(Y, `m${i}`), tight));
    expect(r[2]).toEqual({
      delivered: false,
      held: false,
      reason: "you already have 2 messages queued for this recipient",
    });
  });

  test("broadcasts reach every other node once", async () => {
    await using redis = await startRedis();
    const a = await node(redis.url, "node-a");
    const b = await node(redis.url, "node-b");
    const c = await node(redis.url, "node-c");
    expect(await a.c.broadcast(plain(Y, "all"))).toBe(2);
    await until(() => b.mail.length === 1 && c.mail.length === 1, "broadcast on B and C");
    expect(a.mail).toEqual([]);
    expect(b.mail[0]).toMatchObject({ kind: "broadcast" });
  });

  test("a crashed node is reaped: its clients go offline, its unread mail is held", async () => {
    await using redis = await startRedis();
    const a = await node(redis.url, "node-a", 300);
    const b = await node(redis.url, "node-b", 300);
    await b.c.setSession(X, "s1", { live: true, stored: true });
    b.c.abandon(); // kill -9: no goodbye
    // Until its lease runs out, B still counts; the message waits in B's mailbox.
    expect(await a.c.route(X, plain(Y, "into the void?"), limits)).toMatchObject({
      remoteNodes: 1,
    });
    const store = await RedisStore.open(redis.url);
    const deadline = Date.now() + 5_000;
    while ((await store.pendingCount()) === 0 && Date.now() < deadline) await Bun.sleep(50);
    expect(
      (await store.peek(X, 10)).map((m) => [m.sender, new TextDecoder().decode(m.data)]),
    ).toEqual([[Y, "into the void?"]]);
    expect(await a.c.sessionsOf(X)).toEqual([]);
    expect(await a.c.liveNodes()).toEqual(["node-a"]);
    store.close();
  });

  test("mail survives a Redis restart (AOF, fsync always) and the reader resumes", async () => {
    await using redis = await startRedis({ appendonly: "yes", appendfsync: "always" });
    const a = await node(redis.url, "node-a");
    const b = await node(redis.url, "node-b");
    await b.c.setSession(X, "s1", { live: true, stored: true });
    await a.c.route(X, plain(Y, "before"), limits);
    await until(() => b.mail.length === 1, "first message");
    await redis.stop(); // SIGKILL
    await redis.start();
    // Every node resumes by itself; routing goes on without losing a message.
    let sent = 0;
    const end = Date.now() + 10_000;
    while (sent < 50 && Date.now() < end) {
      const ok = await a.c.route(X, plain(Y, `after${sent}`), limits).then(
        () => true,
        () => false,
      );
      if (ok) sent++;
      else await Bun.sleep(50);
    }
    expect(sent).toBe(50);
    await until(() => b.mail.length === 51, "all 50 after the restart", 10_000);
    expect(b.mail.slice(1).map((m) => (m.kind === "direct" ? textOf(m.plain) : ""))).toEqual(
      Array.from({ length: 50 }, (_, i) => `after${i}`),
    );
  });

  test("a lease lost while Redis was away is taken again and the node told", async () => {
    await using redis = await startRedis();
    const a = await node(redis.url, "node-a", 300);
    // Remove A's lease as an expiry during an outage would.
    const raw = new IORedis(redis.url);
    await raw.del("bb:node:node-a");
    await until(() => a.events.retaken === 1, "lease taken again");
    expect(await raw.exists("bb:node:node-a")).toBe(1);
    raw.disconnect();
  });

  test("a session claim names the nodes it replaces; the taker lease is one holder's at a time", async () => {
    await using redis = await startRedis();
    const a = await node(redis.url, "node-a");
    const b = await node(redis.url, "node-b");
    const flags = { live: true, stored: true };
    expect(await a.c.claimSession(X, "t1", flags)).toEqual([]);
    // The later claim of the same key sees the earlier one, not the other way round.
    expect(await b.c.claimSession(X, "t1", flags)).toEqual(["node-a"]);
    expect(await b.c.claimSession(X, "t2", flags)).toEqual([]);
    expect(await a.c.clientsOnline()).toBe(1);

    expect(await a.c.takeStored(X, "node-a/1", 5_000)).toBe(true);
    expect(await b.c.takeStored(X, "node-b/7", 5_000)).toBe(false);
    // Only the holder renews or releases it.
    expect(await b.c.renewStored(X, "node-b/7", 5_000)).toBe(false);
    await b.c.releaseStored(X, "node-b/7");
    expect(await b.c.takeStored(X, "node-b/7", 5_000)).toBe(false);
    expect(await a.c.renewStored(X, "node-a/1", 5_000)).toBe(true);
    await a.c.releaseStored(X, "node-a/1");
    expect(await b.c.takeStored(X, "node-b/7", 5_000)).toBe(true);
  });

  test("ROUTE refuses an unregistered recipient when asked, and keeps a room message's room", async () => {
    await using redis = await startRedis();
    const a = await node(redis.url, "node-a");
    expect(
      await a.c.route(X, plain(Y, "hi"), limits, undefined, { checkRegistered: true }),
    ).toEqual({
      delivered: false,
      held: false,
      reason: "no such client",
      unknown: true,
    });
    // Held with its room: it comes back out of the store as a room message.
    const held = await a.c.route(X, plain(Y, "in ops"), limits, 1_700_000_000, {
      room: "ops",
      holdData: new TextEncoder().encode("in ops"),
    });
    expect(held).toEqual({ delivered: false, held: true });
    const store = await RedisStore.open(redis.url);
    const [m] = await store.peek(X, 10);
    expect({ room: m?.room, data: new TextDecoder().decode(m?.data) }).toEqual({
      room: "ops",
      data: "in ops",
    });
    store.close();
  });
});
