/**
 * Runs the server's DescriptorGuard in a process that really runs out of descriptors
 * without any connection (RLIMIT_NOFILE lowered to 64, then /dev/null opened until
 * EMFILE), as descriptors the guard does not count would: prints one JSON line with
 * what `check` answered before, while and after, and what was logged.
 *
 *   bun test/helpers/fd-exhaust.ts
 */

import { dlopen, FFIType, ptr } from "bun:ffi";
import { closeSync, openSync } from "node:fs";
import { StructuredLogger } from "../../src/log.ts";
import { DescriptorGuard, raiseFdLimit } from "../../src/server/fd-limit.ts";

const libc = dlopen("libc.so.6", {
  setrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
});
libc.symbols.setrlimit(7, ptr(new BigUint64Array([64n, 64n]))); // RLIMIT_NOFILE
const lines: string[] = [];
const log = new StructuredLogger({ format: "json", write: (l) => lines.push(l.trim()) });
const guard = new DescriptorGuard(raiseFdLimit(), 0, log);
const before = guard.check(0);
const held: number[] = [];
for (;;) {
  try {
    held.push(openSync("/dev/null", "r"));
  } catch {
    break;
  }
}
const out = guard.check(0);
const stillOut = guard.check(0);
for (const fd of held.splice(0, 4)) closeSync(fd);
const after = guard.check(0);
if (after === "resume") guard.resumed(0);
for (const fd of held) closeSync(fd);
process.stdout.write(
  `${JSON.stringify({ before, out, stillOut, after, paused: guard.paused, log: lines.map((l) => JSON.parse(l)) })}\n`,
);
