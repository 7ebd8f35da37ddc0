/**
 * Files in the server's data directory, handled as sshd (StrictModes) and OpenSSH's
 * key handling do (docs/SECURITY.md § Files):
 * - the directory must belong to this user and not be writable by group or others,
 *   or someone else could plant or swap files in it — refused with the fix in a
 *   one-line error;
 * - the database and its `-wal`/`-shm` files are 0600 whatever the umask: they hold
 *   stored messages;
 * - no file is written through a symbolic link: a new file is written to a temporary
 *   name opened with O_CREAT|O_EXCL|O_NOFOLLOW, then renamed over the target (rename
 *   replaces a link, never its target), and the database is refused when it or its
 *   `-wal`/`-shm` is a link.
 * On Windows (no POSIX modes) only the symlink rules apply.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeErrno, UsageError } from "../errors.ts";

const POSIX = process.platform !== "win32";
const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY, O_RDONLY } = constants;

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, "0");

/**
 * Refuses a data directory that another user could change. Throws `UsageError`
 * `DATA_DIR_UNSAFE` (one line naming the fix) or `DATA_DIR` (cannot stat).
 */
export function checkDataDir(dir: string): void {
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (cause) {
    throw new UsageError("DATA_DIR", `cannot use data directory ${dir}: ${describeErrno(cause)}`, {
      cause,
    });
  }
  if (!st.isDirectory()) {
    throw new UsageError("DATA_DIR", `data directory ${dir} is not a directory`);
  }
  if (!POSIX) return;
  const uid = process.geteuid?.() ?? -1;
  if (uid >= 0 && st.uid !== uid) {
    throw new UsageError(
      "DATA_DIR_UNSAFE",
      `data directory ${dir} is owned by uid ${st.uid}, not by this user (uid ${uid}); fix: chown ${uid} ${dir}, or use a directory of your own`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new UsageError(
      "DATA_DIR_UNSAFE",
      `data directory ${dir} is writable by group or others (mode ${octal(st.mode)}); fix: chmod go-w ${dir}`,
    );
  }
}

/**
 * Writes `data` to `path` with `mode` (exactly, whatever the umask), atomically and
 * without following a symbolic link: a temporary file in the same directory (created
 * O_EXCL|O_NOFOLLOW, fsynced) renamed over `path`. Throws `UsageError` `FILE_WRITE`.
 */
export function writeFileNoFollow(path: string, data: string, mode: number): void {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  let fd: number;
  try {
    fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  } catch (cause) {
    throw new UsageError("FILE_WRITE", `cannot write ${path}: ${describeErrno(cause)}`, { cause });
  }
  try {
    try {
      if (POSIX) fchmodSync(fd, mode);
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (cause) {
    rmSync(tmp, { force: true });
    throw new UsageError("FILE_WRITE", `cannot write ${path}: ${describeErrno(cause)}`, { cause });
  }
}

/** Throws `UsageError` `SYMLINK` when `path` is a symbolic link (dangling or not). */
export function refuseSymlink(path: string): void {
  let link = false;
  try {
    link = lstatSync(path).isSymbolicLink();
  } catch {
    // missing: fine
  }
  if (link) {
    throw new UsageError(
      "SYMLINK",
      `${path} is a symbolic link; refusing to open it (remove the link, or put the real file there)`,
    );
  }
}

/**
 * Makes a SQLite database at `path` private before SQLite opens it: refuses it (and
 * its `-wal`/`-shm`) when a symbolic link, creates it empty with mode 0600 when
 * missing (SQLite gives the `-wal` and `-shm` files it creates the database file's
 * mode), and sets 0600 on the files already there. Throws `UsageError` `DB_FILE`.
 */
export function prepareDatabaseFiles(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let st: Stats | null = null;
    try {
      st = lstatSync(file);
    } catch {
      // missing: fine
    }
    if (st?.isSymbolicLink()) {
      throw new UsageError(
        "DB_FILE",
        `${file} is a symbolic link; refusing to open it (remove the link, or put the real file there)`,
      );
    }
    if (!POSIX || (!st && file !== path)) continue;
    let fd: number;
    try {
      fd = st
        ? openSync(file, O_RDONLY | O_NOFOLLOW)
        : openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "EEXIST") continue; // created meanwhile by another process
      throw new UsageError("DB_FILE", `cannot open ${file}: ${describeErrno(cause)}`, { cause });
    }
    try {
      if (((st?.mode ?? 0o600) & 0o7777) !== 0o600 || !st) fchmodSync(fd, 0o600);
    } catch (cause) {
      throw new UsageError("DB_FILE", `cannot make ${file} private: ${describeErrno(cause)}`, {
        cause,
      });
    } finally {
      closeSync(fd);
    }
  }
}
