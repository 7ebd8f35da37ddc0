/**
 * 6. Fairness (issue 9): a victim's ping p50/p99 while another client floods
 * CLIENT_STATUS (256 lookups each), next to the same victim with the other client
 * idle; with the default work budget, and with the budget lifted (input slices alone).
 */
import { join } from "node:path";
import type { Profile } from "../run.ts";
import { startBackbone } from "./backbone.ts";
import { runLoad } from "./loadgen.ts";
import { type Row, summarize } from "./report.ts";

const CASES = [
  { label: "other client idle", flood: false, config: [] as string[] },
  { label: "other floods CLIENT_STATUS, default budget", flood: true, config: [] as string[] },
  {
    label: "other floods CLIENT_STATUS, budget lifted (slices alone)",
    flood: true,
    config: ["work_rate = 1000000000", "work_burst = 1000000000"],
  },
];

export async function fairnessScenario(p: Profile, dir: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [i, k] of CASES.entries()) {
    const bb = await startBackbone(join(dir, `fairness-${i}`), 2, 2048, k.config);
    const p50: number[] = [];
    const p99: number[] = [];
    const served: number[] = [];
    const cores: number[] = [];
    try {
      for (let run = 0; run < p.runs; run++) {
        process.stdout.write(`fairness: ${k.label} (run ${run + 1}) …\n`);
        const r = await runLoad(
          "loadgen-fairness.ts",
          {
            server: bb.address,
            identities: bb.identities,
            flood: k.flood,
            inFlight: 32,
            pingRate: 50,
            seconds: p.seconds,
            warmup: p.warmup,
          },
          bb.pid,
          { dir: bb.dir, warmup: 0, timeoutSeconds: 120 + p.seconds },
        );
        p50.push(r.result.p50 as number);
        p99.push(r.result.p99 as number);
        served.push(r.result.floodPerSec as number);
        cores.push(r.cores);
      }
    } finally {
      await bb.stop();
    }
    const base = { scenario: "fairness", better: "lower" as const, cores: summarize(cores).median };
    rows.push({
      ...base,
      label: `victim ping p50, ${k.label}`,
      unit: "ms",
      backbone: summarize(p50),
    });
    rows.push({
      ...base,
      label: `victim ping p99, ${k.label}`,
      unit: "ms",
      backbone: summarize(p99),
    });
    if (k.flood)
      rows.push({
        ...base,
        better: "higher",
        label: `flooder served, ${k.label}`,
        unit: "requests/s",
        backbone: summarize(served),
      });
  }
  return rows;
}
