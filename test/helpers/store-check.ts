/**
 * Checks on a store file after a fault, through a SQLite connection of their own
 * (as another process would see the file).
 */
import { Database } from "bun:sqlite";

/** `PRAGMA integrity_check` of the SQLite file at `path`: "ok" when sound. */
export function integrity(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query("PRAGMA integrity_check").all() as { integrity_check: string }[])
      .map((r) => r.integrity_check)
      .join("; ");
  } finally {
    db.close();
  }
}
