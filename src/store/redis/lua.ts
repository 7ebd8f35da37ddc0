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
