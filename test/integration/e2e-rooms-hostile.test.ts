/**
 * End-to-end encrypted room messages (C2C type 5) from a hostile sender, against a real
 * server: whatever the frame lists, the server answers with a NOTICE that fits one
 * message and keeps the connection (docs/PROTOCOL.md § End-to-end encrypted room messages).
 */
import { describe, expect, test } from "bun:test";
import { ControlType } from "../../src/wire/message.ts";
import { encodeRoomE2E, type RoomCiphertext } from "../../src/wire/room-e2e.ts";
import { MemoryLog, startCluster } from "../helpers/cluster.ts";
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
