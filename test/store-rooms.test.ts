/**
 * The Store's room methods and room-marked queue rows (docs/PROTOCOL.md § Rooms: What
 * the server stores), as a contract: `roomContract` takes any backend's factory, so a
 * second backend (Redis) runs the same checks. Here: SQLite on a real file, and a store
 * made before rooms existed, upgraded in place.
 */
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { QueueLimits, Store } from "../src/store/store.ts";

const A = "0a0a0a0a-0000-4000-8000-00000000000a";
const B = "0b0b0b0b-0000-4000-8000-00000000000b";
const C = "0c0c0c0c-0000-4000-8000-00000000000c";
const OPEN: QueueLimits = {
  maxMessages: 100,
  maxBytes: 1 << 20,
  maxAge: 3600,
  maxPerSender: 2,
};

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), "backbone-store-rooms-"));
  dirs.push(dir);
  return join(dir, "backbone.db");
}

/** The contract: every backend must pass these. */
export function roomContract(name: string, open: () => Store): void {
  describe(`${name}: rooms`, () => {
    test("create, unique up to NFKC and case, owner as first member", async () => {
      const s = open();
      await s.createRoom({ name: "Ops", owner: A, public: false, createdAt: 100 });
      await expect(
        s.createRoom({ name: "ＯＰＳ", owner: B, public: true, createdAt: 101 }),
      ).rejects.toMatchObject({ code: "NAME_TAKEN" });
      expect(await s.getRoom("ops")).toEqual({
        name: "Ops",
        owner: A,
        public: false,
        createdAt: 100,
      });
      expect(await s.roomMembers("OPS")).toEqual([
        { room: "Ops", client: A, state: "member", since: 100 },
      ]);
      expect(await s.getRoom("nope")).toBeNull();
      s.close();
    });

    test("memberships: invite, join keeps arrival order, leave, last one deletes", async () => {
      const s = open();
      await s.createRoom({ name: "ops", owner: A, public: false, createdAt: 1 });
      await s.setMembership("ops", B, "invited", 2);
      await s.setMembership("ops", C, "invited", 3);
      await s.setMembership("ops", B, "member", 4); // joined after C was invited
      expect((await s.roomMembers("ops")).map((m) => [m.client, m.state, m.since])).toEqual([
        [A, "member", 1],
        [C, "invited", 3],
        [B, "member", 4],
      ]);
      expect(await s.roomsOf(C)).toEqual([{ room: "ops", client: C, state: "invited", since: 3 }]);
      await s.setRoomOwner("ops", B);
      expect((await s.getRoom("ops"))?.owner).toBe(B);
      expect(await s.setMembership("ops", A, null, 5)).toEqual({ deleted: false });
      // An invitation alone does not keep a room.
      expect(await s.setMembership("ops", B, null, 6)).toEqual({ deleted: true });
      expect(await s.getRoom("ops")).toBeNull();
      expect(await s.roomsOf(C)).toEqual([]);
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

roomContract("SqliteStore", () => new SqliteStore(tempDb()));

describe("SqliteStore made before rooms", () => {
  test("gains the rooms tables and queue.room in place; old rows read as direct", async () => {
    const path = tempDb();
    const old = new Database(path, { create: true });
    old.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('schema', '1');
      CREATE TABLE queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL,
        sender TEXT NOT NULL, queued_at INTEGER NOT NULL, data BLOB NOT NULL);
      INSERT INTO queue (recipient, sender, queued_at, data) VALUES ('${B}', '${A}', 5, x'6869');
    `);
    old.close();
    const s = new SqliteStore(path);
    expect((await s.peek(B, 10)).map((m) => [m.sender, m.room, m.queuedAt])).toEqual([
      [A, null, 5],
    ]);
    await s.createRoom({ name: "ops", owner: A, public: true, createdAt: 1 });
    expect((await s.getRoom("ops"))?.public).toBe(true);
    expect(await s.check()).toEqual([]);
    s.close();
  });
});
