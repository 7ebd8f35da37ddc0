/**
 * Rooms in the embedded SQLite store (store.ts, docs/PROTOCOL.md § Rooms): the `rooms`
 * and `room_members` tables next to the registry, and the `room` column of held
 * messages. Names are matched by `nameKey`; `seq` keeps the order members came in.
 */
import type { Database } from "bun:sqlite";
import { StoreError } from "../errors.ts";
import { nameKey } from "../ids.ts";
import type { RoomMembership, RoomRecord, RoomState, RoomStore } from "./store.ts";

export const ROOMS_SCHEMA = `
-- Rooms (docs/PROTOCOL.md § Rooms): names unique up to nameKey, members and invitations.
CREATE TABLE IF NOT EXISTS rooms (
  name_key TEXT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL,
  public INTEGER NOT NULL, created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS room_members (
  room_key TEXT NOT NULL REFERENCES rooms (name_key) ON DELETE CASCADE,
  client TEXT NOT NULL, state TEXT NOT NULL, since INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (room_key, client)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS room_members_by_client ON room_members (client);
`;

interface RoomRow {
  name: string;
  owner: string;
  public: number;
  createdAt: number;
}

/** Stores made before rooms lack `queue.room`: added in place (NULL: a direct message). */
export function addRoomColumn(db: Database): void {
  const cols = db.query<{ name: string }, []>("PRAGMA table_info(queue)").all();
  if (!cols.some((c) => c.name === "room")) db.exec("ALTER TABLE queue ADD COLUMN room TEXT");
}

export class SqliteRooms implements RoomStore {
  readonly #db: Database;
  #prepared: ReturnType<typeof prepare> | null = null;

  constructor(db: Database) {
    this.#db = db;
  }

  // Prepared on first use: a read-only open of an older store has no such tables.
  get #s(): ReturnType<typeof prepare> {
    this.#prepared ??= prepare(this.#db);
    return this.#prepared;
  }

  async createRoom(r: RoomRecord): Promise<void> {
    try {
      this.#db.transaction(() => {
        this.#s.insertRoom.run(nameKey(r.name), r.name, r.owner, r.public ? 1 : 0, r.createdAt);
        this.#s.upsertMember.run(nameKey(r.name), r.owner, "member", r.createdAt);
      })();
    } catch (cause) {
      if (String((cause as Error).message).includes("rooms.name_key"))
        throw new StoreError("NAME_TAKEN", `the room "${r.name}" already exists`);
      throw new StoreError("STORE_WRITE", `cannot create room: ${(cause as Error).message}`, {
        cause,
      });
    }
  }

  async getRoom(name: string): Promise<RoomRecord | null> {
    const row = this.#s.room.get(nameKey(name)) as RoomRow | null;
    return row ? { ...row, public: row.public === 1 } : null;
  }

  async roomMembers(name: string): Promise<RoomMembership[]> {
    return this.#s.members.all(nameKey(name)) as RoomMembership[];
  }

  async roomsOf(client: string): Promise<RoomMembership[]> {
    return this.#s.roomsOf.all(client.toLowerCase()) as RoomMembership[];
  }

  async setMembership(
    name: string,
    client: string,
    state: RoomState | null,
    at: number,
  ): Promise<{ deleted: boolean }> {
    const key = nameKey(name);
    return this.#db.transaction(() => {
      if (state) {
        this.#s.upsertMember.run(key, client.toLowerCase(), state, at);
        return { deleted: false };
      }
      this.#s.deleteMember.run(key, client.toLowerCase());
      if ((this.#s.memberCount.get(key) as { n: number }).n > 0) return { deleted: false };
      return { deleted: this.#s.deleteRoom.run(key).changes > 0 };
    })();
  }

  async setRoomOwner(name: string, owner: string): Promise<void> {
    this.#s.setOwner.run(owner.toLowerCase(), nameKey(name));
  }

  close(): void {
    for (const statement of Object.values(this.#prepared ?? {})) statement.finalize();
    this.#prepared = null;
  }
}

function prepare(db: Database) {
  return {
    insertRoom: db.prepare(
      "INSERT INTO rooms (name_key, name, owner, public, created_at) VALUES (?, ?, ?, ?, ?)",
    ),
    // `seq` keeps the order members came in; a state change (invited → member) renews it.
    upsertMember: db.prepare(
      `INSERT INTO room_members (room_key, client, state, since, seq) VALUES (?1, ?2, ?3, ?4,
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM room_members WHERE room_key = ?1))
       ON CONFLICT (room_key, client) DO UPDATE SET state = excluded.state, since = excluded.since,
         seq = excluded.seq WHERE state <> excluded.state`,
    ),
    deleteMember: db.prepare("DELETE FROM room_members WHERE room_key = ? AND client = ?"),
    memberCount: db.prepare(
      "SELECT COUNT(*) AS n FROM room_members WHERE room_key = ? AND state = 'member'",
    ),
    deleteRoom: db.prepare("DELETE FROM rooms WHERE name_key = ?"),
    setOwner: db.prepare("UPDATE rooms SET owner = ? WHERE name_key = ?"),
    room: db.prepare(
      "SELECT name, owner, public, created_at AS createdAt FROM rooms WHERE name_key = ?",
    ),
    members: db.prepare(
      `SELECT r.name AS room, m.client, m.state, m.since FROM room_members m
       JOIN rooms r ON r.name_key = m.room_key WHERE m.room_key = ? ORDER BY m.seq`,
    ),
    roomsOf: db.prepare(
      `SELECT r.name AS room, m.client, m.state, m.since FROM room_members m
       JOIN rooms r ON r.name_key = m.room_key WHERE m.client = ? ORDER BY r.name_key`,
    ),
  };
}
