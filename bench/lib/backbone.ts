/** A `backbone serve` process for the benchmarks, with registered bench clients. */
import { join } from "node:path";
import { profileFlags, type Spawned, spawn } from "./proc.ts";
import { prepareData, writeBenchConfig } from "./setup.ts";

export interface BackboneProcess {
  address: string;
  pid: number;
  /** Identity texts whose server line is this server. */
  identities: string[];
  dir: string;
  /** The monitor's URL, when started with `--monitor`. */
  monitorUrl?: string;
  /**
   * Runs a full GC in the server and returns its memory after it (bytes), when started
   * with `gcHook` (bench/lib/gc-preload.ts).
   */
  gc?: () => Promise<GcReading>;
  /** The server's GC reading number `n` (asked by someone else), when started with `gcHook`. */
  gcReading?: (n: number) => Promise<GcReading>;
  stop(): Promise<void>;
}

/**
 * Starts a server on a fresh data directory with `clients` registered clients;
 * `extraConfig`: more TOML lines for its config file; `extraArgs`: more `serve` arguments.
 */
/** Server memory right after a full GC (bytes); see bench/lib/gc-preload.ts. */
export interface GcReading {
  heap: number;
  extra: number;
  rss: number;
}

export async function startBackbone(
  dir: string,
  clients: number,
  clientBits = 2048,
  extraConfig: string[] = [],
  extraArgs: string[] = [],
  opts: { gcHook?: boolean } = {},
): Promise<BackboneProcess> {
  const data = await prepareData(dir, clients, clientBits);
  const config = writeBenchConfig(dir, extraConfig);
  // BENCH_SERVER_BUN_ARGS: extra Bun flags for the server process, e.g.
  // "--cpu-prof-md --cpu-prof-dir=/tmp/prof" to profile it (written when it exits).
  // BENCH_SERVER_STDERR=1: the server's stderr is passed through (e.g. with
  // BUN_JSC_logGC=1 in the environment, JavaScriptCore's log of every GC and its pauses).
  const bunArgs = (process.env.BENCH_SERVER_BUN_ARGS ?? "").split(" ").filter(Boolean);
  const server: Spawned = spawn(
    [
      process.execPath,
      ...profileFlags("server"),
      ...bunArgs,
      ...(opts.gcHook ? ["--preload", join(import.meta.dir, "gc-preload.ts")] : []),
      join(import.meta.dir, "../../src/cli/main.ts"),
      "serve",
      ...["--data", dir, "--host", "127.0.0.1", "--port", "0", "--config", config],
      ...extraArgs,
    ],
    { verbose: process.env.BENCH_SERVER_STDERR === "1" },
  );
  const m = await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  const address = `127.0.0.1:${m[1]}`;
  const monitorUrl = extraArgs.includes("--monitor")
    ? (await server.waitFor(/^monitor on (http:\/\/\S+)$/))[1]
    : undefined;
  const gcReading = async (n: number): Promise<GcReading> =>
    JSON.parse(
      (await server.waitFor(new RegExp(`^bench-gc ${n} (\\{.*\\})$`), 60_000))[1] as string,
    );
  let asked = 0;
  const gc = async (): Promise<GcReading> => {
    asked = Math.max(asked, server.lines.filter((l) => l.startsWith("bench-gc ")).length) + 1;
    server.proc.kill("SIGUSR2");
    return gcReading(asked);
  };
  return {
    ...(monitorUrl ? { monitorUrl } : {}),
    ...(opts.gcHook ? { gc, gcReading } : {}),
    address,
    pid: server.proc.pid,
    identities: data.identities.map((t) => t.replace(/^server: .*$/m, `server: ${address}`)),
    dir,
    stop: () => server.kill("SIGTERM"),
  };
}
