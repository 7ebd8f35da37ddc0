/**
 * The E2E key directory in the embedded SQLite store (store.ts `KeyStore`): two tables
 * next to the registry. A one-time prekey is handed out by one `DELETE … RETURNING`,
 * so two fetchers can never get the same one.
 */
import type { Database } from "bun:sqlite";
import type { ExportedKeys, KeyStore } from "./store.ts";

export const KEYS_SCHEMA = `
CREATE TABLE IF NOT EXISTS e2e_bundles (
  owner         TEXT PRIMARY KEY,
  identity      BLOB NOT NULL,
  head          BLOB NOT NULL,
  max_prekey_id INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS e2e_prekeys (
  owner  TEXT NOT NULL,
  key_id INTEGER NOT NULL,
  entry  BLOB NOT NULL,
  PRIMARY KEY (owner, key_id)
) WITHOUT ROWID;
`;

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export class SqliteKeyStore implements KeyStore {
  readonly #db: Database;
  #prepared: ReturnType<typeof prepare> | null = null;

  constructor(db: Database) {
    this.#db = db;
  }

  // Prepared on first use: a read-only open of an older store has no such tables.
  get #q(): ReturnType<typeof prepare> {
    this.#prepared ??= prepare(this.#db);
    return this.#prepared;
  }

  async publishKeys(
    owner: string,
    bundle: {
      identity: Uint8Array;
      head: Uint8Array;
      oneTime: { id: number; entry: Uint8Array }[];
    },
    replace: boolean,
    maxOneTime: number,
  ): Promise<{ ok: true; oneTime: number } | { ok: false; error: string }> {
    const id = owner.toLowerCase();
    return this.#db.transaction(() => {
      const row = this.#q.bundle.get(id) as { identity: Uint8Array; max_prekey_id: number } | null;
      const now = Math.floor(Date.now() / 1000);
      const ids = bundle.oneTime.map((k) => k.id);
      const top = ids.length ? Math.max(...ids) : 0;
      if (replace || !row) {
        if (bundle.oneTime.length > maxOneTime) return { ok: false as const, error: "too_many" };
        // Re-publishing the same identity keeps the rule that old prekey IDs never return.
        const floor = row && equal(row.identity, bundle.identity) ? row.max_prekey_id : -1;
        if (ids.some((k) => k <= floor)) return { ok: false as const, error: "stale_prekey" };
        this.#q.deletePrekeys.run(id);
        this.#q.upsert.run(id, bundle.identity, bundle.head, Math.max(top, floor, 0), now);
      } else {
        if (!equal(row.identity, bundle.identity)) {
          return { ok: false as const, error: "identity_mismatch" };
        }
        if (ids.some((k) => k <= row.max_prekey_id)) {
          return { ok: false as const, error: "stale_prekey" };
        }
        const held = (this.#q.count.get(id) as { n: number }).n;
        if (held + bundle.oneTime.length > maxOneTime)
          return { ok: false as const, error: "too_many" };
        this.#q.upsert.run(id, bundle.identity, bundle.head, Math.max(top, row.max_prekey_id), now);
      }
      for (const k of bundle.oneTime) this.#q.insertPrekey.run(id, k.id, k.entry);
      return { ok: true as const, oneTime: (this.#q.count.get(id) as { n: number }).n };
    })();
  }

  async takeKeys(
    owner: string,
  ): Promise<{ head: Uint8Array; oneTime: Uint8Array | null; remaining: number } | null> {
    const id = owner.toLowerCase();
    return this.#db.transaction(() => {
      const row = this.#q.bundle.get(id) as { head: Uint8Array } | null;
      if (!row) return null;
      const taken = this.#q.take.get(id, id) as { entry: Uint8Array } | null;
      const remaining = (this.#q.count.get(id) as { n: number }).n;
      return { head: row.head, oneTime: taken?.entry ?? null, remaining };
    })();
  }

  async countKeys(owner: string): Promise<number | null> {
    const id = owner.toLowerCase();
    if (!this.#q.bundle.get(id)) return null;
    return (this.#q.count.get(id) as { n: number }).n;
  }

  async keyIdentity(owner: string): Promise<Uint8Array | null> {
    const row = this.#q.bundle.get(owner.toLowerCase()) as { identity: Uint8Array } | null;
    return row ? new Uint8Array(row.identity) : null;
  }

  async deleteKeys(owner: string): Promise<boolean> {
    const id = owner.toLowerCase();
    return this.#db.transaction(() => {
      this.#q.deletePrekeys.run(id);
      return this.#q.deleteBundle.run(id).changes > 0;
    })();
  }

  async exportKeys(owner: string): Promise<ExportedKeys | null> {
    const id = owner.toLowerCase();
    const row = this.#q.bundle.get(id) as {
      identity: Uint8Array;
      head: Uint8Array;
      max_prekey_id: number;
    } | null;
    if (!row) return null;
    const oneTime = (this.#q.prekeys.all(id) as { key_id: number; entry: Uint8Array }[]).map(
      (k) => ({ id: k.key_id, entry: k.entry }),
    );
    return { identity: row.identity, head: row.head, maxPrekeyId: row.max_prekey_id, oneTime };
  }

  async importKeys(owner: string, k: ExportedKeys): Promise<void> {
    const id = owner.toLowerCase();
    this.#db.transaction(() => {
      this.#q.deletePrekeys.run(id);
      this.#q.upsert.run(id, k.identity, k.head, k.maxPrekeyId, Math.floor(Date.now() / 1000));
      for (const p of k.oneTime) this.#q.insertPrekey.run(id, p.id, p.entry);
    })();
  }

  /** Deletes `owner`'s bundle inside a caller's transaction (revocation). */
  deleteSync(owner: string): void {
    this.#q.deletePrekeys.run(owner.toLowerCase());
    this.#q.deleteBundle.run(owner.toLowerCase());
  }

  close(): void {
    for (const statement of Object.values(this.#prepared ?? {})) statement.finalize();
    this.#prepared = null;
  }
}

function prepare(db: Database) {
  return {
    bundle: db.prepare("SELECT identity, head, max_prekey_id FROM e2e_bundles WHERE owner = ?"),
    upsert: db.prepare(
      `INSERT INTO e2e_bundles (owner, identity, head, max_prekey_id, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (owner) DO UPDATE SET identity = excluded.identity, head = excluded.head,
         max_prekey_id = excluded.max_prekey_id, updated_at = excluded.updated_at`,
    ),
    insertPrekey: db.prepare("INSERT INTO e2e_prekeys (owner, key_id, entry) VALUES (?, ?, ?)"),
    prekeys: db.prepare("SELECT key_id, entry FROM e2e_prekeys WHERE owner = ? ORDER BY key_id"),
    count: db.prepare("SELECT COUNT(*) AS n FROM e2e_prekeys WHERE owner = ?"),
    take: db.prepare(
      `DELETE FROM e2e_prekeys WHERE owner = ? AND key_id =
         (SELECT MIN(key_id) FROM e2e_prekeys WHERE owner = ?) RETURNING entry`,
    ),
    deletePrekeys: db.prepare("DELETE FROM e2e_prekeys WHERE owner = ?"),
    deleteBundle: db.prepare("DELETE FROM e2e_bundles WHERE owner = ?"),
  };
}
