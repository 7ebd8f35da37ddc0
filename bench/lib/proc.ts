/** Process helpers for the benchmarks: spawn with line readers, CPU and RSS from /proc. */
import { readFileSync } from "node:fs";
import type { Subprocess } from "bun";

const CLK_TCK = 100; // Linux USER_HZ

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
/**
 * With BENCH_PROFILE=<dir>: Bun's flags to write a Markdown CPU profile of the process
 * (`name`-<pid>.md) into that directory when it exits (docs/BENCHMARKS.md).
 */
export function profileFlags(name: string): string[] {
  const dir = process.env.BENCH_PROFILE;
  return dir
    ? ["--cpu-prof-md", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${Date.now()}.md`]
    : [];
}

export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident set size of a process in bytes, from /proc/PID/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Measures a process's CPU (cores used) and peak RSS while `task` runs. */
export async function measure<T>(
  pid: number,
  task: () => Promise<T>,
): Promise<{ result: T; cores: number; rssPeak: number; seconds: number }> {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  let rssPeak = rssBytes(pid);
  const timer = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssBytes(pid));
  }, 100);
  try {
    const result = await task();
    const seconds = (performance.now() - t0) / 1000;
    return { result, cores: (cpuSeconds(pid) - cpu0) / seconds, rssPeak, seconds };
  } finally {
    clearInterval(timer);
  }
}

export interface Spawned {
  proc: Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  /** Resolves with the first stdout line matching `re`. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  lines: string[];
  kill(signal?: number | NodeJS.Signals): Promise<void>;
}

/** Spawns a command, collecting stdout lines; stderr is passed through when `verbose`. */
export function spawn(
  cmd: string[],
  opts: { env?: Record<string, string>; verbose?: boolean } = {},
): Spawned {
  const proc = Bun.spawn(cmd, {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, out: boolean) => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (out) {
          lines.push(line);
          for (const w of [...waiters]) {
            const m = line.match(w.re);
            if (m) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(m);
            }
          }
        } else if (opts.verbose) process.stderr.write(`  | ${line}\n`);
        nl = buf.indexOf("\n");
      }
    }
  };
  void pump(proc.stdout, true);
  void pump(proc.stderr, false);
  return {
    proc,
    lines,
    waitFor(re, ms = 30_000) {
      const hit = lines.map((l) => l.match(re)).find(Boolean);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${re} from ${cmd.join(" ")}`)),
          ms,
        );
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
        void proc.exited.then((code) =>
          reject(new Error(`${cmd[1] ?? cmd[0]} exited (${code}) before printing ${re}`)),
        );
      });
    },
    async kill(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      await proc.exited;
    },
  };
}
