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
import { notices, startCluster, until } from "../helpers/cluster.ts";

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
    expect(await c.store.rooms.roomsOf(alice.id)).toEqual([]);
    expect(await c.store.rooms.getRoom("solo")).toBeNull(); // deleted with its last member
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
      await other.rooms.setMembership("ops", bob.id, null, Math.floor(Date.now() / 1000));
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
