/**
 * End-to-end encrypted rooms (docs/E2E.md § Rooms) against a real server and SQLite
 * file: a room message is encrypted to each member over the pairwise sessions and sent
 * as one C2C type 5 frame; the server hands each member only its own ciphertext. A
 * non-member gets nothing, a ciphertext opens only in the room and from the sender it
 * was made for, an offline member gets its stored ciphertext later, the database never
 * holds the plaintext, a keyless member is skipped (plaintext only when nobody has keys),
 * strict mode refuses unverified members, and a member the frame lacked (it joined
 * meanwhile) gets the message re-sent.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { IncomingMessage } from "../../src/client/types.ts";
import { E2EManager } from "../../src/e2e/session-manager.ts";
import { idToBytes } from "../../src/ids.ts";
import { ControlType } from "../../src/wire/message.ts";
import { encodeRoomE2E } from "../../src/wire/room-e2e.ts";
import { inbox, notices, startCluster, until } from "../helpers/cluster.ts";
import { member, room } from "../helpers/e2e-rooms.ts";
import { isControl, jsonBody } from "../helpers/raw.ts";

describe("E2E rooms", () => {
  test("every member receives and decrypts; a non-member gets nothing; the server relays ciphertext only", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    const carol = await member(c, "carol");
    const dave = await member(c, "dave");
    await room("ops", alice.client, bob.client, carol.client);
    const r = await alice.e2e.sendRoom("#OPS", "deploy at 16:00");
    expect(r.e2e).toBe(true);
    expect(r.room).toBe("ops");
    expect(r.members.sort()).toEqual([bob.id, carol.id].sort());
    await until(() => bob.got.length === 1 && carol.got.length === 1, 5000, "room message");
    for (const m of [bob, carol]) {
      expect(m.got[0]).toMatchObject({ from: alice.id, kind: "room", room: "ops", e2e: true });
      expect(m.text()).toEqual(["deploy at 16:00"]);
    }
    // One frame, one ciphertext per member, none of them the plaintext.
    expect(alice.sent.map((e) => e.member).sort()).toEqual([bob.id, carol.id].sort());
    for (const e of alice.sent)
      expect(Buffer.from(e.ciphertext).includes(Buffer.from("deploy"))).toBe(false);
    // Replies come back encrypted too, and the non-member saw nothing of any of it.
    await bob.e2e.sendRoom("ops", "ack");
    await until(() => alice.got.length === 1 && carol.got.length === 2, 5000, "reply");
    expect(alice.got[0]).toMatchObject({ from: bob.id, e2e: true, room: "ops" });
    await dave.client.ping();
    expect(dave.got).toEqual([]);
    // A non-member's own attempt is refused by the server before anything is encrypted.
    await expect(dave.e2e.sendRoom("ops", "let me in")).rejects.toMatchObject({
      code: "not_found",
    });
    for (const m of [alice, bob, carol, dave]) await m.close();
  });

  test("offline member: stored ciphertext delivered at its next login; the database holds no byte of the plaintext", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bobIdentity = await c.enroll("bob");
    const bob = await member(c, bobIdentity);
    await room("ops", alice.client, bob.client);
    const bobDir = bob.dir;
    await bob.close();
    const secrets = Array.from({ length: 20 }, (_, i) => `ROOMSECRET-${i}-${"xq".repeat(i % 4)}`);
    for (const s of secrets) expect((await alice.e2e.sendRoom("ops", s)).e2e).toBe(true);
    await alice.client.ping();
    await c.server.router.allStored();
    expect((await alice.client.serverStatus()).messages_queued).toBe(20);
    const files = ["backbone.db", "backbone.db-wal"].map((f) => join(c.dir, f)).filter(existsSync);
    const haystack = Buffer.concat(files.map((f) => readFileSync(f)));
    for (const s of secrets)
      for (let i = 0; i + 8 <= s.length; i += 4)
        expect(haystack.includes(Buffer.from(s.slice(i, i + 8)))).toBe(false);
    // The positive control: a plaintext room message is there in clear.
    alice.client.send("#ops", "ROOMPLAINCONTROL-77");
    await alice.client.ping();
    await c.server.router.allStored();
    const after = Buffer.concat(files.filter(existsSync).map((f) => readFileSync(f)));
    expect(after.includes(Buffer.from("ROOMPLAINCONTROL-77"))).toBe(true);
    const back = await member(c, bobIdentity, { dir: bobDir });
    await until(() => back.got.length === 21, 10000, "stored room messages");
    expect(back.text()).toEqual([...secrets, "ROOMPLAINCONTROL-77"]);
    expect(
      back.got
        .slice(0, 20)
        .every((m) => m.e2e && m.stored && m.room === "ops" && m.kind === "room"),
    ).toBe(true);
    // A plaintext room message is shown as such, never as encrypted.
    expect(back.got[20]).toMatchObject({ e2e: false, verified: false, room: "ops" });
    await alice.close();
    await back.close();
  });

  test("a ciphertext opens only in its room and from its sender: replay into another room, as a direct message, or under another sender fails and changes nothing", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bobIdentity = await c.enroll("bob");
    const bob = await member(c, bobIdentity);
    const carol = await member(c, "carol");
    await room("ops", alice.client, bob.client, carol.client);
    await room("dev", alice.client, bob.client);
    const bobDir = bob.dir;
    await bob.close(); // the genuine copy waits in the server's queue
    await alice.e2e.sendRoom("ops", "for ops only");
    await alice.client.ping();
    const forBob = alice.sent.find((e) => e.member === bob.id)?.ciphertext as Uint8Array;
    expect(forBob).toBeDefined();
    // A lying server hands bob's layer the ciphertext under other labels.
    const layer = E2EManager.open(bob.id, { stateDir: bobDir });
    const failures: string[] = [];
    layer.on("decryptFailed", ({ code }) => failures.push(code));
    const base = {
      from: alice.id,
      fromBytes: idToBytes(alice.id),
      data: forBob,
      stored: false,
      queuedAt: null,
      receivedAt: new Date(),
    };
    const before = readFileSync(join(bobDir, "state.json"));
    expect(layer.incoming({ ...base, kind: "room", room: "dev" })).toBeNull();
    expect(layer.incoming({ ...base, kind: "direct", room: null })).toBeNull();
    expect(
      layer.incoming({
        ...base,
        from: carol.id,
        fromBytes: idToBytes(carol.id),
        kind: "room",
        room: "ops",
      }),
    ).toBeNull();
    expect(failures.length).toBe(3);
    expect(readFileSync(join(bobDir, "state.json")).equals(before)).toBe(true);
    layer.close();
    // The genuine one still opens, once. And a direct message never opens as a room one.
    await alice.e2e.send(bob.id, "direct words");
    await alice.client.ping();
    const back = await member(c, bobIdentity, { dir: bobDir });
    await until(() => back.got.length === 2, 10000, "stored");
    expect(back.got.map((m) => [m.room, new TextDecoder().decode(m.data), m.e2e])).toEqual([
      ["ops", "for ops only", true],
      [null, "direct words", true],
    ]);
    await alice.close();
    await back.close();
    await carol.close();
  });

  test("a member without keys is skipped with one warning; with nobody to encrypt to, plaintext with a warning", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    const carol = await c.client("carol"); // no E2E layer: no keys
    const carolGot: IncomingMessage[] = [];
    carol.on("message", (m) => carolGot.push(m));
    await room("ops", alice.client, bob.client, carol);
    const skipped: string[] = [];
    const plain: string[] = [];
    alice.e2e.on("roomSkipped", ({ id }) => skipped.push(id));
    alice.e2e.on("plaintext", ({ id }) => plain.push(id));
    const r = await alice.e2e.sendRoom("ops", "one");
    await alice.e2e.sendRoom("ops", "two");
    expect(r).toMatchObject({ e2e: true, members: [bob.id], skipped: [carol.id] });
    expect(skipped).toEqual([carol.id]); // once, not per message
    await until(() => bob.got.length === 2, 5000, "bob");
    await carol.ping();
    expect(carolGot).toEqual([]);
    // requireE2E and strict refuse rather than skip, and send nothing.
    await expect(alice.e2e.sendRoom("ops", "x", { requireE2E: true })).rejects.toMatchObject({
      code: "NO_KEYS",
    });
    await expect(alice.e2e.sendRoom("ops", "x", { strict: true })).rejects.toMatchObject({
      code: "NO_KEYS",
    });
    // A room where nobody else has keys: plaintext, with a warning, marked as such.
    await room("lobby", alice.client, carol);
    const p = await alice.e2e.sendRoom("lobby", "plain hello");
    expect(p.e2e).toBe(false);
    expect(plain).toEqual(["#lobby"]);
    await until(() => carolGot.length === 1, 5000, "carol");
    expect(new TextDecoder().decode(carolGot[0]?.data)).toBe("plain hello");
    await bob.client.ping();
    expect(bob.got.length).toBe(2);
    await alice.close();
    await bob.close();
  });

  test("strict: refused while a member is unverified, sent once every member is verified", async () => {
    await using c = await startCluster();
    const alice = await member(c, "alice");
    const bob = await member(c, "bob");
    await room("ops", alice.client, bob.client);
    const members = await alice.e2e.roomMembers("ops");
    expect(members.members).toEqual([
      { id: bob.id, name: "bob", fingerprint: bob.e2e.fingerprint, verified: false },
    ]);
    await expect(alice.e2e.sendRoom("ops", "x", { strict: true })).rejects.toMatchObject({
      code: "UNVERIFIED",
    });
    await bob.client.ping();
    expect(bob.got).toEqual([]);
    alice.e2e.verify(bob.id, bob.e2e.fingerprint);
    expect((await alice.e2e.sendRoom("ops", "verified only", { strict: true })).e2e).toBe(true);
    await until(() => bob.got.length === 1, 5000, "bob");
    expect(bob.got[0]).toMatchObject({ e2e: true, room: "ops" });
    await alice.close();
    await bob.close();
  });

  test("a member who joined after the sender read the member list gets nothing from the server, and the sender re-sends to it", async () => {
    await using c = await startCluster();
    // alice hears no membership events (receive none), so her member list goes stale.
    const alice = await member(c, "alice", { receive: "none" });
    const bob = await member(c, "bob");
    const carol = await member(c, "carol");
    await room("ops", alice.client, bob.client);
    await alice.e2e.sendRoom("ops", "first");
    await alice.client.rooms.invite("ops", carol.id);
    await carol.client.rooms.join("ops");
    const r = await alice.e2e.sendRoom("ops", "second");
    expect(r.members).toEqual([bob.id]); // the stale list
    await until(() => carol.got.length === 1, 5000, "re-sent to carol");
    await alice.client.ping();
    const notice = alice.notices.find((n) => n.status === "recipients");
    expect(notice).toMatchObject({ address: "#ops", missing: [carol.id], not_members: [] });
    expect(carol.got[0]).toMatchObject({ from: alice.id, room: "ops", e2e: true });
    expect(carol.text()).toEqual(["second"]);
    await until(() => bob.got.length === 2, 5000, "bob");
    expect(bob.text()).toEqual(["first", "second"]);
    await alice.close();
    await bob.close();
    await carol.close();
  });

  test("the server: each member only its own ciphertext, with the true sender; no ciphertext to a non-member; the sender told what was missing or dropped", async () => {
    await using c = await startCluster();
    const aliceId = await c.enroll("alice");
    const alice = await c.client(aliceId);
    const bob = await c.client("bob");
    const carol = await c.client("carol");
    const dave = await c.client("dave");
    await room("ops", alice, bob, carol);
    const got = { bob: inbox(bob), carol: inbox(carol), dave: inbox(dave) };
    const raw = await c.raw(aliceId);
    const id = new Uint8Array(8).fill(7);
    // For bob and for dave (no member), nothing for carol (as if she joined meanwhile).
    raw.send(
      encodeRoomE2E(id, "OPS", [
        { member: bob.id, ciphertext: new TextEncoder().encode("for-bob") },
        { member: dave.id, ciphertext: new TextEncoder().encode("for-dave") },
      ]),
    );
    const before = await raw.heartbeat();
    const n = before.find((m) => isControl(m, ControlType.NOTICE));
    expect(n && jsonBody(n)).toEqual({
      address: "#OPS",
      status: "recipients",
      reason: expect.any(String),
      message: "0707070707070707",
      missing: [carol.id],
      not_members: [dave.id],
    });
    await until(() => got.bob.length === 1, 5000, "bob's copy");
    expect(got.bob[0]).toEqual({ from: alice.id, text: "for-bob", kind: "room" });
    for (const who of [carol, dave]) await who.ping();
    expect(got.carol).toEqual([]);
    expect(got.dave).toEqual([]);
    // A non-member sender: refused as a whole.
    const daveNotices = notices(dave);
    dave.sendRoomE2E(id, "ops", [{ member: bob.id, ciphertext: new Uint8Array([1]) }]);
    await dave.ping();
    expect(daveNotices).toMatchObject([{ address: "#ops", status: "not_member" }]);
    await bob.ping();
    expect(got.bob.length).toBe(1);
    // A malformed one: STOP protocol error.
    const bad = encodeRoomE2E(id, "ops", [{ member: bob.id, ciphertext: new Uint8Array([1]) }]);
    raw.send(bad.subarray(0, bad.length - 1));
    expect((await raw.expectStop()).reason).toBe("protocol error");
  });
});
