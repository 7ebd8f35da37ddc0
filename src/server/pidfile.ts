/**
 * `DIR/serve.pid`: the process ID of the server running on a data directory, so that a
 * second server, or a `migrate` of the same store, can refuse to run beside it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The pid file of a data directory. */
export function pidFilePath(dir: string): string {
  return join(dir, "serve.pid");
}

/** The pid of a live server on `dir` (not this process), or null. */
export function runningServerPid(dir: string): number | null {
  const path = pidFilePath(dir);
  if (!existsSync(path)) return null;
  let pid: number;
  try {
    pid = Number(readFileSync(path, "utf8").trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  return isAlive(pid) ? pid : null;
}

/** Whether a process `pid` exists (signal 0; EPERM means it exists under another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
