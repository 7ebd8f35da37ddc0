/**
 * Cluster mode (docs/CLUSTER.md): two `serve` processes on one redis-server. One sender
 * on node A floods a receiver on node A (local delivery, no Redis call) and a receiver
 * on node B (through ROUTE and B's mailbox stream), then sends probes one at a time
 * for their latency. Prints one JSON line: messages per second and latency (median,
 * p99, ms) for each route, and Redis's EVAL calls per cross-node message.
 *
 * Usage: bun bench/cluster-relay.ts [--messages M] [--probes P] (defaults 20000, 500).
 * Everything on 127.0.0.1, port 0, in temp directories; bounded in count and time.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import IORedis from "ioredis";
import { type Client, connect } from "../src/client/client.ts";
import { parseIdentity } from "../src/client/identity.ts";
import { startRedis } from "../test/helpers/redis.ts";
import { spawn } from "./lib/proc.ts";
import { prepareData, writeBenchConfig } from "./lib/setup.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const MESSAGES = arg("messages", 20_000);
const PROBES = arg("probes", 500);
const DEADLINE_MS = 180_000;
const MAIN = join(import.meta.dir, "../src/cli/main.ts");

const root = mkdtempSync(join(tmpdir(), "backbone-bench-cluster-"));
const redis = await startRedis();
const dirA = join(root, "a");
const dirB = join(root, "b");
const data = await prepareData(dirA, 3);
const migrated = Bun.spawnSync([
  process.execPath,
  MAIN,
  "migrate",
  "--from",
  dirA,
  "--to",
  redis.url,
]);
if (migrated.exitCode !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
mkdirSync(dirB, { mode: 0o700 });
for (const f of ["server.key", "server.pub"]) copyFileSync(join(dirA, f), join(dirB, f));
const config = writeBenchConfig(root, []);
const nodes = [dirA, dirB].map((dir) =>
  spawn([
    process.execPath,
    MAIN,
    "serve",
    ...["--data", dir, "--store", redis.url, "--host", "127.0.0.1", "--port", "0"],
    ...["--config", config],
  ]),
);
const deadline = setTimeout(() => {
  process.stderr.write("cluster-relay: deadline passed\n");
  process.exit(1);
}, DEADLINE_MS);
const clients: Client[] = [];
try {
  const addresses: string[] = [];
  for (const n of nodes)
    addresses.push(`127.0.0.1:${(await n.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]}`);
  const login = async (i: number, address: string) => {
    const identity = await parseIdentity(data.identities[i] as string);
    const c = await connect({ identity: { ...identity, server: address }, reconnect: false });
    clients.push(c);
    return c;
  };
  const sender = await login(0, addresses[0] as string);
  const local = await login(1, addresses[0] as string);
  const remote = await login(2, addresses[1] as string);
  const counter = new IORedis(redis.url);
  const evals = async () =>
    Number(/cmdstat_eval:calls=(\d+)/.exec(await counter.info("commandstats"))?.[1] ?? 0);
  await Bun.sleep(300); // presence settled (both nodes know where each client is)

  const result: Record<string, unknown> = { messages: MESSAGES, probes: PROBES };
  for (const [name, to] of [
    ["same_node", local],
    ["cross_node", remote],
  ] as const) {
    let got = 0;
    let waiter: (() => void) | null = null;
    let wanted = 0;
    const arrivals: number[] = [];
    to.on("message", () => {
      got++;
      arrivals.push(performance.now());
      if (waiter && got >= wanted) waiter();
    });
    const until = (n: number) =>
      new Promise<void>((resolve) => {
        wanted = n;
        if (got >= n) resolve();
        else waiter = resolve;
      });
    const before = await evals();
    const t0 = performance.now();
    const payload = new Uint8Array(64);
    for (let i = 0; i < MESSAGES; i++) {
      sender.send(to.id, payload);
      if (i % 1000 === 999) await Bun.sleep(0);
    }
    await until(MESSAGES);
    const seconds = (performance.now() - t0) / 1000;
    const evalsPerMessage = ((await evals()) - before) / MESSAGES;
    const lat: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      const start = performance.now();
      sender.send(to.id, payload);
      await until(MESSAGES + i + 1);
      lat.push((arrivals.at(-1) as number) - start);
    }
    lat.sort((a, b) => a - b);
    result[name] = {
      msgs_per_s: Math.round(MESSAGES / seconds),
      latency_ms_p50: Number((lat[Math.floor(lat.length / 2)] as number).toFixed(3)),
      latency_ms_p99: Number((lat[Math.floor(lat.length * 0.99)] as number).toFixed(3)),
      redis_evals_per_message: Number(evalsPerMessage.toFixed(3)),
    };
  }
  counter.disconnect();
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  clearTimeout(deadline);
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await Promise.all(nodes.map((n) => n.kill("SIGTERM")));
  await redis[Symbol.asyncDispose]();
  rmSync(root, { recursive: true, force: true });
}
