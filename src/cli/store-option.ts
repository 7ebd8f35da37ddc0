/**
 * `--store` for the commands that open the server's store (`serve`, `keygen`, `revoke`,
 * `clients`): `redis://HOST:PORT[/DB]` names the Redis store (docs/CLUSTER.md), nothing
 * the embedded SQLite store of the data directory. Also `BACKBONE_STORE`, and
 * `store = "…"` in `serve`'s config file.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { RsaPrivateKey } from "../crypto/rsa.ts";
import type { Logger } from "../log.ts";
import { openStore } from "../server/datadir.ts";
import { isRedisUrl } from "../store/open.ts";
import { RedisStore, SERVER_CONNECTION_NAME } from "../store/redis/store.ts";
import type { Store } from "../store/store.ts";
import { CliError, EXIT } from "./common.ts";

export const STORE_ARG = {
  store: {
    type: "string",
    description:
      "The store: redis://HOST:PORT[/DB] (default: the embedded store of the data directory; also BACKBONE_STORE)",
    valueHint: "URL",
  },
} as const;

/** Where `serve --store` leaves the store it runs on, for the tools given only `--data`. */
export function storeFile(dir: string): string {
  return join(dir, "store");
}

/**
 * `--store`, else `BACKBONE_STORE`, else — given the data directory — the store a server
 * on it was last started with (`DIR/store`), else undefined (the data directory's own).
 */
export function storeSpec(flag: string | undefined, dir?: string): string | undefined {
  let recorded: string | undefined;
  if (dir !== undefined && flag === undefined && process.env.BACKBONE_STORE === undefined) {
    try {
      recorded = readFileSync(storeFile(dir), "utf8").trim() || undefined;
    } catch {
      recorded = undefined;
    }
  }
  const spec = flag ?? process.env.BACKBONE_STORE ?? recorded;
  if (spec === undefined || spec === "") return undefined;
  if (!isRedisUrl(spec)) {
    throw new CliError(
      `--store: ${JSON.stringify(spec)} is not a store address (redis://HOST:PORT[/DB]); the embedded store is chosen with --data`,
      EXIT.USAGE,
    );
  }
  return spec;
}

/**
 * Opens the store a tool works on (`keygen`, `revoke`, `clients`). With Redis, a server
 * key recorded there that differs from `key` (the data directory's) is refused: the
 * identities written would pin a key no node presents.
 */
export async function openToolStore(
  dir: string,
  spec: string | undefined,
  key?: RsaPrivateKey,
): Promise<Store> {
  if (!spec) return openStore(dir);
  const store = await RedisStore.open(spec);
  try {
    const recorded = await store.recordedServerKey();
    if (key && recorded !== null && recorded !== key.publicKey.fingerprint) {
      throw new CliError(
        `the servers on ${spec} present key ${recorded}, but ${dir} holds ${key.publicKey.fingerprint}; use the data directory of a node (--data)`,
        EXIT.SERVER_KEY,
      );
    }
  } catch (err) {
    store.close();
    throw err;
  }
  return store;
}

/**
 * Opens the store `serve` runs on. With Redis: the first server records its key and a
 * server with another key refuses to start, naming both; a warning when Redis's
 * persistence can lose acknowledged messages. Several servers on one Redis are the
 * nodes of a cluster (docs/CLUSTER.md).
 */
export async function openServerStore(
  dir: string,
  spec: string | undefined,
  key: RsaPrivateKey,
  log: Logger,
): Promise<Store> {
  if (!spec) return openStore(dir);
  const store = await RedisStore.open(spec, { connectionName: SERVER_CONNECTION_NAME });
  try {
    const mine = key.publicKey.fingerprint;
    const recorded = await store.claimServerKey(mine);
    if (recorded !== mine) {
      throw new CliError(
        `the servers on ${spec} present key ${recorded}, but this one has ${mine} (in ${dir}); every server of one store must present the same key: copy server.key and server.pub from a running node's data directory`,
        EXIT.SERVER_KEY,
      );
    }
    const warning = await store.persistenceWarning();
    if (warning) log.warn(warning);
  } catch (err) {
    store.close();
    throw err;
  }
  return store;
}

/**
 * Refuses a server key made just now (`created`) for a store that already holds
 * clients — a `migrate` into a new directory, a deleted key: their identities pin the
 * old key, so a new one would lock every client out. Exit 2, with the fix.
 */
export async function refuseNewKeyForOldClients(
  dir: string,
  store: Store,
  created: boolean,
): Promise<void> {
  if (!created) return;
  const n = await store.countClients();
  if (n === 0) return;
  throw new CliError(
    `${dir} has no server key but its store holds ${n} registered client${n === 1 ? "" : "s"}, whose identities pin the old key: copy server.key and server.pub into it from the data directory they were made with (a new key would lock them all out)`,
    EXIT.USAGE,
  );
}
