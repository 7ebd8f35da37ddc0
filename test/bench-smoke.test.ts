/**
 * A seconds-long run of the benchmark harness, so it never rots. Its numbers mean
 * nothing (tiny windows, a shared machine) and nothing about speed is asserted:
 * only that every scenario ran and produced a row with a measurement.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

test("bench/run.ts --smoke runs every scenario end to end", async () => {
  const proc = Bun.spawn(
    [process.execPath, join(import.meta.dir, "..", "bench", "run.ts"), "--smoke"],
    {
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [code, out, err] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  expect({ code, err: code === 0 ? "" : err.slice(-2000) }).toEqual({ code: 0, err: "" });
  const rows = out
    .split("\n")
    .filter((l) =>
      /^\| (relay|latency|offline|handshakes|connections|monitor|fairness) \|/.test(l),
    );
  const scenarios = new Set(rows.map((l) => l.split("|")[1]?.trim()));
  expect([...scenarios].sort()).toEqual([
    "connections",
    "fairness",
    "handshakes",
    "latency",
    "monitor",
    "offline",
    "relay",
  ]);
  for (const row of rows) {
    const backbone = row.split("|")[4]?.trim() ?? "";
    expect(backbone).toMatch(/^[0-9]/); // a number, not "-"
  }
  // The targets, read off the same run (smoke runs one pair count, so no relay
  // N = 10 / N = 100 rows): each with a ratio and a verdict.
  const goals = out
    .split("\n")
    .filter((l) => /^\| (latency p99|handshakes per|idle memory)/.test(l));
  expect(goals.map((l) => l.split("|")[1]?.trim().split(/[,:]/)[0])).toEqual([
    "latency p99",
    "latency p99",
    "handshakes per server core",
    "idle memory per authenticated client after GC",
  ]);
  for (const l of goals) expect(l).toMatch(/\| [0-9.]+(×|%) \| (met|missed) \|$/);
  expect(out).toMatch(/^load average \(1, 5, 15 min\): at start [0-9.]+ /m);
}, 180_000);
