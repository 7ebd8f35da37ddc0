/**
 * A real redis-server for a test: its own free loopback port and temp directory, never a
 * shared or fixed one. Needs Debian's redis-server (installed by .ci/run).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

/** How long redis-server may take to accept connections. */
const START_TIMEOUT_MS = 10_000;

export interface RedisServer extends AsyncDisposable {
  port: number;
  url: string;
  dir: string;
  proc: Subprocess;
  /** Stops it (SIGKILL unless `graceful`), keeping its directory for a restart. */
  stop(graceful?: boolean): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function answers(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

/** Starts redis-server; `config` adds `--key value` pairs (e.g. `{ appendonly: "yes" }`). */
export async function startRedis(config: Record<string, string> = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "backbone-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", ""];
  for (const [k, v] of Object.entries(config)) args.push(`--${k}`, v);
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    proc: undefined as unknown as Subprocess,
    async start() {
      server.proc = Bun.spawn(["redis-server", ...args], { stdout: "ignore", stderr: "ignore" });
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!(await answers(port))) {
        if (Date.now() > deadline || server.proc.exitCode !== null) {
          throw new Error(`redis-server did not start on port ${port}`);
        }
        await Bun.sleep(10);
      }
    },
    async stop(graceful = false) {
      if (server.proc.exitCode !== null || server.proc.signalCode) return;
      server.proc.kill(graceful ? "SIGTERM" : "SIGKILL");
      await server.proc.exited;
    },
    async [Symbol.asyncDispose]() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
