/**
 * Secret files on disk: private keys and identity files are written with mode 0600
 * and refused when group or others may read them, as OpenSSH does.
 */
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { KeyError } from "../errors.ts";

const CHECK_MODES = process.platform !== "win32";

/**
 * Reads a file that holds a private key. Throws `KeyError` `KEY_PERMISSIONS` when the
 * file is readable or writable by group or others (with the `chmod 600` fix), and
 * `KEY_UNREADABLE` when it cannot be read.
 */
export function readSecretFile(path: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(code);
    throw new KeyError("KEY_UNREADABLE", `cannot read ${path}: ${why}`, { cause });
  }
  if (CHECK_MODES && (mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, "0");
    throw new KeyError(
      "KEY_PERMISSIONS",
      `permissions ${octal} for '${path}' are too open: a private key must not be accessible by others (fix: chmod 600 '${path}')`,
    );
  }
  try {
    return readFileSync(path, "utf8");
  } catch (cause) {
    throw new KeyError("KEY_UNREADABLE", `cannot read ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/**
 * Writes `text` to `path` with mode 0600, atomically (a temporary file in the same
 * directory, fsynced, then renamed). With `exclusive`, an existing file is refused
 * with `KeyError` `FILE_EXISTS` instead of replaced.
 */
export function writeSecretFile(path: string, text: string, { exclusive = true } = {}): void {
  if (exclusive && exists(path)) {
    throw new KeyError("FILE_EXISTS", `${path} already exists; refusing to overwrite it`);
  }
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx", 0o600);
  } catch (cause) {
    throw new KeyError("KEY_UNWRITABLE", `cannot write ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  try {
    try {
      if (CHECK_MODES) fchmodSync(fd, 0o600);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (cause) {
    rmSync(tmp, { force: true });
    throw new KeyError("KEY_UNWRITABLE", `cannot write ${path}: ${(cause as Error).message}`, {
      cause,
    });
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
