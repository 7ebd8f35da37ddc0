/**
 * The registry's and the offline queue's tables in the embedded SQLite store
 * (sqlite.ts): the schema (with the triggers that keep each recipient's totals), the
 * rows of `clients` as `ClientRecord`s, and the prepared statements the store runs.
 * Rooms and the E2E key directory have tables of their own (sqlite-rooms.ts,
 * sqlite-keys.ts).
 */
import type { Database } from "bun:sqlite";
import { StoreError } from "../errors.ts";
import type { ClientRecord } from "./store.ts";

/** Kept in `meta` (`schema`); a store of another version is not opened. */
export const SCHEMA_VERSION = 1;

/** The registry, the queue with its running totals, and the nodes' leases. */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  name_key    TEXT NOT NULL UNIQUE,
  public_key  BLOB NOT NULL,
  fingerprint TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER,
  last_seen   INTEGER,
  online      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS queue (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient  TEXT NOT NULL,
  sender     TEXT NOT NULL,
  queued_at  INTEGER NOT NULL,
  data       BLOB NOT NULL,
  room       TEXT
);
CREATE INDEX IF NOT EXISTS queue_by_recipient ON queue (recipient, seq);
CREATE INDEX IF NOT EXISTS queue_by_age ON queue (queued_at);
-- Running totals per recipient and per (recipient, sender), kept by triggers so a bound
-- check is one row read, not a scan.
-- Server nodes' leases (liveness) and the revocation serial each has carried out.
CREATE TABLE IF NOT EXISTS nodes (
  node TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
  renewed_at INTEGER NOT NULL, until INTEGER NOT NULL, applied_serial INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
  recipient TEXT PRIMARY KEY, count INTEGER NOT NULL, bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox_sender (
  recipient TEXT NOT NULL, sender TEXT NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (recipient, sender)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS queue_in AFTER INSERT ON queue BEGIN
  INSERT INTO inbox VALUES (NEW.recipient, 1, length(NEW.data))
    ON CONFLICT (recipient) DO UPDATE SET count = count + 1, bytes = bytes + length(NEW.data);
  INSERT INTO inbox_sender VALUES (NEW.recipient, NEW.sender, 1)
    ON CONFLICT (recipient, sender) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_out AFTER DELETE ON queue BEGIN
  UPDATE inbox SET count = count - 1, bytes = bytes - length(OLD.data) WHERE recipient = OLD.recipient;
  UPDATE inbox_sender SET count = count - 1 WHERE recipient = OLD.recipient AND sender = OLD.sender;
END;
`;

/** A row of `clients`. */
export interface ClientRow {
  id: string;
  name: string;
  public_key: Uint8Array;
  fingerprint: string;
  created_at: number;
  revoked_at: number | null;
  last_seen: number | null;
  online: number;
}

export function toRecord(row: ClientRow): ClientRecord {
  return {
    id: row.id,
    name: row.name,
    publicKey: row.public_key,
    fingerprint: row.fingerprint,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastSeen: row.last_seen,
    online: row.online === 1,
  };
}

/** A failed INSERT into `clients`, as the store's error codes. */
export function registrationError(cause: unknown, c: { id: string; name: string }): StoreError {
  const msg = String((cause as Error).message);
  if (msg.includes("clients.name_key"))
    return new StoreError("NAME_TAKEN", `the name "${c.name}" is already taken`);
  if (msg.includes("clients.id"))
    return new StoreError("ID_TAKEN", `the ID ${c.id} is already registered`);
  return new StoreError("STORE_WRITE", `cannot register client: ${msg}`, { cause });
}

/** The statements the store runs, prepared once per connection (finalized at close). */
export function prepare(db: Database) {
  const columns = "id, name, public_key, fingerprint, created_at, revoked_at, last_seen, online";
  return {
    insertClient: db.prepare(
      "INSERT INTO clients (id, name, name_key, public_key, fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    importClient: db.prepare(
      "INSERT INTO clients (id, name, name_key, public_key, fingerprint, created_at, revoked_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    byId: db.prepare(`SELECT ${columns} FROM clients WHERE id = ?`),
    byName: db.prepare(`SELECT ${columns} FROM clients WHERE name_key = ?`),
    all: db.prepare(`SELECT ${columns} FROM clients ORDER BY created_at, name`),
    count: db.prepare("SELECT COUNT(*) AS n FROM clients WHERE revoked_at IS NULL"),
    revoke: db.prepare("UPDATE clients SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
    presence: db.prepare("UPDATE clients SET last_seen = ?, online = ? WHERE id = ?"),
    resetPresence: db.prepare("UPDATE clients SET online = 0 WHERE online = 1"),
    inbox: db.prepare("SELECT count, bytes FROM inbox WHERE recipient = ?"),
    inboxSender: db.prepare("SELECT count FROM inbox_sender WHERE recipient = ? AND sender = ?"),
    insertMessage: db.prepare(
      "INSERT INTO queue (recipient, sender, queued_at, data, room) VALUES (?, ?, ?, ?, ?)",
    ),
    peek: db.prepare(
      "SELECT seq, sender, queued_at AS queuedAt, data, room FROM queue WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?",
    ),
    remove: db.prepare("DELETE FROM queue WHERE recipient = ? AND seq <= ?"),
    expire: db.prepare("DELETE FROM queue WHERE queued_at < ?"),
    pending: db.prepare("SELECT COALESCE(SUM(count), 0) AS n FROM inbox"),
    recipients: db.prepare("SELECT recipient FROM inbox WHERE count > 0"),
    dataVersion: db.prepare("PRAGMA data_version"),
    health: db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('health', ?)"),
    raiseSerial: db.prepare(
      "INSERT INTO meta (key, value) VALUES ('revocations', '1') ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
    ),
    serial: db.prepare("SELECT value FROM meta WHERE key = 'revocations'"),
    dropFrom: db.prepare("DELETE FROM queue WHERE sender = ?"),
    lease: db.prepare("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?)"),
    leases: db.prepare(
      "SELECT node, host, pid, renewed_at AS renewedAt, until, applied_serial AS appliedSerial FROM nodes",
    ),
  };
}
