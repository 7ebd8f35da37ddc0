/** A `backbone serve` process for the benchmarks, with registered bench clients. */
import { join } from "node:path";
import { type Spawned, spawn } from "./proc.ts";
import { prepareData, writeBenchConfig } from "./setup.ts";

export interface BackboneProcess {
  address: string;
  pid: number;
  /** Identity texts whose server line is this server. */
  identities: string[];
  dir: string;
  /** The monitor's URL, when started with `--monitor`. */
  monitorUrl?: string;
  stop(): Promise<void>;
}

/**
 * Starts a server on a fresh data directory with `clients` registered clients;
 * `extraConfig`: more TOML lines for its config file; `extraArgs`: more `serve` arguments.
 */
export async function startBackbone(
  dir: string,
  clients: number,
  clientBits = 2048,
  extraConfig: string[] = [],
  extraArgs: string[] = [],
): Promise<BackboneProcess> {
  const data = await prepareData(dir, clients, clientBits);
  const config = writeBenchConfig(dir, extraConfig);
  // BENCH_SERVER_BUN_ARGS: extra Bun flags for the server process, e.g.
  // "--cpu-prof-md --cpu-prof-dir=/tmp/prof" to profile it (written when it exits).
  const bunArgs = (process.env.BENCH_SERVER_BUN_ARGS ?? "").split(" ").filter(Boolean);
  const server: Spawned = spawn([
    process.execPath,
    ...bunArgs,
    join(import.meta.dir, "../../src/cli/main.ts"),
    "serve",
    ...["--data", dir, "--host", "127.0.0.1", "--port", "0", "--config", config],
    ...extraArgs,
  ]);
  const m = await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  const address = `127.0.0.1:${m[1]}`;
  const monitorUrl = extraArgs.includes("--monitor")
    ? (await server.waitFor(/^monitor on (http:\/\/\S+)$/))[1]
    : undefined;
  return {
    ...(monitorUrl ? { monitorUrl } : {}),
    address,
    pid: server.proc.pid,
    identities: data.identities.map((t) => t.replace(/^server: .*$/m, `server: ${address}`)),
    dir,
    stop: () => server.kill("SIGTERM"),
  };
}
