/**
 * `bun run bench`: backbone side by side with nats-server (plaintext and TLS) on
 * 127.0.0.1, every process separate, every loop bounded. Prints a table and writes
 * bench/results/<date>.json.
 *
 *   bun bench/run.ts [--quick] [--smoke] [--runs N]
 *                    [--only relay,latency,handshakes,connections,offline,monitor,fairness]
 *                    [--no-nats] [--connections N] [--no-batch]
 *                    [--pairs 10,100] [--sizes 256] [--windows 1024]
 *
 * --no-batch: backbone's load generator does not offer records of many messages
 * (docs/PROTOCOL.md § BATCH): one message per frame, as before they existed.
 * --pairs, --sizes, --windows: only these relay rows (comma-separated).
 * --quick: one run per row, short windows. --smoke: seconds-long sanity run (used by the
 * test suite so the harness never rots; its numbers mean nothing).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { startBackbone } from "./lib/backbone.ts";
import { fairnessScenario } from "./lib/fairness.ts";
import { natsServerBinary } from "./lib/nats.ts";
import { type Row, renderTable } from "./lib/report.ts";
import {
  connectionsScenario,
  handshakeScenario,
  latencyScenario,
  monitorScenario,
  offlineScenario,
  relayScenario,
} from "./lib/scenarios.ts";
import { renderTargets, targets } from "./lib/targets.ts";

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const value = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};

export interface Profile {
  runs: number;
  seconds: number;
  warmup: number;
  pairs: number[];
  sizes: number[];
  windows: number[];
  connections: number;
  offlineMessages: number;
  handshakeSeconds: number;
  /** backbone's load generator offers BATCH (default; `--no-batch` turns it off). */
  batch: boolean;
}

const list = (name: string, all: number[]) => value(name)?.split(",").map(Number) ?? all;

const smoke = flag("smoke");
const quick = flag("quick") || smoke;
const profile: Profile = smoke
  ? {
      runs: 1,
      seconds: 0.5,
      warmup: 0.3,
      pairs: [2],
      sizes: [256],
      windows: [64],
      connections: 20,
      offlineMessages: 200,
      handshakeSeconds: 1,
      batch: !flag("no-batch"),
    }
  : {
      runs: Number(value("runs") ?? (quick ? 1 : 3)),
      seconds: quick ? 2 : 5,
      warmup: quick ? 1 : 2,
      pairs: list("pairs", [1, 10, 100]),
      sizes: list("sizes", [256, 16384]),
      windows: list("windows", [256, 1024]),
      connections: Number(value("connections") ?? 10_000),
      offlineMessages: quick ? 20_000 : 100_000,
      handshakeSeconds: quick ? 3 : 8,
      batch: !flag("no-batch"),
    };
const only = new Set(
  (value("only") ?? "relay,latency,handshakes,connections,offline,monitor,fairness").split(","),
);
const withNats = !flag("no-nats");

const work = mkdtempSync("/tmp/backbone-bench-");
const rows: Row[] = [];
const started = new Date();
const loadAtStart = loadavg();
try {
  const natsBin =
    withNats && (only.has("relay") || only.has("latency")) ? natsServerBinary() : null;
  if (withNats && !natsBin && (only.has("relay") || only.has("latency")))
    console.log("nats-server unavailable: peer columns skipped");
  const maxClients = Math.max(2 * Math.max(...profile.pairs), 2);
  const backbone = await startBackbone(join(work, "backbone"), maxClients);
  try {
    const max: Record<number, number> = {};
    if (only.has("relay")) {
      for (const r of await relayScenario(profile, backbone, natsBin, work)) {
        rows.push(r);
        if (r.size === 256 && r.window === 1024 && r.unit === "msgs/s")
          max[r.pairs as number] = r.backbone.median;
      }
    }
    if (only.has("latency"))
      rows.push(...(await latencyScenario(profile, backbone, natsBin, work, max)));
    if (only.has("offline")) rows.push(...(await offlineScenario(profile, backbone)));
  } finally {
    await backbone.stop();
  }
  if (only.has("handshakes"))
    rows.push(...(await handshakeScenario(profile, join(work, "handshakes"))));
  if (only.has("connections"))
    rows.push(...(await connectionsScenario(profile, join(work, "connections"))));
  if (only.has("monitor")) rows.push(...(await monitorScenario(profile, join(work, "monitor"))));
  if (only.has("fairness")) rows.push(...(await fairnessScenario(profile, join(work, "fairness"))));

  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memory_gib: Math.round(totalmem() / 2 ** 30),
    bun: Bun.version,
    platform: `${process.platform}-${process.arch}`,
  };
  console.log(`\n${renderTable(rows)}`);
  const goals = targets(rows);
  if (goals.length) console.log(`\n${renderTargets(goals)}`);
  const load = { start: loadAtStart, end: loadavg() };
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  console.log(`\nload average (1, 5, 15 min): at start ${la(load.start)}, at end ${la(load.end)}`);
  if (!smoke) {
    // A full run is kept (bench/results/<date>.json, -2, -3 … when the day has one); a
    // quick run goes to bench/results/quick/, which git ignores, so that it never
    // replaces a full run's figures.
    const dir = quick ? "bench/results/quick" : "bench/results";
    mkdirSync(dir, { recursive: true });
    const day = started.toISOString().slice(0, 10);
    let file = `${dir}/${day}.json`;
    for (let n = 2; !quick && existsSync(file); n++) file = `${dir}/${day}-${n}.json`;
    writeFileSync(
      file,
      `${JSON.stringify({ started: started.toISOString(), machine, load, profile, rows, targets: goals }, null, 2)}\n`,
    );
    console.log(`\nwrote ${file}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
