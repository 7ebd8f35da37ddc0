/**
 * A store named the way users name it: `redis://HOST:PORT[/DB]` (or `rediss://`) for the
 * Redis store shared by several nodes, anything else a data directory holding the
 * embedded SQLite store (docs/CLUSTER.md).
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { UsageError } from "../errors.ts";
import { dataPaths } from "../server/datadir.ts";
import { isRedisUrl, RedisStore } from "./redis/store.ts";
import { SqliteStore } from "./sqlite.ts";
import type { Store } from "./store.ts";

export { isRedisUrl };

export interface OpenStoreOptions {
  /** Create the data directory (0700) and its database when missing; default true. */
  create?: boolean;
  /** Redis connection name, so that `CLIENT LIST` tells servers from other tools. */
  connectionName?: string;
}

/**
 * Opens the store `spec` names. Throws `UsageError` when a data directory is missing
 * (with `create: false`) or names a file, `StoreError` `STORE_OPEN` when the store cannot
 * be opened (Redis unreachable, database unreadable).
 */
export async function openStoreAt(spec: string, opts: OpenStoreOptions = {}): Promise<Store> {
  if (isRedisUrl(spec)) return RedisStore.open(spec, { connectionName: opts.connectionName });
  if (existsSync(spec) && !statSync(spec).isDirectory()) {
    throw new UsageError("NOT_A_DIRECTORY", `${spec} is a file, not a data directory`);
  }
  const { db } = dataPaths(spec);
  if (opts.create === false && !existsSync(db)) {
    throw new UsageError("NO_STORE", `no server data in ${spec}`);
  }
  mkdirSync(spec, { recursive: true, mode: 0o700 });
  return new SqliteStore(db);
}
