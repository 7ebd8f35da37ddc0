/**
 * A small real filesystem to fill up: a tmpfs mounted for one test (root in a namespace
 * that allows mounting), used by the disk-full tests of the store and the monitor.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Runs a command; whether it succeeded and its stderr, trimmed. */
export function tryRun(...argv: string[]): { ok: boolean; err: string } {
  const r = Bun.spawnSync(argv, { stderr: "pipe" });
  return { ok: r.exitCode === 0, err: r.stderr.toString().trim() };
}

/** Whether this machine lets a test mount a tmpfs (root with mount rights). */
export const tmpfsMountable: boolean = (() => {
  const dir = mkdtempSync(join(tmpdir(), "backbone-mount-probe-"));
  try {
    const ok = tryRun("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).ok;
    if (ok) tryRun("umount", dir);
    return ok;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();

/**
 * Runs `fn` on a fresh tmpfs of `size` (mount's syntax: `2m`, mode 0700); always
 * unmounts (lazily if something still holds it) and removes the mount point. Throws
 * with mount's own words when the mount fails.
 */
export async function onTmpfs<T>(size: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "backbone-tmpfs-"));
  const mounted = tryRun("mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir);
  if (!mounted.ok) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot mount a tmpfs on ${dir}: ${mounted.err}`);
  }
  try {
    return await fn(dir);
  } finally {
    if (!tryRun("umount", dir).ok) tryRun("umount", "-l", dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes zeros to `path` until the filesystem says ENOSPC. */
export function fillDisk(path: string): void {
  const fd = openSync(path, "w");
  try {
    for (const size of [1 << 16, 1 << 10, 1]) {
      try {
        for (;;) writeSync(fd, new Uint8Array(size));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}
