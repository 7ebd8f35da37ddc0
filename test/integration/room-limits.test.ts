/**
 * Room bounds (docs/PROTOCOL.md § Rooms, § Limits) on a real server: members per room,
 * rooms per client, the per-sender fan-out budget, rooms larger than one fan-out
 * slice, and room messages too large to send or to store.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type Client, connect } from "../../src/client/client.ts";
import type { IncomingMessage } from "../../src/client/types.ts";
import { BackboneServer } from "../../src/server/server.ts";
import { RedisStore } from "../../src/store/redis/store.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { ControlType, decodeJson, Format, type Message } from "../../src/wire/message.ts";
import { encodeRoomMessage } from "../../src/wire/room.ts";
import { enrollIdentity, notices, startCluster, testServerKey, until } from "../helpers/cluster.ts";
import type { RawSession } from "../helpers/raw.ts";
import { startRedis } from "../helpers/redis.ts";

const td = new TextDecoder();

function received(c: Client): IncomingMessage[] {
  const got: IncomingMessage[] = [];
  c.on("message", (m) => got.push(m));
  return got;
}

const texts = (ms: IncomingMessage[]) => ms.map((m) => td.decode(m.data));

describe("room bounds", () => {
  test("room_max_members and room_max_per_client", async () => {
    await using c = await startCluster({ room_max_members: 2, room_max_per_client: 2 });
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const carol = await c.client("carol");
    await alice.rooms.create("one", { public: true });
    await bob.rooms.join("one");
    await expect(carol.rooms.join("one")).rejects.toMatchObject({ code: "limit" });
    await expect(alice.rooms.invite("one", "carol")).rejects.toMatchObject({ code: "limit" });
    await alice.rooms.create("two");
    await expect(alice.rooms.create("three")).rejects.toMatchObject({ code: "limit" });
    // Invitations are bounded per invitee too.
    await carol.rooms.create("c1");
    await carol.rooms.invite("c1", "bob");
    await alice.rooms.invite("two", "bob");
    await carol.rooms.create("c2");
    await expect(carol.rooms.invite("c2", "bob")).rejects.toMatchObject({ code: "limit" });
  });

  test("fan-out budget: a flooding sender is slowed, loses nothing, and others get through", async () => {
    // 4 copies per message; a budget of 200 copies/s (burst 8) lets 50 messages/s through.
    await using c = await startCluster({ room_fanout_rate: 200, room_fanout_burst: 8 });
    const alice = await c.client("alice");
    const members = await Promise.all(["m1", "m2", "m3", "m4"].map((n) => c.client(n)));
    const bob = await c.client("bob");
    await alice.rooms.create("big", { public: true });
    for (const m of members) await m.rooms.join("big");
    const watcher = members[0] as Client;
    const order: string[] = [];
    watcher.on("message", (m) => order.push(m.room ? `room ${td.decode(m.data)}` : "bob"));
    const n = 60;
    for (let i = 0; i < n; i++) alice.send("#big", String(i));
    await until(() => order.length >= 2, 3000, "the first room messages");
    bob.send(watcher.id, "bob"); // must not wait behind alice's whole flood
    await until(() => order.length === n + 1, 15_000, "everything");
    const bobAt = order.indexOf("bob");
    expect(bobAt).toBeGreaterThan(0);
    expect(bobAt).toBeLessThan(n); // it overtook the rest of alice's backlog
    expect(order.filter((x) => x !== "bob")).toEqual(
      Array.from({ length: n }, (_, i) => `room ${i}`),
    );
  });
});

describe("a room larger than one fan-out slice", () => {
  test("300 members, most offline: each copy live or in its member's queue, in order", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    // Members written to the store directly (enrolled, never online), before this
    // server has loaded the room.
    const at = Math.floor(Date.now() / 1000);
    await c.store.rooms.createRoom({ name: "big", owner: alice.id, public: false, createdAt: at });
    await c.store.rooms.setMembership("big", bob.id, "member", at);
    const offline: string[] = [];
    for (let i = 0; i < 298; i++) {
      const id = (await c.enroll(`m${i}`)).id;
      offline.push(id);
      await c.store.rooms.setMembership("big", id, "member", at);
    }
    const got = received(bob);
    const heard = notices(alice);
    for (let i = 0; i < 3; i++) alice.send("#big", `n${i}`);
    await alice.ping(); // every copy is live or stored once this returns
    await until(() => got.length === 3, 3000, "bob's copies");
    expect(texts(got)).toEqual(["n0", "n1", "n2"]);
    expect(heard).toEqual([]);
    expect(await c.store.pendingCount()).toBe(298 * 3);
    const held = await c.store.peek(offline[297] as string, 10);
    expect(held.map((m) => [m.room, new TextDecoder().decode(m.data)])).toEqual([
      ["big", "n0"],
      ["big", "n1"],
      ["big", "n2"],
    ]);
  });
});

/** The NOTICE bodies among messages a raw session read. */
function noticesIn(messages: Message[]): Record<string, unknown>[] {
  return messages.flatMap((m) =>
    m.format === Format.CONTROL && m.type === ControlType.NOTICE ? [decodeJson(m.body)] : [],
  );
}

/** A ROOM request from a raw session: its reply (events that come first are skipped). */
async function roomRequest(raw: RawSession, body: Record<string, unknown>) {
  raw.sendControl(ControlType.ROOM, body);
  const { match } = await raw.readUntil(
    (m) =>
      m.format === Format.CONTROL &&
      m.type === ControlType.ROOM &&
      !("event" in decodeJson(m.body)),
  );
  return decodeJson((match as { body: Uint8Array }).body);
}

describe("room messages too large", () => {
  test("over max_message_size, or a stored form past one frame: NOTICE too_large, nothing sent", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const wide = "\u{20000}".repeat(63); // 63 CJK letters: 252 bytes of UTF-8
    await alice.rooms.create("ops", { public: true });
    await alice.rooms.create(wide, { public: true });
    const rawId = await c.enroll("raw");
    const raw = await c.raw(rawId);
    const joined = await roomRequest(raw, { op: "join", room: "ops" });
    expect(joined).toMatchObject({ op: "join", ok: true });
    expect(await roomRequest(raw, { op: "join", room: wide })).toMatchObject({
      ok: true,
    });
    const got = received(alice);
    // Fits one frame as sent (18 + 252 + 65249 = 65519) but not as stored (4 more).
    raw.send(encodeRoomMessage(new Uint8Array(16), wide, new Uint8Array(65_249)));
    const bodies = noticesIn(await raw.heartbeat());
    expect(bodies).toEqual([
      {
        address: `#${wide}`,
        status: "too_large",
        reason: expect.stringMatching(/exceeds max_message_size 65245 for this room$/),
      },
    ]);
    // The client library refuses such a message before sending.
    expect(() => alice.send(`#${wide}`, new Uint8Array(65_300))).toThrow(/exceeds/);
    await alice.ping();
    expect(got).toEqual([]);
  });

  test("max_message_size applies to room messages", async () => {
    await using c = await startCluster({ max_message_size: 100 });
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    await alice.rooms.create("ops", { public: true });
    await bob.rooms.join("ops");
    const heard = notices(bob);
    const got = received(alice);
    expect(() => bob.send("#ops", "x".repeat(101))).toThrow(/exceeds the server's limit/);
    const rawId = await c.enroll("raw");
    const raw = await c.raw(rawId);
    await roomRequest(raw, { op: "join", room: "ops" });
    raw.send(encodeRoomMessage(new Uint8Array(16), "ops", new Uint8Array(101)));
    expect(noticesIn(await raw.heartbeat()).map((n) => n.status)).toEqual(["too_large"]);
    bob.send("#ops", "x".repeat(100));
    await until(() => got.length === 1, 3000, "the message at the limit");
    expect(heard).toEqual([]);
  });
});

describe("invitations", () => {
  /** Backdates `client`'s invitation to `room` in the store, as another node would see it. */
  async function backdate(dir: string, room: string, client: string, since: number) {
    const other = new SqliteStore(join(dir, "backbone.db"));
    try {
      await other.rooms.setMembership(room, client, null, since);
      await other.rooms.setMembership(room, client, "invited", since);
    } finally {
      other.close();
    }
  }

  /**
   * bob's invitation to alice's invite-only room `ops` lapses once `backdate` has made
   * it older than room_invite_ttl (3600 s): no join with it, not listed, gone from the
   * store, and alice may invite again.
   */
  async function lapses(
    alice: Client,
    bob: Client,
    backdate: (since: number) => Promise<void>,
    roomsOf: (id: string) => Promise<unknown[]>,
  ) {
    await alice.rooms.create("ops");
    await alice.rooms.invite("ops", "bob");
    expect((await bob.rooms.list()).map((r) => [r.room, r.state])).toEqual([["ops", "invited"]]);
    await backdate(Math.floor(Date.now() / 1000) - 3601);
    expect(await bob.rooms.list()).toEqual([]);
    await until(
      async () => (await alice.rooms.members("ops")).members.length === 1,
      3000,
      "the lapsed invitation gone from the members",
    );
    await expect(bob.rooms.join("ops")).rejects.toMatchObject({ code: "not_found" });
    // Gone from the store too: it counts against nothing, and the owner may invite again.
    expect(await roomsOf(bob.id)).toEqual([]);
    await alice.rooms.invite("ops", "bob");
    expect(await bob.rooms.join("ops")).toMatchObject({ room: "ops" });
  }

  test("an invitation lapses after room_invite_ttl: no join with it, not listed, invite again", async () => {
    await using c = await startCluster({ room_invite_ttl: 3600 });
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    await lapses(
      alice,
      bob,
      (since) => backdate(c.dir, "ops", bob.id, since),
      (id) => c.store.rooms.roomsOf(id),
    );
  });

  test("the same on a Redis store", async () => {
    await using redis = await startRedis();
    const store = await RedisStore.open(redis.url);
    const key = await testServerKey();
    const settings = { host: "127.0.0.1", port: 0, room_invite_ttl: 3600 };
    const server = await BackboneServer.start({ key, store, settings });
    const address = `127.0.0.1:${server.port}`;
    const clients: Client[] = [];
    try {
      for (const name of ["alice", "bob"])
        clients.push(await connect({ identity: await enrollIdentity(store, key, address, name) }));
      const [alice, bob] = clients as [Client, Client];
      // Backdated in Redis (the write moves the registry version: the server re-reads).
      const backdateHere = async (since: number) => {
        await store.rooms.setMembership("ops", bob.id, null, since);
        await store.rooms.setMembership("ops", bob.id, "invited", since);
      };
      await lapses(alice, bob, backdateHere, (id) => store.rooms.roomsOf(id));
    } finally {
      for (const c of clients) await c.close();
      await server.close();
      store.close();
    }
  });

  test("a lapsed invitation does not hold one of the invitee's slots", async () => {
    await using c = await startCluster({ room_max_per_client: 1, room_invite_ttl: 3600 });
    const alice = await c.client("alice");
    const carol = await c.client("carol");
    await c.client("bob");
    const bobId = (await alice.clientStatus(["bob"]))[0] as { id: string };
    await carol.rooms.create("old");
    await carol.rooms.invite("old", "bob");
    await alice.rooms.create("new");
    await expect(alice.rooms.invite("new", "bob")).rejects.toMatchObject({ code: "limit" });
    await backdate(c.dir, "old", bobId.id, Math.floor(Date.now() / 1000) - 3601);
    await alice.rooms.invite("new", "bob");
  });

  test("no one owner can fill a client's invitation slots: a tenth of room_max_per_client each", async () => {
    await using c = await startCluster({ room_max_per_client: 20 }); // 2 per owner
    const mallory = await c.client("mallory");
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    for (const r of ["m1", "m2", "m3"]) await mallory.rooms.create(r);
    await mallory.rooms.invite("m1", "bob");
    await mallory.rooms.invite("m2", "bob");
    const refused = mallory.rooms.invite("m3", "bob");
    await expect(refused).rejects.toMatchObject({ code: "limit" });
    await expect(refused).rejects.toThrow(/bob holds 2 invitations to your rooms already/);
    // Others still can; and once bob declines one, mallory may invite again.
    await alice.rooms.create("ops");
    await alice.rooms.invite("ops", "bob");
    await bob.rooms.join("ops");
    await bob.rooms.leave("m1");
    await mallory.rooms.invite("m3", "bob");
  });
});
