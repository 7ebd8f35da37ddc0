/**
 * File descriptors: the process's limit, raised at start, and a guard that stops a
 * server from accepting before it runs out (docs/SECURITY.md § Resources).
 *
 * Out of descriptors, a listening socket stays readable while every accept() fails
 * with EMFILE, and an event loop that retries at once spins a core (43,000 failed
 * accept4 calls a second were measured). Bun gives no way to pause a listener or to
 * see those failures, so the server counts: each connection is one descriptor, on
 * top of those open when it started listening; it stops listening `RESERVE` short of
 * the limit (SQLite's temporary files, a config reload and /proc reads still need
 * some) and listens again when one frees.
 *
 * The soft RLIMIT_NOFILE is raised to the hard limit at start, as nginx
 * (`worker_rlimit_nofile`), nats-server and Go programs do, through getrlimit(2) and
 * setrlimit(2) from libc via bun:ffi (Bun itself raises it at start too, when it can;
 * this makes it explicit, and reports the figure either way).
 */
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import type { Logger } from "../log.ts";

/** Descriptors kept free for everything but connections. */
export const RESERVE = 16;

export interface FdLimit {
  /** The soft limit in force now. */
  soft: number;
  /** The hard limit (`Infinity` when unlimited). */
  hard: number;
  /** The soft limit before it was raised, when it was. */
  raisedFrom?: number;
}

const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** Raises the soft RLIMIT_NOFILE to the hard limit (capped as the OS allows); `null` when it cannot be read. */
export function raiseFdLimit(): FdLimit | null {
  try {
    return raiseWithLibc();
  } catch {
    return readProcLimits();
  }
}

function raiseWithLibc(): FdLimit | null {
  const linux = process.platform === "linux";
  const darwin = process.platform === "darwin";
  if (!linux && !darwin) return null;
  // bun:ffi is loaded only where it is used (not on Windows).
  const ffi = require("bun:ffi") as typeof import("bun:ffi");
  const lib = ffi.dlopen(linux ? "libc.so.6" : "libSystem.B.dylib", {
    getrlimit: { args: [ffi.FFIType.i32, ffi.FFIType.ptr], returns: ffi.FFIType.i32 },
    setrlimit: { args: [ffi.FFIType.i32, ffi.FFIType.ptr], returns: ffi.FFIType.i32 },
  });
  try {
    const RLIMIT_NOFILE = linux ? 7 : 8;
    const lim = new BigUint64Array(2); // struct rlimit { rlim_t rlim_cur, rlim_max }
    if (lib.symbols.getrlimit(RLIMIT_NOFILE, ffi.ptr(lim)) !== 0) return null;
    const [cur = 0n, max = 0n] = lim;
    const toNumber = (v: bigint) => (v === RLIM_INFINITY ? Number.POSITIVE_INFINITY : Number(v));
    // An unlimited hard limit is not a soft one the kernel takes: Linux caps at
    // fs.nr_open, macOS at OPEN_MAX (10240) for setrlimit (as Go's runtime does).
    let target = max;
    if (max === RLIM_INFINITY) target = darwin ? 10240n : BigInt(nrOpen());
    if (darwin && target > 10240n) target = 10240n;
    if (cur >= target) return { soft: toNumber(cur), hard: toNumber(max) };
    lim[0] = target;
    if (lib.symbols.setrlimit(RLIMIT_NOFILE, ffi.ptr(lim)) !== 0) {
      return { soft: toNumber(cur), hard: toNumber(max) };
    }
    return { soft: toNumber(target), hard: toNumber(max), raisedFrom: toNumber(cur) };
  } finally {
    lib.close();
  }
}

function nrOpen(): number {
  try {
    return Number(readFileSync("/proc/sys/fs/nr_open", "utf8").trim()) || 1_048_576;
  } catch {
    return 1_048_576;
  }
}

/** The limits as /proc/self/limits shows them (Linux), when libc cannot be called. */
function readProcLimits(): FdLimit | null {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const m = line && /Max open files\s+(\S+)\s+(\S+)/.exec(line);
    if (!m) return null;
    const n = (s: string) => (s === "unlimited" ? Number.POSITIVE_INFINITY : Number(s));
    return { soft: n(m[1] as string), hard: n(m[2] as string) };
  } catch {
    return null;
  }
}

/** How many descriptors the process has open now (`null` where it cannot tell). */
export function openDescriptors(): number | null {
  for (const dir of ["/proc/self/fd", "/dev/fd"]) {
    try {
      return readdirSync(dir).length - 1; // less the one reading the directory
    } catch {
      // not there, or out of descriptors
    }
  }
  return null;
}

/**
 * Decides when a server stops and resumes listening, from its connection count (see
 * the module docs), and logs each change once.
 *
 * @example
 * const guard = new DescriptorGuard(raiseFdLimit(), 0, log);
 * // after each open and close:
 * const act = guard.check(connections); // "pause" | "resume" | null
 */
export class DescriptorGuard {
  readonly #log: Logger;
  /** The soft limit; `null` when unknown (then the guard never acts). */
  readonly #limit: number | null = null;
  /** Descriptors open besides connections. */
  readonly #base: number = 0;
  #paused = false;

  /** Notes the limit and the descriptors open now besides `connections`; logs the figure. */
  constructor(fds: FdLimit | null, connections: number, log: Logger) {
    this.#log = log;
    const open = openDescriptors();
    if (fds && Number.isFinite(fds.soft) && open !== null) {
      this.#limit = fds.soft;
      this.#base = open - connections;
    }
    log.info("file descriptor limit", {
      soft: fds?.soft ?? "unknown",
      hard: fds?.hard ?? "unknown",
      raised_from: fds?.raisedFrom,
      open: open ?? undefined,
    });
  }

  get paused(): boolean {
    return this.#paused;
  }

  /**
   * With `connections` open: "pause" when fewer than RESERVE descriptors would be left,
   * or when none can be opened at all (EMFILE from descriptors not counted here, or
   * ENFILE: the whole system is out) — the caller stops listening; "resume" when
   * paused and there is room again (the caller listens again, then calls `resumed()`);
   * else null. Cheap: one open/close of /dev/null.
   */
  check(connections: number): "pause" | "resume" | null {
    const counted = this.#limit === null ? null : this.#base + connections;
    const full = counted !== null && this.#limit !== null && counted >= this.#limit - RESERVE;
    const exhausted = canOpen();
    if (!this.#paused && (full || exhausted !== true)) {
      this.#paused = true;
      this.#log.warn("out of file descriptors: not accepting connections until one closes", {
        open: counted ?? undefined,
        limit: this.#limit ?? undefined,
        reserve: RESERVE,
        connections,
        error: exhausted === true ? undefined : exhausted,
      });
      return "pause";
    }
    return this.#paused && !full && exhausted === true ? "resume" : null;
  }

  /** The caller listens again. */
  resumed(connections: number): void {
    this.#paused = false;
    this.#log.info("accepting connections again", {
      open: this.#base + connections,
      limit: this.#limit ?? undefined,
    });
  }
}

/** Whether a descriptor can be opened now: `true`, or the error code (EMFILE, ENFILE). */
function canOpen(): true | string {
  let fd: number;
  try {
    fd = openSync("/dev/null", "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    return code === "EMFILE" || code === "ENFILE" ? code : true; // no /dev/null (Windows): count only
  }
  closeSync(fd);
  return true;
}
