/**
 * End-to-end encrypted room messages (C2C type 5) from a hostile sender, against a real
 * server: whatever the frame lists, the server answers with a NOTICE that fits one
 * message and keeps the connection (docs/PROTOCOL.md § End-to-end encrypted room messages).
 */
import { describe, expect, test } from "bun:test";
import {
  describeRoomPresence,
  type RoomPresence,
  roomPresenceRow,
} from "../../src/cli/e2e-rooms.ts";
import { E2EManager } from "../../src/e2e/session-manager.ts";
import { idToBytes } from "../../src/ids.ts";
import { ControlType } from "../../src/wire/message.ts";
import { encodeRoomE2E, type RoomCiphertext } from "../../src/wire/room-e2e.ts";
import { MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import { member, room } from "../helpers/e2e-rooms.ts";
import { isControl, jsonBody } from "../helpers/raw.ts";

describe("a type 5 frame whose NOTICE `recipients` would be too long", () => {
  test("1000 members left out and 1000 entries for non-members: one NOTICE that fits, the connection lives", async () => {
    const log = new MemoryLog();
    await using c = await startCluster({}, log);
    const alice = await c.raw("alice");
    const now = Math.floor(Date.now() / 1000);
    await c.store.rooms.createRoom({ name: "big", owner: alice.id, public: true, createdAt: now });
    // 999 other members (the most a room holds by default), none of them covered.
    for (let i = 0; i < 999; i++)
      await c.store.rooms.setMembership("big", crypto.randomUUID(), "member", now);
    // 1000 ciphertexts for clients who are not members.
    const entries: RoomCiphertext[] = [];
    for (let i = 0; i < 1000; i++)
      entries.push({ member: crypto.randomUUID(), ciphertext: new Uint8Array([i & 0xff]) });
    alice.send(encodeRoomE2E(new Uint8Array(8).fill(7), "big", entries));
    const before = await alice.heartbeat();
    const notice = before.find((m) => isControl(m, ControlType.NOTICE));
    expect(notice).toBeDefined();
    const body = jsonBody(notice as NonNullable<typeof notice>);
    expect(body.status).toBe("recipients");
    expect(body.message).toBe("0707070707070707");
    const missing = body.missing as string[];
    const notMembers = body.not_members as string[];
    // Every member to re-send to; as many dropped entries as fit; the reason counts all.
    expect(missing.length).toBe(999);
    expect(notMembers.length).toBeGreaterThan(0);
    expect(notMembers.length).toBeLessThan(1000);
    expect(body.reason).toContain("999 member(s)");
    expect(body.reason).toContain("1000 ciphertext(s)");
    expect(log.find("handler failed")).toEqual([]);
    expect(log.find("internal error")).toEqual([]);
    // The connection lives: the room still answers.
    expect((await alice.serverStatus()).ok).not.toBe(false);
  });
});

describe("the re-send to members a message lacked keeps the send's terms", () => {
  test("strict: a member who joined unverified after the sender read the list is not sent the message", async () => {
    await using c = await startCluster();
    // alice hears no membership events (receive none), so her member list goes stale.
    const alice = await member(c, "alice", { receive: "none" });
    const bob = await member(c, "bob");
    const carol = await member(c, "carol");
    await room("ops", alice.client, bob.client);
    await alice.e2e.sendRoom("ops", "first"); // alice learns bob's key
    alice.e2e.verify(bob.id, bob.e2e.fingerprint);
    await alice.client.rooms.invite("ops", carol.id);
    await carol.client.rooms.join("ops");
    const skipped: string[] = [];
    alice.e2e.on("roomSkipped", (s) => skipped.push(s.id));
    const r = await alice.e2e.sendRoom("ops", "verified only", { strict: true });
    expect(r.members).toEqual([bob.id]);
    await until(() => bob.got.length === 2, 5000, "bob");
    await until(() => skipped.includes(carol.id), 5000, "carol reported skipped");
    await alice.client.ping();
    await carol.client.ping();
    expect(alice.sent.filter((e) => e.member === carol.id)).toEqual([]);
    expect(carol.got).toEqual([]);
    // Not strict: carol gets the re-send as before.
    await alice.e2e.sendRoom("ops", "to all");
    await until(() => carol.got.length === 1, 5000, "carol");
    await alice.close();
    await bob.close();
    await carol.close();
  });

  test("a NOTICE recipients naming a client who is not a member (a hostile server): the message is not re-sent to it", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    const mallory = await member(c, "mallory"); // keys published, in no room
    await room("ops", alice.client, bob.client);
    await alice.e2e.sendRoom("ops", "first");
    await until(() => bob.got.length === 1, 5000, "bob");
    const sentMessages: string[] = [];
    const original = alice.client.sendRoomE2E.bind(alice.client);
    alice.client.sendRoomE2E = (id, room, entries) => {
      sentMessages.push(Buffer.from(id).toString("hex"));
      original(id, room, entries);
    };
    await alice.e2e.sendRoom("ops", "second");
    const id = sentMessages[0] as string;
    // What a hostile server would send: mallory "lacked" the message.
    alice.client.emit("notice", {
      address: "#ops",
      status: "recipients",
      reason: "1 member(s) without a ciphertext got nothing",
      message: id,
      missing: [mallory.id],
      not_members: [],
    } as never);
    await alice.client.rooms.list(); // a round trip after any re-send
    await Bun.sleep(0);
    await alice.client.ping();
    expect(alice.sent.filter((e) => e.member === mallory.id)).toEqual([]);
    await alice.close();
    await bob.close();
    await mallory.close();
  });
});

describe("a live ciphertext shown by another process of the same client", () => {
  test("replayed by a lying server under another room or as a direct message, it is not shown there", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    await room("ops", alice.client, bob.client);
    await room("dev", alice.client, bob.client);
    await bob.close(); // its layers below play two processes of bob
    await alice.e2e.sendRoom("ops", "for ops only");
    await alice.client.ping();
    const forBob = alice.sent.find((e) => e.member === bob.id)?.ciphertext as Uint8Array;
    const second = E2EManager.open(bob.id, { stateDir: bob.dir }); // another process, running
    const first = E2EManager.open(bob.id, { stateDir: bob.dir });
    const base = {
      from: alice.id,
      fromBytes: idToBytes(alice.id),
      data: forBob,
      stored: false,
      queuedAt: null,
      receivedAt: new Date(),
    };
    const shown = first.incoming({ ...base, kind: "room", room: "ops" });
    expect(shown && new TextDecoder().decode(shown.data)).toBe("for ops only");
    // The lying server hands the same live ciphertext to the second process elsewhere.
    expect(second.incoming({ ...base, kind: "room", room: "dev" })).toBeNull();
    expect(second.incoming({ ...base, kind: "direct", room: null })).toBeNull();
    // Where it was sent, the second process shows it too, once.
    const there = second.incoming({ ...base, kind: "room", room: "OPS" });
    expect(there && new TextDecoder().decode(there.data)).toBe("for ops only");
    expect(second.incoming({ ...base, kind: "room", room: "ops" })).toBeNull();
    first.close();
    second.close();
    await alice.close();
  });
});

describe("a member this client never saw join (its join event withheld, as a hostile server could)", () => {
  test("its first room message comes after a roomMember event with its fingerprint, unverified; its later ones without", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    const carol = await member(c, "carol");
    await room("ops", alice.client, bob.client);
    // alice reads the member list (as the chat does when it opens the room): bob.
    expect((await alice.e2e.roomMembers("ops")).members.map((m) => m.id)).toEqual([bob.id]);
    // From now on alice hears no membership events (the server hides them).
    const emit = alice.client.emit.bind(alice.client) as (e: string, ...a: unknown[]) => boolean;
    (alice.client as unknown as { emit: typeof emit }).emit = (e, ...a) =>
      e === "room" ? false : emit(e, ...a);
    const order: string[] = [];
    const announced: unknown[] = [];
    alice.e2e.on("roomMember", (p) => {
      announced.push(p);
      order.push(`member ${p.member.name}`);
    });
    alice.client.on("message", (m) => order.push(`message ${new TextDecoder().decode(m.data)}`));
    await alice.client.rooms.invite("ops", carol.id);
    await carol.client.rooms.join("ops");
    await carol.e2e.sendRoom("ops", "hi from carol");
    await carol.e2e.sendRoom("ops", "again");
    await until(() => alice.got.length === 2, 5000, "alice gets carol's messages");
    expect(order).toEqual(["member carol", "message hi from carol", "message again"]);
    expect(announced).toEqual([
      {
        room: "ops",
        member: { id: carol.id, name: "carol" },
        fingerprint: carol.e2e.fingerprint,
        verified: false,
      },
    ]);
    expect(alice.got.every((m) => m.e2e === true && m.verified === false)).toBe(true);
    // What chat and listen print for it (src/cli/e2e-rooms.ts), before the message.
    const p = announced[0] as RoomPresence;
    expect(describeRoomPresence(p)).toEqual([
      `carol is in #ops (key ${carol.e2e.fingerprint}, unverified)`,
      "warning: carol in #ops is not verified; compare safety numbers with: backbone verify carol",
    ]);
    expect(roomPresenceRow(p)).toEqual({
      kind: "room_event",
      event: "present",
      room: "ops",
      member: { id: carol.id, name: "carol" },
      fingerprint: carol.e2e.fingerprint,
      verified: false,
    });
    // bob, from whom alice knew, is not announced.
    await bob.e2e.sendRoom("ops", "from bob");
    await until(() => alice.got.length === 3, 5000, "alice gets bob's message");
    expect(announced.length).toBe(1);
    await alice.close();
    await bob.close();
    await carol.close();
  });
});

describe("a member list read again for a send", () => {
  test("names a member this client never saw join: announced (roomMember) before it is encrypted to", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    const carol = await member(c, "carol");
    await room("ops", alice.client, bob.client);
    await alice.e2e.sendRoom("ops", "first"); // the baseline: bob
    const emit = alice.client.emit.bind(alice.client) as (e: string, ...a: unknown[]) => boolean;
    (alice.client as unknown as { emit: typeof emit }).emit = (e, ...a) =>
      e === "room" ? false : emit(e, ...a);
    const order: string[] = [];
    alice.e2e.on("roomMember", (p) =>
      order.push(`member ${p.member.name} ${p.fingerprint} ${p.verified}`),
    );
    const send = alice.client.sendRoomE2E.bind(alice.client);
    alice.client.sendRoomE2E = (id, r, entries) => {
      order.push(`send to ${entries.map((e) => e.member).join(",")}`);
      send(id, r, entries);
    };
    await alice.client.rooms.invite("ops", carol.id);
    await carol.client.rooms.join("ops");
    // alice's cached list has bob only; the server's NOTICE recipients names carol, the
    // list is read again for the re-send: carol is announced before she is encrypted to.
    await alice.e2e.sendRoom("ops", "second");
    await until(() => carol.got.length === 1, 5000, "carol");
    await alice.e2e.idle();
    const announced = order.indexOf(`member carol ${carol.e2e.fingerprint} false`);
    const toCarol = order.findIndex((o) => o.startsWith("send to") && o.includes(carol.id));
    expect(announced).toBeGreaterThan(-1);
    expect(announced).toBeLessThan(toCarol);
    expect(order.filter((o) => o.startsWith("member")).length).toBe(1);
    await alice.close();
    await bob.close();
    await carol.close();
  });
});

describe("another E2E identity of this client in the key directory", () => {
  test("a room message is refused (IDENTITY_ELSEWHERE), as a direct one is: nothing sent", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    await room("ops", alice.client, bob.client);
    await alice.close();
    // The same identity with another E2E state (another machine): refused at publication.
    const other = await member(c, alice.identity);
    expect(other.e2e.identityElsewhere?.code).toBe("IDENTITY_ELSEWHERE");
    await expect(other.e2e.sendRoom("ops", "from the other machine")).rejects.toMatchObject({
      code: "IDENTITY_ELSEWHERE",
    });
    await expect(other.e2e.send(bob.id, "direct")).rejects.toMatchObject({
      code: "IDENTITY_ELSEWHERE",
    });
    await other.client.ping();
    await bob.client.ping();
    expect(other.sent).toEqual([]);
    expect(bob.got).toEqual([]);
    await other.close();
    await bob.close();
  });
});
