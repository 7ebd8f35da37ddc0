/**
 * Rooms (docs/PROTOCOL.md § Rooms) on a real server over real sockets: membership
 * (create, invite, join, leave, remove, hand over, delete), events, fan-out live and
 * into offline members' own queues, refusals, and the bounds.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Client } from "../../src/client/client.ts";
import type { RoomEvent } from "../../src/client/rooms.ts";
import type { IncomingMessage } from "../../src/client/types.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { ControlType, decodeJson, Format, type Message } from "../../src/wire/message.ts";
import { encodeRoomMessage } from "../../src/wire/room.ts";
import { notices, startCluster, until } from "../helpers/cluster.ts";
import type { RawSession } from "../helpers/raw.ts";

const td = new TextDecoder();

function received(c: Client): IncomingMessage[] {
  const got: IncomingMessage[] = [];
  c.on("message", (m) => got.push(m));
  return got;
}

function events(c: Client): RoomEvent[] {
  const got: RoomEvent[] = [];
  c.on("room", (e) => got.push(e));
  return got;
}

const texts = (ms: IncomingMessage[]) => ms.map((m) => td.decode(m.data));

describe("rooms", () => {
  test("create, invite, join, members, leave, remove, hand over, delete", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const carol = await c.client("carol");
    const bobEvents = events(bob);
    const aliceEvents = events(alice);

    expect(await alice.rooms.create("#Ops")).toEqual({ room: "Ops" });
    await expect(bob.rooms.create("ops")).rejects.toMatchObject({ code: "exists" });
    // Invite-only: bob may not join uninvited, and cannot tell the room from none.
    await expect(bob.rooms.join("ops")).rejects.toMatchObject({ code: "not_found" });
    await expect(bob.rooms.members("ops")).rejects.toMatchObject({ code: "not_found" });
    // Only the owner invites.
    await alice.rooms.invite("ops", "bob");
    await until(() => bobEvents.length === 1, 3000, "invitation event");
    expect(bobEvents[0]).toMatchObject({
      event: "invited",
      room: "Ops",
      member: { id: bob.id, name: "bob" },
      by: { id: alice.id, name: "alice" },
    });
    expect(await bob.rooms.list()).toEqual([
      { room: "Ops", state: "invited", owner: false, public: false, members: 1 },
    ]);
    await expect(bob.rooms.invite("ops", "carol")).rejects.toMatchObject({ code: "not_owner" });
    await bob.rooms.join("ops");
    await until(() => aliceEvents.some((e) => e.event === "joined"), 3000, "joined event");
    expect(aliceEvents.at(-1)).toMatchObject({ event: "joined", member: { id: bob.id } });

    const m = await bob.rooms.members("#OPS");
    expect(m.owner).toBe(alice.id);
    expect(m.members.map((x) => [x.name, x.state, x.owner, x.online])).toEqual([
      ["alice", "member", true, true],
      ["bob", "member", false, true],
    ]);

    // Hand over; the old owner can no longer remove, the new one can.
    await alice.rooms.invite("ops", carol.id);
    await carol.rooms.join("ops");
    await alice.rooms.setOwner("ops", "bob");
    await expect(alice.rooms.remove("ops", "carol")).rejects.toMatchObject({ code: "not_owner" });
    const carolEvents = events(carol);
    await bob.rooms.remove("ops", "carol");
    await until(() => carolEvents.some((e) => e.event === "removed"), 3000, "removed event");
    expect(await carol.rooms.list()).toEqual([]);

    // Members leave; the room goes with its last member, and its name is free again.
    expect(await alice.rooms.leave("ops")).toEqual({ room: "Ops", deleted: false });
    expect(await bob.rooms.leave("ops")).toEqual({ room: "Ops", deleted: true });
    await expect(bob.rooms.members("ops")).rejects.toMatchObject({ code: "not_found" });
    await carol.rooms.create("ops");
    expect((await carol.rooms.list()).map((r) => [r.room, r.owner])).toEqual([["ops", true]]);
  });

  test("the owner leaving hands the room to the longest-standing member", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const carol = await c.client("carol");
    await alice.rooms.create("ops", { public: true });
    await bob.rooms.join("ops");
    await carol.rooms.join("ops");
    const heard = events(carol);
    await alice.rooms.leave("ops");
    await until(() => heard.some((e) => e.event === "owner"), 3000, "owner event");
    expect(heard.map((e) => [e.event, e.member.name])).toEqual([
      ["left", "alice"],
      ["owner", "bob"],
    ]);
    expect((await carol.rooms.members("ops")).owner).toBe(bob.id);
  });

  test("fan-out: live to members with the room and true sender, stored for the offline one, in order", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const carol = await c.client("carol");
    const daveId = await c.enroll("dave");
    const dave0 = await c.client(daveId);
    await alice.rooms.create("ops");
    for (const [who, client] of [
      ["bob", bob],
      ["carol", carol],
      ["dave", dave0],
    ] as const) {
      await alice.rooms.invite("ops", who);
      await client.rooms.join("ops");
    }
    await dave0.close();
    const gotBob = received(bob);
    const gotCarol = received(carol);
    const gotAlice = received(alice);
    const heard = notices(alice);
    const n = 300; // more than one stored-delivery batch
    for (let i = 0; i < n; i++) alice.send("#ops", `r${i}`);
    alice.send(daveId.id, "direct after the room messages");
    await alice.ping();
    await until(() => gotBob.length === n && gotCarol.length === n, 5000, "live fan-out");
    const want = Array.from({ length: n }, (_, i) => `r${i}`);
    for (const got of [gotBob, gotCarol]) {
      expect(texts(got)).toEqual(want);
      expect(got.every((m) => m.kind === "room" && m.room === "ops" && m.from === alice.id)).toBe(
        true,
      );
      expect(got.every((m) => !m.stored && m.queuedAt === null)).toBe(true);
    }
    expect(gotAlice).toEqual([]); // not to its sender
    // Stored room copies get no NOTICE; the direct message to offline dave does.
    expect(heard.map((x) => [x.address, x.status])).toEqual([[daveId.id, "queued"]]);

    const dave = await c.client(daveId);
    const gotDave = received(dave);
    await until(() => gotDave.length === n + 1, 5000, "stored delivery");
    expect(texts(gotDave)).toEqual([...want, "direct after the room messages"]);
    for (const m of gotDave.slice(0, n)) {
      expect([m.kind, m.room, m.from, m.stored]).toEqual(["room", "ops", alice.id, true]);
      expect(m.queuedAt).toBeInstanceOf(Date);
    }
    expect([gotDave[n]?.kind, gotDave[n]?.room]).toEqual(["stored", null]);
    await until(async () => (await dave.serverStatus()).messages_queued === 0, 3000, "drained");
  });

  test("a stored room message survives a restart, still marked with its room", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    const bob0 = await c.client(bobId);
    await alice.rooms.create("ops", { public: true });
    await bob0.rooms.join("ops");
    await bob0.close();
    alice.send("#ops", "kept");
    await alice.ping();
    await c.restart();
    const bob = await c.client(bobId);
    const got = received(bob);
    await until(() => got.length === 1, 5000, "stored room message");
    expect([got[0]?.room, td.decode(got[0]?.data), got[0]?.stored]).toEqual(["ops", "kept", true]);
  });

  test("a non-member is refused with NOTICE not_member; an invitee too until it joins", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const mallory = await c.client("mallory");
    await alice.rooms.create("ops");
    await alice.rooms.invite("ops", "bob");
    const gotAlice = received(alice);
    const heardM = notices(mallory);
    const heardB = notices(bob);
    mallory.send("#ops", "let me in");
    mallory.send("#nosuchroom", "hello?");
    bob.send("#ops", "not joined yet");
    await mallory.ping();
    await bob.ping();
    expect(heardM.map((x) => [x.address, x.status])).toEqual([
      ["#ops", "not_member"],
      ["#nosuchroom", "not_member"],
    ]);
    expect(heardB.map((x) => x.status)).toEqual(["not_member"]);
    await alice.ping();
    expect(gotAlice).toEqual([]);
  });

  test("a removed member receives nothing after the removal, live or stored", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    const bob = await c.client(bobId);
    const carol = await c.client("carol");
    await alice.rooms.create("ops", { public: true });
    await bob.rooms.join("ops");
    await carol.rooms.join("ops");
    const gotBob = received(bob);
    const gotCarol = received(carol);
    alice.send("#ops", "before");
    await alice.rooms.remove("ops", "bob");
    alice.send("#ops", "after");
    await alice.ping();
    await until(() => gotCarol.length === 2, 3000, "carol's messages");
    await bob.ping();
    expect(texts(gotBob)).toEqual(["before"]);
    // Offline, nothing is stored for it either.
    await bob.close();
    alice.send("#ops", "after, offline");
    await alice.ping();
    const bob2 = await c.client(bobId);
    const got2 = received(bob2);
    await bob2.ping();
    await until(() => gotCarol.length === 3, 3000, "carol's third");
    expect(got2).toEqual([]);
    expect((await bob2.serverStatus()).messages_queued).toBe(0);
    // …and it cannot send to the room any more.
    const heard = notices(bob2);
    bob2.send("#ops", "still here?");
    await bob2.ping();
    expect(heard.map((x) => x.status)).toEqual(["not_member"]);
  });

  test("a public room is joined by anyone; an invite-only one only by invitees", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    await alice.rooms.create("lobby", { public: true });
    await alice.rooms.create("staff");
    expect(await bob.rooms.join("lobby")).toEqual({ room: "lobby" });
    await expect(bob.rooms.join("lobby")).rejects.toMatchObject({ code: "already_member" });
    await expect(bob.rooms.join("staff")).rejects.toMatchObject({ code: "not_found" });
    const got = received(alice);
    bob.send("#LOBBY", "hi all");
    await until(() => got.length === 1, 3000, "room message");
    expect([got[0]?.room, got[0]?.from]).toEqual(["lobby", bob.id]);
  });

  test("bad names and requests get a clear refusal, one reply each, in order", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    expect(() => alice.rooms.create("no spaces")).toThrow(/invalid room name/);
    expect(() => alice.send("#", "x")).toThrow(/invalid room name/);
    await alice.rooms.create("ops");
    await expect(alice.rooms.invite("ops", "nobody")).rejects.toMatchObject({
      code: "unknown_client",
    });
    await expect(alice.rooms.remove("ops", "alice")).rejects.toMatchObject({
      code: "bad_request",
    });
    const replies = await Promise.allSettled([
      alice.rooms.list(),
      alice.rooms.join("nope"),
      alice.rooms.members("ops"),
    ]);
    expect(replies.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  });
});

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

describe("rooms and revocation", () => {
  test("a revoked member leaves its rooms: members hear it, ownership passes on", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const carol = await c.client("carol");
    await alice.rooms.create("ops", { public: true });
    await bob.rooms.join("ops");
    await carol.rooms.join("ops");
    await alice.rooms.create("solo"); // alice its only member
    const heard = events(carol);
    // As `backbone revoke` would: its own connection to the same database file.
    const cli = new SqliteStore(join(c.dir, "backbone.db"));
    try {
      expect(await cli.revokeClient(alice.id, Math.floor(Date.now() / 1000))).toBe(true);
    } finally {
      cli.close();
    }
    await alice.closed;
    await until(() => heard.some((e) => e.event === "owner"), 5000, "owner event");
    expect(heard.map((e) => [e.event, e.member.name, e.by?.name])).toEqual([
      ["removed", "alice", undefined],
      ["owner", "bob", "alice"],
    ]);
    const m = await carol.rooms.members("ops");
    expect([m.owner, m.members.map((x) => x.name)]).toEqual([bob.id, ["bob", "carol"]]);
    expect(await c.store.roomsOf(alice.id)).toEqual([]);
    expect(await c.store.getRoom("solo")).toBeNull(); // deleted with its last member
  });
});

describe("rooms and sessions", () => {
  test("a room message reaches each receiving session of a member, once; none to `receive: none`", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    const bob1 = await c.client(bobId);
    const bob2 = await c.client(bobId);
    const bobTool = await c.client(bobId, { session: { receive: "none" } });
    await alice.rooms.create("ops", { public: true });
    await bob1.rooms.join("ops");
    const [g1, g2, gt] = [received(bob1), received(bob2), received(bobTool)];
    const e2 = events(bob2);
    for (let i = 0; i < 5; i++) alice.send("#ops", `m${i}`);
    await alice.rooms.invite("ops", "carol").catch(() => {}); // carol is not registered
    await c.enroll("carol");
    await alice.rooms.invite("ops", "carol");
    await until(() => g1.length === 5 && g2.length === 5, 3000, "both sessions");
    expect(texts(g1)).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(texts(g2)).toEqual(texts(g1));
    await until(() => e2.some((e) => e.event === "invited"), 3000, "event on the other session");
    await bobTool.ping();
    expect(gt).toEqual([]);
  });
});

describe("rooms changed by another process", () => {
  test("a membership removed in the store by another node stops delivery to it", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    await alice.rooms.create("ops", { public: true });
    await bob.rooms.join("ops");
    const got = received(bob);
    alice.send("#ops", "before");
    await until(() => got.length === 1, 3000, "the first message");
    // Another node on the same store removes bob (its own connection to the file).
    const other = new SqliteStore(join(c.dir, "backbone.db"));
    try {
      await other.setMembership("ops", bob.id, null, Math.floor(Date.now() / 1000));
    } finally {
      other.close();
    }
    await until(
      async () => {
        try {
          await bob.rooms.members("ops");
          return false;
        } catch {
          return true; // this node sees bob is no member any more
        }
      },
      3000,
      "the change seen",
    );
    alice.send("#ops", "after");
    await alice.ping();
    await bob.ping();
    expect(texts(got)).toEqual(["before"]);
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
    await c.store.createRoom({ name: "big", owner: alice.id, public: false, createdAt: at });
    await c.store.setMembership("big", bob.id, "member", at);
    const offline: string[] = [];
    for (let i = 0; i < 298; i++) {
      const id = (await c.enroll(`m${i}`)).id;
      offline.push(id);
      await c.store.setMembership("big", id, "member", at);
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
