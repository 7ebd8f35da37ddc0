/**
 * Running the stores' Lua scripts: by SHA-1 (`EVALSHA`) and, when Redis does not hold
 * the script yet (a fresh or restarted Redis: `NOSCRIPT`), by its text (`EVAL`), which
 * also loads it for the next call.
 */
import type IORedis from "ioredis";

export interface Script {
  src: string;
  sha: string;
}

/** A script and its SHA-1, as `EVALSHA` names it. */
export function script(src: string): Script {
  return { src, sha: new Bun.CryptoHasher("sha1").update(src).digest("hex") };
}

/** Runs `s` with `keys` and `args` (bytes as Buffers, numbers as text). */
export async function runScript(
  redis: IORedis,
  s: Script,
  keys: string[],
  args: (string | number | Uint8Array)[],
): Promise<unknown> {
  const argv = args.map((a) => (a instanceof Uint8Array ? Buffer.from(a) : String(a)));
  try {
    return await redis.evalsha(s.sha, keys.length, ...keys, ...argv);
  } catch (e) {
    if (!String((e as Error).message).includes("NOSCRIPT")) throw e;
    return await redis.eval(s.src, keys.length, ...keys, ...argv);
  }
}

/**
 * Runs `s` by its text (`EVAL`) every time, for a script whose calls must run in Redis
 * in the order they were issued (ROUTE, BROADCAST: per-sender order). `runScript`'s
 * fallback could reorder them: calls issued before the script was loaded fail with
 * NOSCRIPT and are sent again after later calls that already succeeded. Redis caches
 * the compiled script, so the cost is the script's bytes on the wire.
 */
export function runScriptInOrder(
  redis: IORedis,
  s: Script,
  keys: string[],
  args: (string | number | Uint8Array)[],
): Promise<unknown> {
  const argv = args.map((a) => (a instanceof Uint8Array ? Buffer.from(a) : String(a)));
  return redis.eval(s.src, keys.length, ...keys, ...argv);
}
