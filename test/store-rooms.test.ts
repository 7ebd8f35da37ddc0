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
import { roomContract } from "./helpers/room-contract.ts";

const A = "0a0a0a0a-0000-4000-8000-00000000000a";
const B = "0b0b0b0b-0000-4000-8000-00000000000b";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), "backbone-store-rooms-"));
  dirs.push(dir);
  return join(dir, "backbone.db");
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
    await s.rooms.createRoom({ name: "ops", owner: A, public: true, createdAt: 1 });
    expect((await s.rooms.getRoom("ops"))?.public).toBe(true);
    expect(await s.check()).toEqual([]);
    s.close();
  });
});
