/**
 * The server's data directory: its key pair and the SQLite store.
 *
 *   DIR/server.key    PKCS#8 PEM private key (0600)
 *   DIR/server.pub    SPKI PEM public key (what clients pin)
 *   DIR/backbone.db   registry and offline queue (SQLite, WAL)
 *   DIR/config.toml   optional settings, read by `serve` when present
 *   DIR/serve.pid     the running server's process ID
 *
 * The directory must belong to this user and not be writable by group or others;
 * files are written without following symbolic links (src/store/files.ts).
 */
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { readSecretFile, writeSecretFile } from "../crypto/keyfile.ts";
import { fromPem, toPem } from "../crypto/pem.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../crypto/rsa.ts";
import { UsageError } from "../errors.ts";
import { checkDataDir, refuseSymlink, writeFileNoFollow } from "../store/files.ts";
import { SqliteStore } from "../store/sqlite.ts";

export interface DataPaths {
  dir: string;
  key: string;
  pub: string;
  db: string;
  config: string;
}

export function dataPaths(dir: string): DataPaths {
  return {
    dir,
    key: join(dir, "server.key"),
    pub: join(dir, "server.pub"),
    db: join(dir, "backbone.db"),
    config: join(dir, "config.toml"),
  };
}

/**
 * The default data directory: `$BACKBONE_DATA`, else the per-user data directory
 * (`$XDG_DATA_HOME/backbone`, `~/.local/share/backbone`; macOS `~/Library/Application
 * Support/backbone`; Windows `%LOCALAPPDATA%\backbone`).
 */
export function defaultDataDir(env: Record<string, string | undefined> = process.env): string {
  if (env.BACKBONE_DATA) return env.BACKBONE_DATA;
  if (process.platform === "win32") {
    return join(env.LOCALAPPDATA ?? join(homedir(), "AppData", "Local"), "backbone");
  }
  if (process.platform === "darwin")
    return join(homedir(), "Library", "Application Support", "backbone");
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "backbone");
}

/**
 * Loads the server key from `dir`, creating the directory (0700) and a new key pair
 * of `bits` when there is none. `onCreate` runs before the (slow) key generation.
 */
export async function loadOrCreateServerKey(
  dir: string,
  opts: { bits?: number; onCreate?: () => void } = {},
): Promise<{ key: RsaPrivateKey; created: boolean; paths: DataPaths }> {
  const paths = dataPaths(dir);
  if (existsSync(paths.key)) {
    checkDataDir(dir);
    const key = await RsaPrivateKey.fromPkcs8(fromPem(readSecretFile(paths.key), "PRIVATE KEY"));
    return { key, created: false, paths };
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new UsageError(
      "DATA_DIR",
      `cannot create data directory ${dir}: ${(cause as Error).message}`,
      { cause },
    );
  }
  checkDataDir(dir);
  refuseSymlink(paths.key); // a dangling link: the key "is missing", but nothing is written through it
  opts.onCreate?.();
  const pair = await generateRsaKeyPair(opts.bits);
  writeSecretFile(paths.key, toPem("PRIVATE KEY", pair.privatePkcs8));
  writeFileNoFollow(paths.pub, toPem("PUBLIC KEY", pair.publicSpki), 0o644);
  return { key: await RsaPrivateKey.fromPkcs8(pair.privatePkcs8), created: true, paths };
}

/** Loads the server key of an existing data directory. Throws `UsageError` `NO_SERVER`. */
export async function loadServerKey(dir: string): Promise<RsaPrivateKey> {
  const paths = dataPaths(dir);
  if (!existsSync(paths.key)) {
    throw new UsageError(
      "NO_SERVER",
      `no server in ${dir} (run "backbone serve" or "backbone keygen" there first)`,
    );
  }
  checkDataDir(dir);
  return RsaPrivateKey.fromPkcs8(fromPem(readSecretFile(paths.key), "PRIVATE KEY"));
}

/**
 * Opens the store of a data directory (files 0600, never through a symbolic link).
 * Throws `UsageError` `DATA_DIR_UNSAFE` for a directory another user could change.
 */
export function openStore(dir: string): SqliteStore {
  checkDataDir(dir);
  return new SqliteStore(dataPaths(dir).db);
}
