/**
 * One contract, every backend: the embedded SQLite store and the Redis store (a real
 * redis-server) must behave the same for everything the server relies on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreError } from "../../src/errors.ts";
import { RedisStore, redactUrl } from "../../src/store/redis/store.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import type { QueueLimits, Store } from "../../src/store/store.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { roomContract } from "../helpers/room-contract.ts";

const limits: QueueLimits = { maxMessages: 5, maxBytes: 100, maxAge: 3600, maxPerSender: 3 };
const A = "00000000-0000-4000-8000-00000000000a";
const B = "00000000-0000-4000-8000-00000000000b";
const C = "00000000-0000-4000-8000-00000000000c";
const key = (n: number) => new Uint8Array(32).fill(n);
const bytes = (...v: number[]) => new Uint8Array(v);

let redis: RedisServer;
let dir: string;
let n = 0;
beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "backbone-contract-"));
});
afterAll(async () => {
  await redis[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

/** Each backend opens a fresh store, and a second handle on the same one (as another process would). */
const backends: [string, () => Promise<[Store, () => Promise<Store>]>][] = [
  [
    "sqlite",
    async () => {
      const path = join(dir, `s${n++}.db`);
      return [new SqliteStore(path), async () => new SqliteStore(path)];
    },
  ],
  [
    "redis",
    async () => {
      const prefix = `t${n++}:`;
      const again = () => RedisStore.open(redis.url, { prefix });
      return [await again(), again];
    },
  ],
];

for (const [name, openPair] of backends) {
  const open = async () => (await openPair())[0];
  describe(`store contract: ${name}`, () => {
    test("registry: add, find by ID and by folded name, unique names and IDs, revoke", async () => {
      const [s, other] = await openPair();
      const v0 = await s.version();
      const writer = await other();
      const a = await writer.addClient({
        id: A,
        name: "Alice",
        publicKey: key(1),
        fingerprint: "SHA256:a",
      });
      expect(a.online).toBe(false);
      expect(await s.version()).not.toBe(v0); // another handle's write is seen
      writer.close();
      expect((await s.findClient("ALICE"))?.id).toBe(A);
      expect((await s.findClient(A.toUpperCase()))?.name).toBe("Alice");
      expect((await s.getClient(A))?.publicKey).toEqual(key(1));
      const dupName = s.addClient({ id: B, name: "alice", publicKey: key(2), fingerprint: "x" });
      expect(dupName).rejects.toMatchObject({ code: "NAME_TAKEN" });
      await expect(dupName).rejects.toBeInstanceOf(StoreError);
      await expect(
        s.addClient({ id: A, name: "other", publicKey: key(2), fingerprint: "x" }),
      ).rejects.toMatchObject({ code: "ID_TAKEN" });
      await s.addClient({ id: B, name: "bob", publicKey: key(2), fingerprint: "SHA256:b" });
      expect((await s.listClients()).map((c) => c.name).sort()).toEqual(["Alice", "bob"]);
      expect(await s.countClients()).toBe(2);
      expect(await s.revokeClient(B, 100)).toBe(true);
      expect(await s.revokeClient(B, 101)).toBe(false);
      expect(await s.revokeClient(C, 101)).toBe(false);
      expect((await s.getClient(B))?.revokedAt).toBe(100);
      expect(await s.countClients()).toBe(1);
      expect(await s.getClient(C)).toBeNull();
      s.close();
    });

    test("import keeps a record's times; held recipients are listed", async () => {
      const s = await open();
      const record = {
        id: A,
        name: "a",
        publicKey: key(1),
        fingerprint: "f",
        createdAt: 10,
        revokedAt: 20,
        lastSeen: 15,
        online: false,
      };
      await s.importClient(record);
      expect(await s.getClient(A)).toEqual(record);
      await expect(s.importClient({ ...record, id: B })).rejects.toMatchObject({
        code: "NAME_TAKEN",
      });
      expect(await s.heldRecipients()).toEqual([]);
      await s.enqueue(B, [{ sender: A, at: 1, data: bytes(1) }], limits);
      await s.enqueue(C, [{ sender: A, at: 1, data: bytes(1) }], limits);
      expect((await s.heldRecipients()).sort()).toEqual([B, C]);
      await s.remove(B, Number.MAX_SAFE_INTEGER);
      expect(await s.heldRecipients()).toEqual([C]);
      s.close();
    });

    test("revocation serial, dropping a revoked sender's messages, node leases", async () => {
      const s = await open();
      expect(await s.revocationSerial()).toBe(0);
      await s.addClient({ id: A, name: "a", publicKey: key(1), fingerprint: "f" });
      await s.addClient({ id: B, name: "b", publicKey: key(2), fingerprint: "g" });
      await s.revokeClient(A, 5);
      await s.revokeClient(A, 6); // already revoked: no new serial
      expect(await s.revocationSerial()).toBe(1);
      await s.enqueue(
        B,
        [1, 2].map((at) => ({ sender: A, at, data: bytes(at) })),
        limits,
      );
      await s.enqueue(B, [{ sender: C, at: 3, data: bytes(3) }], limits);
      await s.enqueue(C, [{ sender: A, at: 4, data: bytes(4) }], limits);
      expect(await s.dropFromSender(A.toUpperCase())).toBe(3);
      expect((await s.peek(B, 10)).map((m) => m.sender)).toEqual([C]);
      expect(await s.pendingCount()).toBe(1);
      // The per-sender bound counts only what is left.
      const again = await s.enqueue(
        B,
        [1, 2, 3, 4].map((at) => ({ sender: A, at, data: bytes(at) })),
        limits,
      );
      expect(again.map((r) => r.ok)).toEqual([true, true, true, false]);

      const lease = {
        node: "n1",
        host: "h",
        pid: 7,
        renewedAt: 1000,
        until: 6000,
        appliedSerial: 1,
      };
      await s.renewLease(lease);
      await s.renewLease({ ...lease, renewedAt: 2000, until: 7000 });
      await s.renewLease({ ...lease, node: "n2" });
      const leases = (await s.leases()).sort((x, y) => x.node.localeCompare(y.node));
      expect(leases).toEqual([
        { ...lease, renewedAt: 2000, until: 7000 },
        { ...lease, node: "n2" },
      ]);
      s.close();
    });

    test("E2E key directory: publish, one-time prekeys handed out once, the rules", async () => {
      const s = await open();
      const k = s.keys;
      if (!k) throw new Error("no key directory");
      const id1 = key(7);
      const otk = (n: number) => ({ id: n, entry: new Uint8Array(100).fill(n) });
      expect(await k.countKeys(A)).toBeNull();
      expect(await k.takeKeys(A)).toBeNull();
      expect(
        await k.publishKeys(
          A,
          { identity: id1, head: key(8), oneTime: [otk(1), otk(2)] },
          false,
          3,
        ),
      ).toEqual({ ok: true, oneTime: 2 });
      // Added to, under the same identity; old IDs never come back; a bound.
      expect(
        await k.publishKeys(A, { identity: id1, head: key(9), oneTime: [otk(2)] }, false, 3),
      ).toEqual({ ok: false, error: "stale_prekey" });
      expect(
        await k.publishKeys(A, { identity: key(5), head: key(9), oneTime: [] }, false, 3),
      ).toEqual({ ok: false, error: "identity_mismatch" });
      expect(
        await k.publishKeys(
          A,
          { identity: id1, head: key(9), oneTime: [otk(3), otk(4)] },
          false,
          3,
        ),
      ).toEqual({ ok: false, error: "too_many" });
      expect(
        await k.publishKeys(A, { identity: id1, head: key(9), oneTime: [otk(3)] }, false, 3),
      ).toEqual({ ok: true, oneTime: 3 });
      // Handed out lowest first, each once, even to concurrent takers.
      const taken = await Promise.all([k.takeKeys(A), k.takeKeys(A), k.takeKeys(A), k.takeKeys(A)]);
      expect(taken.map((t) => t?.oneTime?.[0] ?? null).sort()).toEqual([1, 2, 3, null].sort());
      expect(taken[0]?.head).toEqual(key(9));
      expect(await k.countKeys(A)).toBe(0);
      // Exported and imported whole (migrate), the prekey floor with it.
      await k.publishKeys(A, { identity: id1, head: key(9), oneTime: [otk(5), otk(6)] }, false, 3);
      const exported = await k.exportKeys(A);
      expect(exported).toMatchObject({ identity: id1, head: key(9), maxPrekeyId: 6 });
      expect(exported?.oneTime.map((o) => o.id)).toEqual([5, 6]);
      await k.importKeys(B, exported as NonNullable<typeof exported>);
      expect(await k.exportKeys(B)).toEqual(exported);
      expect(
        await k.publishKeys(B, { identity: id1, head: key(9), oneTime: [otk(6)] }, false, 9),
      ).toEqual({
        ok: false,
        error: "stale_prekey",
      });
      expect(await k.exportKeys(C)).toBeNull();
      // Replaced wholesale by a new identity; then deleted.
      expect(
        await k.publishKeys(A, { identity: key(6), head: key(8), oneTime: [otk(1)] }, true, 3),
      ).toEqual({ ok: true, oneTime: 1 });
      // The identity held (KEYS count: a second device tells its own from another's).
      expect(await k.keyIdentity(A)).toEqual(key(6));
      expect(await k.keyIdentity(C)).toBeNull();
      expect(await k.deleteKeys(A)).toBe(true);
      expect(await k.keyIdentity(A)).toBeNull();
      expect(await k.deleteKeys(A)).toBe(false);
      expect(await k.countKeys(A)).toBeNull();
      s.close();
    });

    test("presence: recorded for known clients only, reset marks all offline", async () => {
      const s = await open();
      await s.addClient({ id: A, name: "a", publicKey: key(1), fingerprint: "f" });
      await s.setPresence([
        { id: A, online: true, at: 50 },
        { id: C, online: true, at: 50 },
      ]);
      expect(await s.getClient(A)).toMatchObject({ online: true, lastSeen: 50 });
      expect(await s.getClient(C)).toBeNull();
      await s.resetPresence();
      expect(await s.getClient(A)).toMatchObject({ online: false, lastSeen: 50 });
      s.close();
    });

    test("queue: bounds checked one by one, nothing evicted, binary data intact", async () => {
      const s = await open();
      const all = new Uint8Array(256).map((_, i) => i);
      const r = await s.enqueue(
        A,
        [
          { sender: B, at: 1, data: all.subarray(0, 40) },
          { sender: B, at: 2, data: all.subarray(128, 168) },
          { sender: B, at: 3, data: bytes(1) },
          { sender: B, at: 4, data: bytes(2) }, // fourth from B: per-sender bound
          { sender: C, at: 5, data: new Uint8Array(30) }, // 81 + 30 > 100: byte bound
          { sender: C, at: 6, data: bytes(3) },
        ],
        limits,
      );
      expect(r.map((x) => x.ok)).toEqual([true, true, true, false, false, true]);
      expect(r[3]).toMatchObject({ reason: expect.stringContaining("3 messages queued") });
      expect(r[4]).toMatchObject({ reason: expect.stringContaining("100 bytes") });
      const more = await s.enqueue(
        A,
        [
          { sender: C, at: 7, data: bytes(4) },
          { sender: C, at: 8, data: bytes(5) },
        ],
        limits,
      );
      expect(more.map((x) => x.ok)).toEqual([true, false]); // 5 messages: count bound
      expect(await s.pendingCount()).toBe(5);
      const held = await s.peek(A, 10);
      expect(held.map((m) => m.queuedAt)).toEqual([1, 2, 3, 6, 7]);
      expect(held[1]?.data).toEqual(all.subarray(128, 168));
      for (let i = 1; i < held.length; i++) {
        expect(held[i]?.seq ?? 0).toBeGreaterThan(held[i - 1]?.seq ?? 0);
      }
      expect((await s.peek(A, 2, held[1]?.seq)).map((m) => m.queuedAt)).toEqual([3, 6]);
      expect(await s.peek(B, 10)).toEqual([]);
      s.close();
    });

    test("queue: remove through a sequence frees the bounds; expire by age", async () => {
      const s = await open();
      const msgs = [1, 2, 3].map((at) => ({ sender: B, at, data: bytes(at) }));
      await s.enqueue(A, msgs, limits);
      const held = await s.peek(A, 10);
      await s.remove(A, held[1]?.seq ?? 0);
      expect((await s.peek(A, 10)).map((m) => m.queuedAt)).toEqual([3]);
      expect(await s.pendingCount()).toBe(1);
      // Two of B's three slots are free again.
      const again = await s.enqueue(
        A,
        [4, 5, 6].map((at) => ({ sender: B, at, data: bytes(at) })),
        limits,
      );
      expect(again.map((x) => x.ok)).toEqual([true, true, false]);
      await s.enqueue(C, [{ sender: A, at: 2, data: bytes(9) }], limits);
      expect(await s.expire(4)).toBe(2); // at 3 for A, at 2 for C
      expect((await s.peek(A, 10)).map((m) => m.queuedAt)).toEqual([4, 5]);
      expect(await s.peek(C, 10)).toEqual([]);
      expect(await s.pendingCount()).toBe(2);
      await s.remove(A, Number.MAX_SAFE_INTEGER);
      expect(await s.pendingCount()).toBe(0);
      expect(await s.check()).toEqual([]);
      s.close();
    });
  });
}

describe("redis store: addresses in messages", () => {
  test("a password in the URL is never shown", async () => {
    expect(redactUrl("redis://:s3cret@127.0.0.1:6379/1")).toBe("redis://***@127.0.0.1:6379/1");
    expect(redactUrl("rediss://user:pw@host:6380")).toBe("rediss://***@host:6380");
    expect(redactUrl("redis://127.0.0.1:6379/2")).toBe("redis://127.0.0.1:6379/2");
    const err = await RedisStore.open("redis://:s3cret@127.0.0.1:1", {
      commandTimeoutMs: 200,
    }).catch((e: Error) => e);
    expect(String((err as Error).message)).not.toContain("s3cret");
  });
});

describe("redis store: one server key, durable settings", () => {
  test("the first server's key is recorded; a warning unless acknowledged means durable", async () => {
    await using r = await startRedis();
    const a = await RedisStore.open(r.url);
    const b = await RedisStore.open(r.url);
    expect(await a.recordedServerKey()).toBeNull();
    expect(await a.claimServerKey("SHA256:first")).toBe("SHA256:first");
    expect(await b.claimServerKey("SHA256:second")).toBe("SHA256:first");
    expect(await b.recordedServerKey()).toBe("SHA256:first");
    expect(await a.persistenceWarning()).toMatch(
      /^redis persistence is appendonly=no appendfsync=\w+: messages acknowledged as queued can be lost/,
    );
    a.close();
    b.close();
    await using durable = await startRedis({ appendonly: "yes", appendfsync: "always" });
    const d = await RedisStore.open(durable.url);
    expect(await d.persistenceWarning()).toBeNull();
    d.close();
  });
});

describe("redis store: Redis unreachable", () => {
  test("a call fails with STORE_UNAVAILABLE within its timeout, enqueue answers a failure", async () => {
    await using r = await startRedis();
    const s = await RedisStore.open(r.url, { commandTimeoutMs: 300 });
    await r.stop();
    await expect(s.getClient(A)).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
    const res = await s.enqueue(A, [{ sender: B, at: 1, data: bytes(1) }], limits);
    expect(res[0]).toMatchObject({ ok: false, failure: true });
    expect((await s.check()).length).toBe(1);
    // Back again: the same store object recovers by itself.
    await r.start();
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = await s.getClient(A).then(
        () => true,
        () => false,
      );
      if (!ok) await Bun.sleep(50);
    }
    expect(ok).toBe(true);
    s.close();
  });

  test("open refuses an address where no Redis answers", async () => {
    await using r = await startRedis();
    const url = r.url;
    await r.stop();
    await expect(RedisStore.open(url, { commandTimeoutMs: 300 })).rejects.toMatchObject({
      code: "STORE_OPEN",
    });
  });
});

roomContract("RedisStore", () => new RedisStore(redis.url, { prefix: `rooms${n++}:` }));
