/**
 * Secret files on disk: private keys and identity files are written with mode 0600
 * and refused when group or others may read them, as OpenSSH does.
 */
import {
  closeSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeErrno, KeyError } from "../errors.ts";

const CHECK_MODES = process.platform !== "win32";

/**
 * Reads a file that holds a private key (or another secret: `what` names it in the
 * error). Throws `KeyError` `KEY_PERMISSIONS` when the
 * file is readable or writable by group or others (with the `chmod 600` fix), and
 * `KEY_UNREADABLE` when it cannot be read.
 */
export function readSecretFile(path: string, what = "a private key"): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (cause) {
    throw unreadable(path, cause);
  }
  try {
    // Mode checked on the open file, so it cannot change between the check and the read.
    const st = fstatSync(fd);
    if (st.isDirectory()) {
      throw new KeyError("KEY_UNREADABLE", `cannot read ${path}: is a directory, not a file`);
    }
    const mode = st.mode;
    if (CHECK_MODES && (mode & 0o077) !== 0) {
      const octal = (mode & 0o777).toString(8).padStart(4, "0");
      throw new KeyError(
        "KEY_PERMISSIONS",
        `permissions ${octal} for '${path}' are too open: ${what} must not be accessible by others (fix: chmod 600 '${path}')`,
      );
    }
    return readFileSync(fd, "utf8");
  } catch (cause) {
    if (cause instanceof KeyError) throw cause;
    throw unreadable(path, cause);
  } finally {
    closeSync(fd);
  }
}

function unreadable(path: string, cause: unknown): KeyError {
  return new KeyError("KEY_UNREADABLE", `cannot read ${path}: ${describeErrno(cause)}`, { cause });
}

/**
 * Writes `text` to `path` with mode 0600, atomically (a temporary file in the same
 * directory, fsynced, then renamed). With `exclusive`, an existing file is refused
 * with `KeyError` `FILE_EXISTS` instead of replaced.
 */
export function writeSecretFile(path: string, text: string, { exclusive = true } = {}): void {
  if (isDirectory(path)) {
    throw new KeyError("KEY_UNWRITABLE", `cannot write ${path}: is a directory, not a file`);
  }
  if (exclusive && exists(path)) throw existsError(path);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx", 0o600);
  } catch (cause) {
    throw unwritable(path, cause);
  }
  try {
    try {
      if (CHECK_MODES) fchmodSync(fd, 0o600);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (exclusive) {
      // link() fails if `path` appeared meanwhile: no window to overwrite it.
      linkSync(tmp, path);
      rmSync(tmp, { force: true });
    } else {
      renameSync(tmp, path);
    }
  } catch (cause) {
    rmSync(tmp, { force: true });
    if ((cause as NodeJS.ErrnoException).code === "EEXIST") throw existsError(path);
    throw unwritable(path, cause);
  }
}

/** `cannot write PATH: …` in a few words, naming the directory when it is the problem. */
function unwritable(path: string, cause: unknown): KeyError {
  const code = (cause as NodeJS.ErrnoException).code;
  const dir = dirname(path);
  const why =
    code === "EISDIR"
      ? "is a directory, not a file"
      : code === "ENOENT"
        ? `no such directory ${dir}`
        : code === "ENOTDIR"
          ? `a part of ${dir} is not a directory`
          : code === "EACCES"
            ? `permission denied (directory ${dir})`
            : describeErrno(cause);
  return new KeyError("KEY_UNWRITABLE", `cannot write ${path}: ${why}`, { cause });
}

function existsError(path: string): KeyError {
  return new KeyError("FILE_EXISTS", `${path} already exists; refusing to overwrite it`);
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
