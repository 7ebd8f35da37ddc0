/**
 * The client-side E2E state directory (docs/E2E.md § Client state): mode 0700, files
 * 0600, every write a temporary file + fsync + rename + directory fsync, no symlink ever
 * followed, and a lock so that two processes never use one ratchet state at once.
 *
 * Lock: `lock` created with O_CREAT|O_EXCL|O_NOFOLLOW holding the owner's PID, held for
 * one transaction (read, change, write) at a time, so several processes of one client
 * (`listen` and `send`, say) take turns and never use the state at once. A lock whose
 * PID no longer runs (kill(pid, 0) fails with ESRCH) is stale: it is removed — after
 * re-reading it to check it is still the same stale lock — and taking it is tried again.
 *
 * Rollback: every write of `state.json` carries a `generation` one higher than the last;
 * the same number is then written to a counter file kept outside the directory
 * (`<dir>.generation` by default). Opening a state whose generation is lower than the
 * counter is refused (`ROLLED_BACK`): an old ratchet state would re-use message keys —
 * and, with AES-GCM, key and nonce — and accept replays. A state one ahead of the counter
 * is a crash between the two writes and is accepted.
 */
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { describeErrno } from "../errors.ts";
import { E2EError } from "./errors.ts";

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY } = constants;
const POSIX = process.platform !== "win32";

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Creates `dir` (and parents) with mode 0700; refuses a symlink or a directory others can write. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if (errno(e) !== "EEXIST") {
      throw new E2EError("STATE_IO", `cannot create ${dir}: ${describeErrno(e)}`, { cause: e });
    }
  }
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new E2EError("STATE_UNSAFE", `${dir} is not a directory (symlinks are refused)`);
  }
  if (POSIX && typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new E2EError("STATE_UNSAFE", `${dir} belongs to another user`);
  }
  if (POSIX && (st.mode & 0o077) !== 0) {
    throw new E2EError(
      "STATE_UNSAFE",
      `permissions ${(st.mode & 0o777).toString(8)} for '${dir}' are too open (fix: chmod 700 '${dir}')`,
    );
  }
}

/** Reads a file without following a symlink; null when it does not exist. */
export function readPrivateFile(path: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    if (errno(e) === "ELOOP") throw new E2EError("STATE_UNSAFE", `${path} is a symlink (refused)`);
    throw new E2EError("STATE_IO", `cannot read ${path}: ${describeErrno(e)}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new E2EError("STATE_UNSAFE", `${path} is not a regular file`);
    if (POSIX && (st.mode & 0o077) !== 0) {
      throw new E2EError(
        "STATE_UNSAFE",
        `permissions of '${path}' are too open (fix: chmod 600 '${path}')`,
      );
    }
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

let tempCounter = 0;

/** Writes `data` to `path` atomically with mode 0600 (temp + fsync + rename + dir fsync). */
export function writePrivateFile(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${++tempCounter}`;
  let fd: number;
  try {
    fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new E2EError("STATE_IO", `cannot write ${path}: ${describeErrno(e)}`, { cause: e });
  }
  try {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {}
    throw new E2EError("STATE_IO", `cannot write ${path}: ${describeErrno(e)}`, { cause: e });
  }
  closeSync(fd);
  try {
    renameSync(tmp, path); // replaces a symlink at `path` itself, never its target
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw new E2EError("STATE_IO", `cannot write ${path}: ${describeErrno(e)}`, { cause: e });
  }
  syncDir(dirname(path));
}

function syncDir(dir: string): void {
  if (!POSIX) return;
  try {
    const fd = openSync(dir, O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {}
}

/** True when a process with `pid` exists (EPERM: it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === "EPERM";
  }
}

/** A held lock on a state directory; `release()` removes it. */
export interface StateLock {
  path: string;
  release(): void;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread for `ms` (lock waits are short, and callers may be synchronous). */
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Takes the directory's lock, waiting up to `waitMs` while a live process holds it.
 * Throws `E2EError` `LOCKED` (naming the PID) when it stays held.
 */
export function lockStateDir(dir: string, waitMs = 0): StateLock {
  const path = join(dir, "lock");
  const deadline = performance.now() + waitMs;
  let delay = 2;
  for (;;) {
    try {
      const fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          if (readLockPid(path) === process.pid) {
            try {
              unlinkSync(path);
            } catch {}
          }
        },
      };
    } catch (e) {
      if (errno(e) !== "EEXIST") {
        throw new E2EError("STATE_IO", `cannot lock ${dir}: ${describeErrno(e)}`, { cause: e });
      }
    }
    const pid = readLockPid(path);
    if (pid !== null && pidAlive(pid)) {
      if (performance.now() >= deadline) {
        throw new E2EError("LOCKED", `E2E state ${dir} is in use by process ${pid}`);
      }
      sleepSync(delay);
      delay = Math.min(delay * 2, 50);
      continue;
    }
    // Stale (its process is gone): remove it only if it is still the lock judged stale.
    if (pid !== null && readLockPid(path) === pid) {
      try {
        unlinkSync(path);
      } catch {}
    }
  }
}

function readLockPid(path: string): number | null {
  try {
    const fd = openSync(path, O_RDONLY | O_NOFOLLOW);
    try {
      const n = Number.parseInt(readFileSync(fd, "utf8").trim(), 10);
      return Number.isFinite(n) ? n : 0;
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    return 0; // unreadable or a symlink: treated as stale garbage
  }
}

/** The rollback counter (see module doc). */
export function readCounter(path: string): number | null {
  const raw = readPrivateFile(path);
  if (raw === null) return null;
  const n = Number(raw.toString("utf8").trim());
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new E2EError("STATE_CORRUPT", `${path} does not hold a generation number`);
  }
  return n;
}

export function writeCounter(path: string, generation: number): void {
  writePrivateFile(path, `${generation}\n`);
}
