/** Results: median of runs with min–max, ratios to the peers, and the table. */

/** One measured quantity over several runs. */
export interface Measure {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function summarize(values: number[]): Measure {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] ?? 0, max: sorted.at(-1) ?? 0, runs: values.length };
}

export interface Row {
  scenario: string;
  /** What the row measures, e.g. "N=10 W=1024 256 B". */
  label: string;
  unit: string;
  /** Higher is better (throughput) or lower (latency, memory). */
  better: "higher" | "lower";
  backbone: Measure;
  natsTls?: Measure;
  natsPlain?: Measure;
  /** A bound or target to compare with (e.g. the RSA bound for handshakes). */
  reference?: { label: string; value: number };
  /** Server CPU (cores) and RSS (MiB) for backbone, medians. */
  cores?: number;
  rssMiB?: number;
  pairs?: number;
  size?: number;
  window?: number;
  note?: string;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return "-";
  if (Math.abs(n) >= 100_000) return `${(n / 1000).toFixed(0)}k`;
  if (Math.abs(n) >= 1000) return `${(n / 1000).toFixed(1)}k`;
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

function cell(m: Measure | undefined): string {
  if (!m || m.runs === 0) return "-";
  return m.runs > 1 ? `${fmt(m.median)} (${fmt(m.min)}–${fmt(m.max)})` : fmt(m.median);
}

function ratio(a: Measure, b: Measure | undefined): string {
  if (!b || b.median === 0 || a.runs === 0 || b.runs === 0) return "-";
  return `${(a.median / b.median).toFixed(2)}×`;
}

/** A plain-text table (also valid Markdown). */
export function renderTable(rows: Row[]): string {
  const head = [
    "scenario",
    "case",
    "unit",
    "backbone",
    "nats-TLS",
    "nats-plain",
    "bb/TLS",
    "bb/plain",
    "reference",
    "server cores",
    "server RSS MiB",
    "note",
  ];
  const body = rows.map((r) => [
    r.scenario,
    r.label,
    `${r.unit} (${r.better === "higher" ? "↑" : "↓"})`,
    cell(r.backbone),
    cell(r.natsTls),
    cell(r.natsPlain),
    ratio(r.backbone, r.natsTls),
    ratio(r.backbone, r.natsPlain),
    r.reference
      ? `${r.reference.label} ${fmt(r.reference.value)} (${((r.backbone.median / r.reference.value) * 100).toFixed(0)}%)`
      : "-",
    r.cores === undefined ? "-" : r.cores.toFixed(2),
    r.rssMiB === undefined ? "-" : r.rssMiB.toFixed(0),
    r.note ?? "",
  ]);
  const lines = [head, head.map(() => "---"), ...body].map((cols) => `| ${cols.join(" | ")} |`);
  return lines.join("\n");
}
