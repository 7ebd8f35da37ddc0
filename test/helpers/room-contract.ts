/**
 * The Store's room methods and room-marked queue rows (docs/PROTOCOL.md § Rooms: What
 * the server stores) as a contract any backend's factory runs: SQLite in
 * test/store-rooms.test.ts, Redis in test/store/contract.test.ts.
 */
import { describe, expect, test } from "bun:test";
import type { QueueLimits, Store } from "../../src/store/store.ts";

const A = "0a0a0a0a-0000-4000-8000-00000000000a";
const B = "0b0b0b0b-0000-4000-8000-00000000000b";
const C = "0c0c0c0c-0000-4000-8000-00000000000c";
const OPEN: QueueLimits = {
  maxMessages: 100,
  maxBytes: 1 << 20,
  maxAge: 3600,
  maxPerSender: 2,
};

/** The contract: every backend must pass these. */
export function roomContract(name: string, open: () => Store): void {
  describe(`${name}: rooms`, () => {
    test("create, unique up to NFKC and case, owner as first member", async () => {
      const s = open();
      await s.rooms.createRoom({ name: "Ops", owner: A, public: false, createdAt: 100 });
      await expect(
        s.rooms.createRoom({ name: "ＯＰＳ", owner: B, public: true, createdAt: 101 }),
      ).rejects.toMatchObject({ code: "NAME_TAKEN" });
      expect(await s.rooms.getRoom("ops")).toEqual({
        name: "Ops",
        owner: A,
        public: false,
        createdAt: 100,
      });
      expect(await s.rooms.roomMembers("OPS")).toEqual([
        { room: "Ops", client: A, state: "member", since: 100 },
      ]);
      expect(await s.rooms.getRoom("nope")).toBeNull();
      s.close();
    });

    test("memberships: invite, join keeps arrival order, leave, last one deletes", async () => {
      const s = open();
      await s.rooms.createRoom({ name: "ops", owner: A, public: false, createdAt: 1 });
      await s.rooms.setMembership("ops", B, "invited", 2);
      await s.rooms.setMembership("ops", C, "invited", 3);
      await s.rooms.setMembership("ops", B, "member", 4); // joined after C was invited
      expect((await s.rooms.roomMembers("ops")).map((m) => [m.client, m.state, m.since])).toEqual([
        [A, "member", 1],
        [C, "invited", 3],
        [B, "member", 4],
      ]);
      expect(await s.rooms.roomsOf(C)).toEqual([
        { room: "ops", client: C, state: "invited", since: 3 },
      ]);
      await s.rooms.setRoomOwner("ops", B);
      expect((await s.rooms.getRoom("ops"))?.owner).toBe(B);
      expect(await s.rooms.setMembership("ops", A, null, 5)).toEqual({ deleted: false });
      // An invitation alone does not keep a room.
      expect(await s.rooms.setMembership("ops", B, null, 6)).toEqual({ deleted: true });
      expect(await s.rooms.getRoom("ops")).toBeNull();
      expect(await s.rooms.roomsOf(C)).toEqual([]);
      s.close();
    });

    test("queue rows keep their room, share the sender's bound, and come out in order", async () => {
      const s = open();
      const data = (t: string) => new TextEncoder().encode(t);
      const r = await s.enqueue(
        B,
        [
          { sender: A, at: 10, data: data("in room"), room: "ops" },
          { sender: A, at: 11, data: data("direct") },
          { sender: A, at: 12, data: data("over"), room: "ops" }, // per-sender bound 2
        ],
        OPEN,
      );
      expect(r.map((x) => x.ok)).toEqual([true, true, false]);
      const got = await s.peek(B, 10);
      expect(
        got.map((m) => [m.sender, m.room, new TextDecoder().decode(m.data), m.queuedAt]),
      ).toEqual([
        [A, "ops", "in room", 10],
        [A, null, "direct", 11],
      ]);
      s.close();
    });
  });
}
