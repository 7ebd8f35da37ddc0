/**
 * The targets of issue 16 ("Speed: lead nats-server on small messages"), read off the
 * rows of the same run: each with backbone's figure, the comparison, the ratio and
 * whether it is met. Medians of the run's repetitions (3 by default).
 */
import type { Row } from "./report.ts";

export interface TargetResult {
  target: string;
  backbone: string;
  versus: string;
  ratio: number;
  /** "met", "missed", or "-" when a row it needs was not run. */
  verdict: "met" | "missed" | "-";
}

const f = (n: number, digits = 0) =>
  n >= 10_000 ? `${(n / 1000).toFixed(0)}k` : n.toFixed(digits);

/** The targets found in `rows` (those whose rows were not run are left out). */
export function targets(rows: Row[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const pairs of [10, 100]) {
    const r = rows.find(
      (x) =>
        x.scenario === "relay" &&
        x.pairs === pairs &&
        x.size === 256 &&
        x.window === 1024 &&
        x.unit === "msgs/s",
    );
    if (!r) continue;
    for (const [peer, m, goal] of [
      ["nats-TLS", r.natsTls, "≥ 1.0×"],
      ["nats-plain (aim)", r.natsPlain, "≥ 1.0×"],
    ] as const) {
      if (!m) continue;
      const ratio = r.backbone.median / m.median;
      out.push({
        target: `relay 256 B, W = 1024, N = ${pairs}: ${goal} ${peer}`,
        backbone: `${f(r.backbone.median)} msgs/s`,
        versus: `${f(m.median)} msgs/s`,
        ratio,
        verdict: ratio >= 1 ? "met" : "missed",
      });
    }
  }
  for (const r of rows) {
    if (r.scenario !== "latency" || !/ at 50% .* p99$/.test(r.label) || !r.natsTls) continue;
    const ratio = r.backbone.median / r.natsTls.median;
    out.push({
      target: `latency p99, ${r.label.replace(/ p99$/, "")}: ≤ nats-TLS at the same rate`,
      backbone: `${r.backbone.median.toFixed(2)} ms`,
      versus: `${r.natsTls.median.toFixed(2)} ms`,
      ratio,
      verdict: ratio <= 1 ? "met" : "missed",
    });
  }
  const hs = rows.find((x) => x.scenario === "handshakes" && x.unit === "logins/s/core");
  if (hs?.reference) {
    const ratio = hs.backbone.median / hs.reference.value;
    out.push({
      target: "handshakes per server core: ≥ 80% of the RSA bound per core",
      backbone: `${hs.backbone.median.toFixed(0)} logins/s/core`,
      versus: `${hs.reference.value.toFixed(0)} RSA ops/s/core`,
      ratio,
      verdict: ratio >= 0.8 ? "met" : "missed",
    });
  }
  const mem = rows.find((x) => x.scenario === "connections" && x.label.startsWith("server heap"));
  if (mem) {
    out.push({
      target: "idle memory per authenticated client after GC: ≤ 4 KiB",
      backbone: `${mem.backbone.median.toFixed(2)} KiB`,
      versus: "4 KiB",
      ratio: mem.backbone.median / 4,
      verdict: mem.backbone.median <= 4 ? "met" : "missed",
    });
  }
  return out;
}

/** The targets as a Markdown table. */
export function renderTargets(results: TargetResult[]): string {
  const lines = [
    "| target (issue 16) | backbone | compared with | ratio | |",
    "| --- | --- | --- | --- | --- |",
    ...results.map(
      (t) =>
        `| ${t.target} | ${t.backbone} | ${t.versus} | ${t.target.startsWith("handshakes") ? `${(t.ratio * 100).toFixed(0)}%` : `${t.ratio.toFixed(2)}×`} | ${t.verdict} |`,
    ),
  ];
  return lines.join("\n");
}
