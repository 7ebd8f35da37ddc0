/**
 * Several sessions of one client ID (docs/PROTOCOL.md § Sessions and delivery, § SESSION):
 * live to every receiving session, stored to one taker at a time, presence, the tag's
 * replacement rule, the session limit, and untagged (legacy) connections as before.
 */
import { describe, expect, test } from "bun:test";
import { HandshakeError } from "../../src/errors.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { idKey, idToBytes } from "../../src/ids.ts";
import { ControlType, encodeControl, Format } from "../../src/wire/message.ts";
import { encodeSessionBody, type Receive } from "../../src/wire/session.ts";
import { inbox, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import { expectError, rejected } from "../helpers/errors.ts";
import { FramedSocket } from "../helpers/framed.ts";
import { RawSession } from "../helpers/raw.ts";

const session = (receive: Receive, tag = crypto.getRandomValues(new Uint8Array(16))) =>
  encodeControl(ControlType.SESSION, encodeSessionBody(tag, receive));
const ack0 = encodeControl(ControlType.ACK, new Uint8Array(4));
const text = (m: { data: Uint8Array }) => new TextDecoder().decode(m.data);

describe("several sessions of one client", () => {
  test("a live message and a broadcast reach every receiving session; status counts sessions", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const bob = await c.client("bob");
    const one = await c.client(alice);
    const two = await c.client(alice, { session: { receive: "live" } });
    const quiet = await c.client(alice, { session: { receive: "none" } });
    const [got1, got2, got3] = [inbox(one), inbox(two), inbox(quiet)];
    bob.send(alice.id, "to every session");
    bob.broadcast("to everyone");
    await until(() => got1.length === 2 && got2.length === 2, 3000, "both sessions");
    expect(got1.map((m) => m.text)).toEqual(["to every session", "to everyone"]);
    expect(got2.map((m) => m.text)).toEqual(["to every session", "to everyone"]);
    await quiet.ping();
    expect(got3).toEqual([]);
    const [entry] = await bob.clientStatus([alice.id]);
    expect(entry).toMatchObject({ online: true, sessions: 3 });
    // A broadcast from one session goes to other clients, not to its own client's sessions.
    const gotBob = inbox(bob);
    one.broadcast("from alice");
    await until(() => gotBob.length === 1, 3000, "bob to get the broadcast");
    await two.ping();
    expect(got2.map((m) => m.text)).not.toContain("from alice");
  });

  test("a session that receives nothing: not online, takes nothing; the next listener gets it", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const bob = await c.client("bob");
    const notes: string[] = [];
    bob.on("notice", (n) => notes.push(n.status));
    const oneShot = await c.client(alice, { session: { receive: "none" } });
    const seen = inbox(oneShot);
    expect((await bob.clientStatus([alice.id]))[0]).toMatchObject({ online: false, sessions: 1 });
    bob.send(alice.id, "while only a one-shot is there");
    await bob.ping();
    expect(notes).toEqual(["queued"]);
    await oneShot.ping();
    await oneShot.close();
    expect(seen).toEqual([]);
    const listener = await c.client(alice);
    const got = inbox(listener);
    await until(() => got.length === 1, 3000, "the stored message");
    expect(got[0]).toMatchObject({ text: "while only a one-shot is there", kind: "stored" });
  });

  test("a session that takes only stored messages gets each as it is stored, and no live ones", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const bob = await c.client("bob");
    const archive = await c.client(alice, { session: { receive: "stored" } });
    const got = inbox(archive);
    expect((await bob.clientStatus([alice.id]))[0]).toMatchObject({ online: true });
    bob.send(alice.id, "kept for the archive");
    await until(() => got.length === 1, 3000, "the stored message");
    expect(got[0]).toMatchObject({ text: "kept for the archive", kind: "stored" });
    const live = await c.client(alice, { session: { receive: "live" } });
    const gotLive = inbox(live);
    bob.send(alice.id, "live now");
    await until(() => gotLive.length === 1, 3000, "the live session");
    await archive.ping();
    expect(got).toHaveLength(1); // the live one is not stored while a session receives live
    expect(await c.store.pendingCount()).toBe(0);
  });

  test("a stored backlog goes to one session at a time: exactly once across two", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const bob = await c.client("bob");
    for (let i = 0; i < 600; i++) bob.send(alice.id, `m${i}`);
    await bob.ping();
    const a = await c.client(alice);
    const gotA = inbox(a);
    const b = await c.client(alice);
    const gotB = inbox(b);
    await until(() => gotA.length + gotB.length >= 600, 5000, "the backlog");
    bob.send(alice.id, "live after");
    await until(
      () => gotA.some((m) => m.text === "live after") && gotB.some((m) => m.text === "live after"),
      3000,
      "the live message on both",
    );
    const stored = [...gotA, ...gotB].filter((m) => m.kind === "stored").map((m) => m.text);
    expect(stored.sort()).toEqual(Array.from({ length: 600 }, (_, i) => `m${i}`).sort());
    // Per-sender order on each session: stored ones (in order) before the live one.
    for (const got of [gotA, gotB]) {
      const nums = got.filter((m) => m.kind === "stored").map((m) => Number(m.text.slice(1)));
      expect(nums).toEqual([...nums].sort((x, y) => x - y));
      expect(got.at(-1)?.text).toBe("live after");
    }
    expect(await c.store.pendingCount()).toBe(0);
  });

  test("the taker drops mid-way without acknowledging: the rest goes to the next session", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const bob = await c.client("bob");
    for (let i = 0; i < 300; i++) bob.send(alice.id, `m${i}`);
    await bob.ping();
    // A raw taker that asked for acknowledged delivery, takes one batch (256) and dies.
    const taker = await RawSession.login(c.server.port, alice, "127.0.0.1", [session("all"), ack0]);
    const first: string[] = [];
    for (let i = 0; i < 10; i++) {
      const m = await taker.nextMessage();
      if (m.format === Format.C2C) first.push(text(m));
    }
    taker.send(encodeControl(ControlType.ACK, new Uint8Array([0, 0, 0, 10])));
    await taker.heartbeat();
    const next = await c.client(alice);
    const got = inbox(next);
    expect(got).toEqual([]); // the taker still holds the backlog
    taker.sock.destroy();
    await until(() => got.length === 290, 5000, "the rest on the next session");
    expect(first).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    expect(got.map((m) => m.text)).toEqual(Array.from({ length: 290 }, (_, i) => `m${i + 10}`));
  });

  test("a login with the tag of a live session replaces it at once; other tags stay", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const tag = crypto.getRandomValues(new Uint8Array(16));
    const ghost = await RawSession.login(c.server.port, alice, "127.0.0.1", [session("all", tag)]);
    ghost.sock.pause(); // a ghost: the network dropped it, the server does not know yet
    const other = await RawSession.login(c.server.port, alice, "127.0.0.1", [session("all")]);
    const again = await RawSession.login(c.server.port, alice, "127.0.0.1", [session("all", tag)]);
    ghost.sock.resume();
    expect((await ghost.expectStop()).reason).toBe("replaced by a new connection");
    expect(await other.heartbeat()).toEqual([]);
    expect(await again.heartbeat()).toEqual([]);
    expect(c.server.router.online.sessionsOf(idKey(idToBytes(alice.id)))).toHaveLength(2);
  });

  test("a SESSION split across TCP segments is awaited: the session is tagged, not untagged", async () => {
    const log = new MemoryLog();
    await using c = await startCluster({}, log);
    const alice = await c.enroll("alice");
    const untagged = await c.raw(alice);
    const sock = await FramedSocket.dial(c.server.port);
    const hs = new ClientHandshake({
      id: idToBytes(alice.id),
      key: alice.key,
      pinnedServerKey: alice.serverKey,
    });
    sock.writeFrame(await hs.respond(await sock.nextFrame()));
    const frame = hs.sealEarly(session("all"));
    sock.write(frame.subarray(0, 5)); // the rest is late: the response is verified meanwhile
    const waiting = () => log.find("first frame incomplete; waiting for the rest").length > 0;
    await until(waiting, 3000, "the server to verify the response and wait for the rest");
    sock.write(frame.subarray(5));
    hs.finish(await sock.nextFrame()); // CONFIG: logged in
    // Tagged, so the untagged session was not replaced…
    expect(await untagged.heartbeat()).toEqual([]);
    expect(c.server.router.online.sessionsOf(idKey(idToBytes(alice.id)))).toHaveLength(2);
    sock.destroy();
  });

  test("untagged (legacy) logins replace each other as before, and leave tagged sessions alone", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const tagged = await c.client(alice);
    const first = await c.raw(alice);
    const second = await c.raw(alice);
    expect((await first.expectStop()).reason).toBe("replaced by a new connection");
    expect(await second.heartbeat()).toEqual([]);
    expect(tagged.connected).toBe(true);
    await tagged.ping();
  });

  test("past max_sessions_per_client a new login is refused; a same-tag replacement is not", async () => {
    await using c = await startCluster({ max_sessions_per_client: 2 });
    const alice = await c.enroll("alice");
    const tag = crypto.getRandomValues(new Uint8Array(16));
    const a = await c.client(alice, { session: { tag } });
    const b = await c.client(alice);
    const err = await rejected(c.client(alice));
    expectError(err, HandshakeError, { code: "TOO_MANY_SESSIONS" });
    expect((err as Error).message).toBe("too many sessions");
    const a2 = await c.client(alice, { session: { tag } });
    await a.closed;
    expect(a2.connected && b.connected).toBe(true);
    expect(c.server.router.online.sessionCount).toBe(2);
  });

  test("too many sessions is final: connect() rejects at once however long it may wait, and a reconnect refused so closes the client", async () => {
    await using c = await startCluster({ max_sessions_per_client: 1 });
    const alice = await c.enroll("alice");
    const first = await c.client(alice, { backoff: { initialMs: 2000, maxMs: 2000 } });
    // waitForServer is for an unreachable server, not for a refusal only a person can lift.
    const err = await rejected(c.client(alice, { waitForServer: 600_000 }));
    expectError(err, HandshakeError, { code: "TOO_MANY_SESSIONS" });
    // The first one's connection drops; another session takes the only place before it
    // is back: its reconnect is refused, and it ends with that error instead of looping.
    const events: string[] = [];
    first.on("reconnecting", ({ error }) => events.push(`reconnecting ${error?.message ?? ""}`));
    const closed = new Promise<Error | undefined>((resolve) =>
      first.on("close", ({ error }) => resolve(error)),
    );
    const lost = new Promise<void>((resolve) => first.once("disconnect", () => resolve()));
    for (const conn of c.server.router.online.values())
      if (conn.idText === alice.id) conn.stop("slow consumer");
    await lost;
    await until(() => c.server.router.online.sessionCount === 0, 3000, "the place free");
    const second = await c.client(alice, { session: false });
    expect(second.connected).toBe(true);
    expectError(await closed, HandshakeError, { code: "TOO_MANY_SESSIONS" });
    expect(events).toEqual(["reconnecting "]); // the one after the drop; none after the refusal
    expect(second.connected).toBe(true);
  });

  test("revocation stops every session of the client", async () => {
    await using c = await startCluster();
    const alice = await c.enroll("alice");
    const sessions = [
      await c.client(alice),
      await c.client(alice, { session: { receive: "none" } }),
      await c.client(alice, { session: false }),
    ];
    const stops: string[] = [];
    for (const s of sessions) s.on("disconnect", (e) => stops.push(e.reason));
    await c.server.revoke(alice.id);
    await Promise.all(sessions.map((s) => s.closed));
    expect(stops).toEqual(["revoked", "revoked", "revoked"]);
    expect(c.server.router.online.sessionCount).toBe(0);
  });
});
