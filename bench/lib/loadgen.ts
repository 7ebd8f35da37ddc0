/** Runs one load-generator process and measures the server while it works. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cpuSeconds, profileFlags, rssBytes, spawn } from "./proc.ts";

export interface LoadResult {
  /** What the load generator printed (its JSON result). */
  result: Record<string, number>;
  /** Server CPU in cores over the measured window. */
  cores: number;
  /** Server RSS at the end of the window, bytes. */
  rss: number;
}

/**
 * Starts `bench/<script>` with `config`; once it prints `ready`, waits `warmup`
 * seconds, then measures the server (`serverPid`) until the result line arrives.
 */
export async function runLoad(
  script: string,
  config: Record<string, unknown>,
  serverPid: number,
  opts: { dir: string; warmup: number; timeoutSeconds: number },
): Promise<LoadResult> {
  const file = join(opts.dir, `load-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  const gen = spawn(
    [process.execPath, ...profileFlags("loadgen"), join(import.meta.dir, "..", script), file],
    { verbose: true },
  );
  try {
    await gen.waitFor(/^ready$/, opts.timeoutSeconds * 1000);
    await Bun.sleep(opts.warmup * 1000);
    const cpu0 = cpuSeconds(serverPid);
    const t0 = performance.now();
    let rss = rssBytes(serverPid);
    const sampler = setInterval(() => {
      rss = Math.max(rss, rssBytes(serverPid));
    }, 200);
    const line = await gen
      .waitFor(/^\{.*\}$/, opts.timeoutSeconds * 1000)
      .finally(() => clearInterval(sampler));
    if (process.env.BENCH_DEBUG) console.log(script, line[0]);
    const seconds = (performance.now() - t0) / 1000;
    return { result: JSON.parse(line[0]), cores: (cpuSeconds(serverPid) - cpu0) / seconds, rss };
  } finally {
    // The load generator closes its clients and exits once done: let it (bounded), so
    // that its receivers acknowledge what they got — killed at once, the server redelivers
    // what was not yet acknowledged (at-least-once) into the next run: 326k messages
    // after a relay run of 100 pairs with records (measured). A profiled one also writes
    // its profile as it exits.
    await Promise.race([gen.proc.exited, Bun.sleep(10_000)]);
    await gen.kill("SIGKILL");
  }
}
