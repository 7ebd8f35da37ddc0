/**
 * Helpers for the monitor tests: a `serve --monitor` sandbox, HTTP against it, and the
 * metrics checked by real Prometheus tooling — `promtool check metrics` (Debian's
 * prometheus package) and the Python client's parser (python3-prometheus-client),
 * both installed by .ci/run.
 */
import { expect } from "bun:test";
import { join } from "node:path";
import type { Running, Sandbox, ServerInfo } from "../helpers/binary.ts";

export interface Monitored extends ServerInfo {
  /** `http://127.0.0.1:PORT/` */
  url: string;
}

/** `serve` with `--monitor 127.0.0.1:0` (or `monitor`), once it prints both addresses. */
export async function serveMonitored(
  sb: Sandbox,
  extra: string[] = ["--monitor", "127.0.0.1:0"],
): Promise<Monitored> {
  const server = await sb.serve(extra);
  const m = await server.proc.waitFor(/^monitor on (http:\/\/\S+\/)$/);
  return { ...server, url: m[1] as string };
}

/** The monitor URL printed by a running serve process. */
export async function monitorUrl(proc: Running): Promise<string> {
  return (await proc.waitFor(/^monitor on (http:\/\/\S+\/)$/))[1] as string;
}

export async function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; type: string }> {
  const r = await fetch(url, { headers });
  return { status: r.status, body: await r.text(), type: r.headers.get("content-type") ?? "" };
}

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number | null;
  type: string;
}

/** Runs `promtool check metrics` on `text`: its exit code and output. */
export function promtool(text: string): { code: number; out: string } {
  const r = Bun.spawnSync(["promtool", "check", "metrics"], {
    stdin: new TextEncoder().encode(text),
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** A Python with prometheus_client: BACKBONE_PYTHON, python3, or Debian's own. */
const PYTHON = (() => {
  const candidates = [process.env.BACKBONE_PYTHON, "python3", "/usr/bin/python3"];
  for (const py of candidates) {
    if (!py) continue;
    try {
      const r = Bun.spawnSync([py, "-c", "import prometheus_client"], { stderr: "ignore" });
      if (r.exitCode === 0) return py;
    } catch {
      // not installed
    }
  }
  return "python3"; // fails with its own message: .ci/run installs python3-prometheus-client
})();

/** Parses `text` with prometheus_client's parser; fails the test on a parse error. */
export function parseMetrics(text: string): MetricSample[] {
  const r = Bun.spawnSync([PYTHON, join(import.meta.dir, "parse_metrics.py")], {
    stdin: new TextEncoder().encode(text),
    stdout: "pipe",
    stderr: "pipe",
  });
  expect({ code: r.exitCode, err: r.stderr.toString() }).toEqual({ code: 0, err: "" });
  return r.stdout
    .toString()
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as MetricSample);
}

/** Scrapes /metrics, checks it with promtool and parses it. */
export async function scrape(url: string, headers: Record<string, string> = {}) {
  const r = await get(`${url}metrics`, headers);
  expect(r.status).toBe(200);
  expect(r.type).toStartWith("text/plain; version=0.0.4");
  const lint = promtool(r.body);
  expect(lint).toEqual({ code: 0, out: "" });
  const samples = parseMetrics(r.body);
  /** The value of `name` with exactly these labels (besides node); 0 when absent. */
  const value = (name: string, labels: Record<string, string> = {}): number => {
    const hit = samples.find(
      (s) =>
        s.name === name &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
        Object.keys(s.labels).length === Object.keys(labels).length + 1,
    );
    return hit?.value ?? 0;
  };
  return { text: r.body, samples, value };
}

/** Polls `test` until it returns a value (not undefined), or fails after `ms`. */
export async function until<T>(test: () => Promise<T | undefined>, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await test();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await Bun.sleep(50);
  }
}
