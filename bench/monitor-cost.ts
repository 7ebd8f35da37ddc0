/**
 * What prom-client costs, measured (docs/BENCHMARKS.md § Monitor):
 *
 *   bun bench/monitor-cost.ts [--binary dist/backbone]
 *
 * - per increment: a plain integer field (what the core does per message), a
 *   prom-client child bound once (`counter.labels(…)` kept), and a labelled `inc`
 *   (a label lookup per call — what the core must not do);
 * - loading the monitor (prom-client and the page) — paid only with `--monitor`;
 * - with `--binary`: `serve` start-up to its "listening" line with and without
 *   `--monitor` (5 runs each, medians), and the time to answer /metrics (median of 20).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const N = 20_000_000;

function perOp(fn: (n: number) => void, n = N): number {
  fn(1000); // warm
  const t0 = performance.now();
  fn(n);
  return ((performance.now() - t0) * 1e6) / n;
}

const t0 = performance.now();
const monitor = await import("../src/monitor/index.ts");
const prom = await import("prom-client");
const loadMs = performance.now() - t0;
void monitor;

const stats = { routed: 0, deliveredDirect: 0 };
const plain = perOp((n) => {
  for (let i = 0; i < n; i++) stats.deliveredDirect++;
});
const registry = new prom.Registry();
const counter = new prom.Counter({
  name: "x_total",
  help: "x",
  labelNames: ["kind"],
  registers: [registry],
});
const child = counter.labels("direct");
const bound = perOp((n) => {
  for (let i = 0; i < n; i++) child.inc();
}, N / 10);
const labelled = perOp((n) => {
  for (let i = 0; i < n; i++) counter.inc({ kind: "direct" });
}, N / 20);

const out: Record<string, unknown> = {
  plain_increment_ns: Number(plain.toFixed(2)),
  prom_bound_child_inc_ns: Number(bound.toFixed(1)),
  prom_labelled_inc_ns: Number(labelled.toFixed(1)),
  monitor_module_load_ms: Math.round(loadMs),
};

const bi = process.argv.indexOf("--binary");
if (bi >= 0) {
  const binary = process.argv[bi + 1] as string;
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] as number;
  const startup = async (extra: string[]) => {
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const dir = mkdtempSync(join(tmpdir(), "backbone-startup-"));
      // A key made beforehand: start-up, not key generation, is measured.
      {
        const k = Bun.spawnSync([
          binary,
          "keygen",
          "--name",
          "x",
          "--bits",
          "2048",
          "--data",
          dir,
          "--out",
          join(dir, "x.id"),
        ]);
        if (k.exitCode !== 0) throw new Error(k.stderr.toString());
      }
      const t = performance.now();
      const p = Bun.spawn(
        [binary, "serve", "--data", dir, "--host", "127.0.0.1", "--port", "0", ...extra],
        {
          stdout: "pipe",
          stderr: "ignore",
        },
      );
      const want = extra.length ? /monitor on/ : /listening on/;
      let text = "";
      for await (const chunk of p.stdout) {
        text += new TextDecoder().decode(chunk);
        if (want.test(text)) break;
      }
      times.push(performance.now() - t);
      const url = /monitor on (\S+)/.exec(text)?.[1];
      if (url && run === 0) {
        const scrapes: number[] = [];
        for (let i = 0; i < 20; i++) {
          const s0 = performance.now();
          await (await fetch(`${url}metrics`)).text();
          scrapes.push(performance.now() - s0);
        }
        out.metrics_scrape_ms = Number(median(scrapes).toFixed(2));
      }
      p.kill("SIGTERM");
      await p.exited;
      rmSync(dir, { recursive: true, force: true });
    }
    return Math.round(median(times));
  };
  out.serve_startup_ms = await startup([]);
  out.serve_startup_with_monitor_ms = await startup(["--monitor", "127.0.0.1:0"]);
}
console.log(JSON.stringify(out, null, 2));
