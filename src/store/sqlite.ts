/**
 * The embedded store: one SQLite file (bun:sqlite, WAL) holding the registry and the
 * offline queue. Several processes may open it at once (the server, and the CLI's
 * keygen / revoke / clients); SQLite serialises their writes.
 *
 * Durability: WAL with synchronous=NORMAL. A committed message survives a crash of
 * the process (`kill -9`) at once, and a power loss once the WAL is checkpointed;
 * `durable: "full"` fsyncs every commit instead.
 */

import { Database } from "bun:sqlite";
import { StoreError } from "../errors.ts";
import { isUuid, nameKey } from "../ids.ts";
import { prepareDatabaseFiles } from "./files.ts";
import { KEYS_SCHEMA, SqliteKeyStore } from "./sqlite-keys.ts";
import { addRoomColumn, ROOMS_SCHEMA, SqliteRooms } from "./sqlite-rooms.ts";
import {
  type ClientRow,
  prepare,
  registrationError,
  SCHEMA,
  SCHEMA_VERSION,
  toRecord,
} from "./sqlite-schema.ts";
import {
  type ClientRecord,
  type EnqueueResult,
  type NodeLease,
  type PresenceChange,
  type QueuedMessage,
  type QueueLimits,
  queueRefusal,
  type Store,
  type StoredMessage,
} from "./store.ts";

export interface SqliteStoreOptions {
  /** `normal` (default): WAL, synchronous=NORMAL; `full`: fsync every commit. */
  durable?: "normal" | "full";
  readonly?: boolean;
}

export class SqliteStore implements Store {
  readonly path: string;
  readonly #db: Database;
  readonly #q: ReturnType<typeof prepare>;
  /** The E2E key directory (sqlite-keys.ts). */
  readonly keys: SqliteKeyStore;
  /** Rooms and memberships (sqlite-rooms.ts). */
  readonly rooms: SqliteRooms;
  /** SQLite's own page limit, restored by `setMaxBytes(0)`. */
  readonly #maxPages: number;

  /** Opens (creating when missing) the store at `path`. Throws `StoreError` `STORE_OPEN`. */
  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    // Private (0600) and never through a symbolic link: the store holds messages.
    if (!opts.readonly && path !== ":memory:" && path !== "") prepareDatabaseFiles(path);
    try {
      this.#db = new Database(path, {
        create: !opts.readonly,
        readonly: opts.readonly ?? false,
        strict: true,
      });
      this.#db.exec("PRAGMA busy_timeout = 5000");
      if (!opts.readonly) {
        this.#db.exec("PRAGMA journal_mode = WAL");
        this.#db.exec(`PRAGMA synchronous = ${opts.durable === "full" ? "FULL" : "NORMAL"}`);
        this.#db.exec("PRAGMA foreign_keys = ON");
        this.#db.transaction(() => {
          this.#db.exec(SCHEMA);
          this.#db.exec(ROOMS_SCHEMA);
          addRoomColumn(this.#db);
          this.#db.exec(KEYS_SCHEMA);
          this.#db
            .query("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)")
            .run(String(SCHEMA_VERSION));
        })();
      }
      const schema = this.#db
        .query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema'")
        .get();
      if (Number(schema?.value) !== SCHEMA_VERSION) {
        throw new Error(`unsupported schema version ${schema?.value ?? "(none)"}`);
      }
    } catch (cause) {
      throw new StoreError("STORE_OPEN", `cannot open store ${path}: ${(cause as Error).message}`, {
        cause,
      });
    }
    this.#q = prepare(this.#db);
    this.keys = new SqliteKeyStore(this.#db);
    this.rooms = new SqliteRooms(this.#db);
    this.#maxPages = this.#pragma("max_page_count");
  }

  #pragma(name: string): number {
    const row = this.#db.query(`PRAGMA ${name}`).get() as Record<string, number>;
    return row[name] as number;
  }

  /**
   * Bounds the database file to `bytes` (0: SQLite's own limit) with
   * `PRAGMA max_page_count`, for this connection's writes; a write that needs more
   * pages fails with "database or disk is full". SQLite never sets the bound below the
   * file's current size: a store already larger can still reuse its free pages, but
   * not grow. Returns the bound in bytes now in force.
   */
  setMaxBytes(bytes: number): number {
    const pageSize = this.#pragma("page_size");
    const pages = bytes > 0 ? Math.max(1, Math.floor(bytes / pageSize)) : this.#maxPages;
    this.#db.exec(`PRAGMA max_page_count = ${pages}`);
    return this.#pragma("max_page_count") * pageSize;
  }

  async addClient(c: {
    id: string;
    name: string;
    publicKey: Uint8Array;
    fingerprint: string;
  }): Promise<ClientRecord> {
    const createdAt = Math.floor(Date.now() / 1000);
    try {
      this.#q.insertClient.run(
        c.id,
        c.name,
        nameKey(c.name),
        c.publicKey,
        c.fingerprint,
        createdAt,
      );
    } catch (cause) {
      throw registrationError(cause, c);
    }
    return { ...c, createdAt, revokedAt: null, lastSeen: null, online: false };
  }

  async importClient(r: ClientRecord): Promise<void> {
    try {
      this.#q.importClient.run(
        r.id.toLowerCase(),
        r.name,
        nameKey(r.name),
        r.publicKey,
        r.fingerprint,
        r.createdAt,
        r.revokedAt,
        r.lastSeen,
      );
    } catch (cause) {
      throw registrationError(cause, r);
    }
  }

  async getClient(id: string): Promise<ClientRecord | null> {
    const row = this.#q.byId.get(id.toLowerCase()) as ClientRow | null;
    return row ? toRecord(row) : null;
  }

  async findClient(query: string): Promise<ClientRecord | null> {
    const row = (
      isUuid(query) ? this.#q.byId.get(query.toLowerCase()) : this.#q.byName.get(nameKey(query))
    ) as ClientRow | null;
    return row ? toRecord(row) : null;
  }

  async listClients(): Promise<ClientRecord[]> {
    return (this.#q.all.all() as ClientRow[]).map(toRecord);
  }

  async countClients(): Promise<number> {
    return (this.#q.count.get() as { n: number }).n;
  }

  async revokeClient(id: string, at: number): Promise<boolean> {
    // A revoked client's E2E bundle goes with it (docs/PROTOCOL.md § KEYS).
    return this.#db.transaction(() => {
      this.keys.deleteSync(id);
      const done = this.#q.revoke.run(at, id.toLowerCase()).changes > 0;
      if (done) this.#q.raiseSerial.run();
      return done;
    })();
  }

  async revocationSerial(): Promise<number> {
    return Number((this.#q.serial.get() as { value: string } | null)?.value ?? 0);
  }

  async dropFromSender(sender: string): Promise<number> {
    return this.#q.dropFrom.run(sender.toLowerCase()).changes;
  }

  async renewLease(l: NodeLease): Promise<void> {
    this.#q.lease.run(l.node, l.host, l.pid, l.renewedAt, l.until, l.appliedSerial);
  }

  async leases(): Promise<NodeLease[]> {
    return this.#q.leases.all() as NodeLease[];
  }

  async setPresence(changes: PresenceChange[]): Promise<void> {
    this.#db.transaction(() => {
      for (const c of changes) this.#q.presence.run(c.at, c.online ? 1 : 0, c.id);
    })();
  }

  async resetPresence(): Promise<void> {
    this.#q.resetPresence.run();
  }

  async enqueue(
    recipient: string,
    messages: QueuedMessage[],
    limits: QueueLimits,
  ): Promise<EnqueueResult[]> {
    const results: EnqueueResult[] = [];
    try {
      // One transaction for the lot: a commit costs ~0.1 ms here, an insert ~7 µs.
      this.#db.transaction(() => {
        for (const m of messages) results.push(this.#enqueueOne(recipient, m, limits));
      })();
      return results;
    } catch (cause) {
      const reason = `storage failure: ${(cause as Error).message}`;
      return messages.map(() => ({ ok: false, reason, failure: true }));
    }
  }

  #enqueueOne(recipient: string, m: QueuedMessage, limits: QueueLimits): EnqueueResult {
    const inbox = this.#q.inbox.get(recipient) as { count: number; bytes: number } | null;
    const count = inbox?.count ?? 0;
    const bytes = inbox?.bytes ?? 0;
    if (count >= limits.maxMessages) return queueRefusal("messages", limits);
    if (bytes + m.data.length > limits.maxBytes) return queueRefusal("bytes", limits);
    const fromSender =
      (this.#q.inboxSender.get(recipient, m.sender) as { count: number } | null)?.count ?? 0;
    if (fromSender >= limits.maxPerSender) return queueRefusal("sender", limits);
    this.#q.insertMessage.run(recipient, m.sender, m.at, m.data, m.room ?? null);
    return { ok: true };
  }

  async peek(recipient: string, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    return this.#q.peek.all(recipient, afterSeq, limit) as StoredMessage[];
  }

  async remove(recipient: string, throughSeq: number): Promise<void> {
    this.#q.remove.run(recipient, throughSeq);
  }

  async expire(before: number): Promise<number> {
    return this.#q.expire.run(before).changes;
  }

  async heldRecipients(): Promise<string[]> {
    return (this.#q.recipients.all() as { recipient: string }[]).map((r) => r.recipient);
  }

  async pendingCount(): Promise<number> {
    return (this.#q.pending.get() as { n: number }).n;
  }

  async version(): Promise<number> {
    return (this.#q.dataVersion.get() as { data_version: number }).data_version;
  }

  /** One small committed write (meta row `health`): fails on a read-only, full or failing disk. */
  async probe(): Promise<void> {
    this.#q.health.run(String(Date.now()));
  }

  async check(): Promise<string[]> {
    const rows = this.#db.query<{ integrity_check: string }, []>("PRAGMA integrity_check").all();
    return rows.map((r) => r.integrity_check).filter((r) => r !== "ok");
  }

  close(): void {
    // Prepared statements keep SQLite's connection (and its files) open after close:
    // finalize them first, so that close really releases the database, WAL and -shm.
    for (const statement of Object.values(this.#q)) statement.finalize();
    this.keys.close();
    this.rooms.close();
    this.#db.close(false);
  }
}
