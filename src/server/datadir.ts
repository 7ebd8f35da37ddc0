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
import { existsSync, mkdirSync, rmdirSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { readSecretFile, writeSecretFile } from "../crypto/keyfile.ts";
import { fromPem, toPem } from "../crypto/pem.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../crypto/rsa.ts";
import { describeErrno, UsageError } from "../errors.ts";
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
 * Throws `UsageError` `DATA_DIR` when `dir` exists but is not a directory (a file given
 * to `--data`), or cannot be looked at. A missing `dir` passes. (Whether an existing
 * directory is safe to use is `checkDataDir`'s question, src/store/files.ts.)
 */
export function checkDataDirPath(dir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code === "ENOTDIR") {
      throw new UsageError("DATA_DIR", `data directory ${dir}: a part of the path is a file`);
    }
    throw new UsageError("DATA_DIR", `data directory ${dir}: ${describeErrno(cause)}`, { cause });
  }
  if (!isDir) {
    throw new UsageError("DATA_DIR", `data directory ${dir} is a file, not a directory`);
  }
}

/** What `loadOrCreateServerKey` created, so that a failed first start can undo it. */
export interface CreatedData {
  /** The outermost directory it created (with `mkdir -p`), if any. */
  dir?: string;
  /** The key files it wrote. */
  files: string[];
  /** Whether the store existed before (else a failed first start removes it too). */
  storeExisted: boolean;
}

/**
 * Loads the server key from `dir`, creating the directory (0700) and a new key pair
 * of `bits` when there is none. `onCreate` runs before the (slow) key generation.
 * `created` says what was made (`undoCreate` removes it). Throws `UsageError`
 * `DATA_DIR` when `dir` is not a usable directory.
 */
export async function loadOrCreateServerKey(
  dir: string,
  opts: { bits?: number; onCreate?: () => void } = {},
): Promise<{
  key: RsaPrivateKey;
  created: boolean;
  paths: DataPaths;
  made?: CreatedData;
}> {
  const paths = dataPaths(dir);
  checkDataDirPath(dir);
  if (existsSync(paths.key)) {
    checkDataDir(dir);
    const key = await RsaPrivateKey.fromPkcs8(fromPem(readSecretFile(paths.key), "PRIVATE KEY"));
    return { key, created: false, paths };
  }
  const made: CreatedData = { files: [], storeExisted: existsSync(paths.db) };
  try {
    const top = mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (top !== undefined) made.dir = top;
  } catch (cause) {
    throw new UsageError(
      "DATA_DIR",
      `cannot create data directory ${dir}: ${describeErrno(cause)}`,
      { cause },
    );
  }
  checkDataDir(dir);
  refuseSymlink(paths.key); // a dangling link: the key "is missing", but nothing is written through it
  opts.onCreate?.();
  const pair = await generateRsaKeyPair(opts.bits);
  writeSecretFile(paths.key, toPem("PRIVATE KEY", pair.privatePkcs8));
  made.files.push(paths.key);
  writeFileNoFollow(paths.pub, toPem("PUBLIC KEY", pair.publicSpki), 0o644);
  made.files.push(paths.pub);
  return { key: await RsaPrivateKey.fromPkcs8(pair.privatePkcs8), created: true, paths, made };
}

/**
 * Undoes a first start that failed: removes the key files `loadOrCreateServerKey` wrote,
 * the store if it did not exist before, and the directories it created (only if nothing
 * else is in them).
 */
export function undoCreate(paths: DataPaths, made: CreatedData): void {
  for (const f of made.files) rmSync(f, { force: true });
  if (!made.storeExisted) {
    for (const suffix of ["", "-wal", "-shm", "-journal"]) {
      rmSync(`${paths.db}${suffix}`, { force: true });
    }
  }
  if (made.dir === undefined) return;
  // Up from the data directory to the outermost one created; rmdir refuses a non-empty one.
  const top = resolve(made.dir);
  let d = resolve(paths.dir);
  for (;;) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
    if (d === top || dirname(d) === d) return;
    d = dirname(d);
  }
}

/** Loads the server key of an existing data directory. Throws `UsageError` `NO_SERVER`. */
export async function loadServerKey(dir: string): Promise<RsaPrivateKey> {
  const paths = dataPaths(dir);
  checkDataDirPath(dir);
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
 * Throws `UsageError` `DATA_DIR` when `dir` is not a directory, `NO_SERVER` when it does
 * not exist, `DATA_DIR_UNSAFE` when another user could change it.
 */
export function openStore(dir: string): SqliteStore {
  checkDataDirPath(dir);
  if (!existsSync(dir)) {
    throw new UsageError(
      "NO_SERVER",
      `no server in ${dir} (run "backbone serve" or "backbone keygen" there first)`,
    );
  }
  checkDataDir(dir);
  return new SqliteStore(dataPaths(dir).db);
}
