/** The five benchmark scenarios of docs/BENCHMARKS.md. */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Profile } from "../run.ts";
import { type BackboneProcess, startBackbone } from "./backbone.ts";
import { runLoad } from "./loadgen.ts";
import { makeCertificate, startNats } from "./nats.ts";
import { rssBytes } from "./proc.ts";
import { type Measure, type Row, summarize } from "./report.ts";

const MiB = 1024 * 1024;
/** Relay rows with more bytes in flight than this are skipped (see relayScenario). */
const MAX_IN_FLIGHT = 1024 * MiB;

type Peer = { kind: "backbone" } | { kind: "nats"; address: string; pid: number; caFile?: string };

async function runPeer(
  peer: Peer,
  bb: BackboneProcess,
  config: Record<string, unknown>,
  p: Profile,
  dir: string,
) {
  const pairs = config.pairs as number;
  if (peer.kind === "backbone") {
    return runLoad(
      "loadgen-backbone.ts",
      {
        ...config,
        server: bb.address,
        identities: bb.identities.slice(0, 2 * pairs),
        batch: p.batch,
      },
      bb.pid,
      { dir, warmup: p.warmup, timeoutSeconds: 120 + p.seconds },
    );
  }
  return runLoad(
    "loadgen-nats.ts",
    { ...config, server: peer.address, ...(peer.caFile ? { caFile: peer.caFile } : {}) },
    peer.pid,
    { dir, warmup: p.warmup, timeoutSeconds: 120 + p.seconds },
  );
}

/** Starts the NATS peers (TLS and plaintext) for the duration of `task`. */
async function withNats<T>(
  natsBin: string | null,
  work: string,
  task: (peers: { tls?: Peer; plain?: Peer }) => Promise<T>,
): Promise<T> {
  if (!natsBin) return task({});
  const dir = join(work, "nats");
  mkdirSync(dir, { recursive: true });
  const cert = makeCertificate(dir);
  const tls = await startNats(natsBin, dir, cert);
  const plain = await startNats(natsBin, dir, null);
  try {
    return await task({
      tls: {
        kind: "nats",
        address: `127.0.0.1:${tls.port}`,
        pid: tls.server.proc.pid,
        caFile: cert.cert,
      },
      plain: { kind: "nats", address: `127.0.0.1:${plain.port}`, pid: plain.server.proc.pid },
    });
  } finally {
    await tls.server.kill();
    await plain.server.kill();
  }
}

/** Runs `config` `runs` times on each peer; returns per-peer measures of `pick`. */
async function compare(
  p: Profile,
  bb: BackboneProcess,
  peers: { tls?: Peer; plain?: Peer },
  config: Record<string, unknown>,
  pick: (r: Record<string, number>) => number,
  dir: string,
) {
  const bbValues: number[] = [];
  const cores: number[] = [];
  const rss: number[] = [];
  const tlsValues: number[] = [];
  const plainValues: number[] = [];
  for (let run = 0; run < p.runs; run++) {
    const r = await runPeer({ kind: "backbone" }, bb, config, p, dir);
    bbValues.push(pick(r.result));
    cores.push(r.cores);
    rss.push(r.rss);
    if (peers.tls) tlsValues.push(pick((await runPeer(peers.tls, bb, config, p, dir)).result));
    if (peers.plain)
      plainValues.push(pick((await runPeer(peers.plain, bb, config, p, dir)).result));
  }
  const m = (v: number[]): Measure | undefined => (v.length ? summarize(v) : undefined);
  return {
    backbone: summarize(bbValues),
    natsTls: m(tlsValues),
    natsPlain: m(plainValues),
    cores: summarize(cores).median,
    rssMiB: summarize(rss).median / MiB,
  };
}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** 1. Relay throughput: N pairs × payload × window. */
export async function relayScenario(
  p: Profile,
  bb: BackboneProcess,
  natsBin: string | null,
  work: string,
): Promise<Row[]> {
  const rows: Row[] = [];
  await withNats(natsBin, work, async (peers) => {
    for (const pairs of p.pairs) {
      for (const size of p.sizes) {
        for (const window of p.windows) {
          const label = `N=${pairs} W=${window} ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`}`;
          const inFlight = pairs * window * size;
          if (inFlight > MAX_IN_FLIGHT) {
            // 100 × 1024 × 16 KiB = 1.6 GB in flight: every peer's client runs out of room
            // (measured: all three delivered nothing), so the row says so instead.
            const none = { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: 0 };
            rows.push({
              scenario: "relay",
              label,
              unit: "msgs/s",
              better: "higher",
              pairs,
              size,
              window,
              backbone: none,
              note: `skipped: ${(inFlight / 2 ** 30).toFixed(1)} GiB in flight`,
            });
            continue;
          }
          log(`relay ${label} …`);
          const config = {
            pairs,
            size,
            window,
            mode: "throughput",
            seconds: p.seconds,
            warmup: p.warmup,
          };
          const msgs = await compare(p, bb, peers, config, (r) => r.msgsPerSec as number, work);
          const base = {
            scenario: "relay",
            pairs,
            size,
            window,
            better: "higher" as const,
            cores: msgs.cores,
            rssMiB: msgs.rssMiB,
          };
          rows.push({ ...base, label, unit: "msgs/s", backbone: msgs.backbone, ...opt(msgs) });
          // MB/s follows from msgs/s × size: same runs, shown for the large payload.
          if (size >= 1024) {
            const mb = (m: Measure | undefined) =>
              m && {
                ...m,
                median: (m.median * size) / 1e6,
                min: (m.min * size) / 1e6,
                max: (m.max * size) / 1e6,
              };
            rows.push({
              ...base,
              label,
              unit: "MB/s",
              backbone: mb(msgs.backbone) as Measure,
              ...opt({ natsTls: mb(msgs.natsTls), natsPlain: mb(msgs.natsPlain) }),
            });
          }
        }
      }
    }
  });
  return rows;
}

function opt(m: { natsTls?: Measure | undefined; natsPlain?: Measure | undefined }) {
  return {
    ...(m.natsTls ? { natsTls: m.natsTls } : {}),
    ...(m.natsPlain ? { natsPlain: m.natsPlain } : {}),
  };
}

/** 2. Latency at 25% and 50% of backbone's measured maximum, one pair and 100 pairs. */
export async function latencyScenario(
  p: Profile,
  bb: BackboneProcess,
  natsBin: string | null,
  work: string,
  max: Record<number, number>,
): Promise<Row[]> {
  const rows: Row[] = [];
  const pairsList = [1, Math.max(...p.pairs)];
  await withNats(natsBin, work, async (peers) => {
    for (const pairs of pairsList) {
      let top = max[pairs];
      if (!top) {
        log(`latency: measuring the maximum for N=${pairs} …`);
        const r = await runPeer(
          { kind: "backbone" },
          bb,
          {
            pairs,
            size: 256,
            window: 1024,
            mode: "throughput",
            seconds: p.seconds,
            warmup: p.warmup,
          },
          p,
          work,
        );
        top = r.result.msgsPerSec as number;
      }
      for (const load of [0.25, 0.5]) {
        const rate = Math.max(100, Math.round(top * load));
        const label = `N=${pairs} 256 B at ${load * 100}% (${rate} msgs/s)`;
        log(`latency ${label} …`);
        const config = {
          pairs,
          size: 256,
          window: 1 << 30,
          mode: "latency",
          rate,
          seconds: p.seconds,
          warmup: p.warmup,
        };
        // One set of runs gives all three quantiles.
        const results = await compareAll(p, bb, peers, config, work);
        const stale = results.backbone.reduce((n, r) => n + (r.stale ?? 0), 0);
        for (const q of ["p50", "p99", "p999"] as const) {
          rows.push({
            scenario: "latency",
            label: `${label} ${q}`,
            unit: "ms",
            better: "lower",
            pairs,
            ...(stale ? { note: `${stale} redelivered messages of earlier runs left out` } : {}),
            backbone: summarize(results.backbone.map((r) => r[q] as number)),
            ...opt({
              natsTls: results.tls.length
                ? summarize(results.tls.map((r) => r[q] as number))
                : undefined,
              natsPlain: results.plain.length
                ? summarize(results.plain.map((r) => r[q] as number))
                : undefined,
            }),
          });
        }
      }
    }
  });
  return rows;
}

async function compareAll(
  p: Profile,
  bb: BackboneProcess,
  peers: { tls?: Peer; plain?: Peer },
  config: Record<string, unknown>,
  dir: string,
) {
  const out = {
    backbone: [] as Record<string, number>[],
    tls: [] as Record<string, number>[],
    plain: [] as Record<string, number>[],
  };
  for (let run = 0; run < p.runs; run++) {
    out.backbone.push((await runPeer({ kind: "backbone" }, bb, config, p, dir)).result);
    if (peers.tls) out.tls.push((await runPeer(peers.tls, bb, config, p, dir)).result);
    if (peers.plain) out.plain.push((await runPeer(peers.plain, bb, config, p, dir)).result);
  }
  return out;
}

/** 5. Offline queue: messages stored for an offline recipient, then drained at its login. */
export async function offlineScenario(p: Profile, bb: BackboneProcess): Promise<Row[]> {
  const stored: number[] = [];
  const drained: number[] = [];
  for (let run = 0; run < p.runs; run++) {
    log(`offline queue: ${p.offlineMessages} messages (run ${run + 1}) …`);
    const r = await runLoad(
      "loadgen-offline.ts",
      {
        server: bb.address,
        sender: bb.identities[0],
        recipient: bb.identities[1],
        messages: p.offlineMessages,
        size: 256,
        window: 256,
      },
      bb.pid,
      { dir: bb.dir, warmup: 0, timeoutSeconds: 600 },
    );
    stored.push(r.result.storedPerSec as number);
    drained.push(r.result.drainedPerSec as number);
  }
  return [
    {
      scenario: "offline",
      label: `store ${p.offlineMessages} × 256 B`,
      unit: "msgs/s",
      better: "higher",
      backbone: summarize(stored),
    },
    {
      scenario: "offline",
      label: `drain at login`,
      unit: "msgs/s",
      better: "higher",
      backbone: summarize(drained),
    },
  ];
}

/** 3. Handshakes: logins per second with 3072-bit keys, next to the RSA bound. */
export async function handshakeScenario(p: Profile, dir: string): Promise<Row[]> {
  const concurrency = 64;
  const bb = await startBackbone(dir, concurrency, 3072);
  const logins: number[] = [];
  const perCore: number[] = [];
  const cores: number[] = [];
  // The bound is measured as often as the logins, each right after a login run (the
  // server idle meanwhile), and its median taken: one reading of it swung 485–548 per
  // core within the same hour on the shared machine (docs/BENCHMARKS.md).
  const boundOps: number[] = [];
  const boundPerCores: number[] = [];
  try {
    for (let run = 0; run < p.runs; run++) {
      log(`handshakes (run ${run + 1}) …`);
      const r = await runLoad(
        "loadgen-handshakes.ts",
        { server: bb.address, identities: bb.identities, concurrency, seconds: p.handshakeSeconds },
        bb.pid,
        { dir, warmup: 0, timeoutSeconds: 120 },
      );
      logins.push(r.result.loginsPerSec as number);
      cores.push(r.cores);
      perCore.push((r.result.loginsPerSec as number) / Math.max(r.cores, 0.01));
      log(`RSA bound (run ${run + 1}) …`);
      const bound = await runLoad(
        "rsa-bound.ts",
        { seconds: p.handshakeSeconds, concurrency: 8 },
        process.pid,
        { dir, warmup: 0, timeoutSeconds: 120 },
      );
      boundOps.push(bound.result.opsPerSec as number);
      boundPerCores.push(
        (bound.result.opsPerSec as number) / Math.max(bound.result.cores as number, 0.01),
      );
    }
  } finally {
    await bb.stop();
  }
  const bound = { result: { opsPerSec: summarize(boundOps).median } };
  const boundPerCore = summarize(boundPerCores).median;
  return [
    {
      scenario: "handshakes",
      label: "logins/s, 3072-bit keys",
      unit: "logins/s",
      better: "higher",
      backbone: summarize(logins),
      reference: { label: "RSA bound (all cores)", value: bound.result.opsPerSec as number },
      cores: summarize(cores).median,
    },
    {
      scenario: "handshakes",
      label: "logins/s per server core",
      unit: "logins/s/core",
      better: "higher",
      backbone: summarize(perCore),
      reference: { label: "RSA bound per core", value: boundPerCore },
    },
  ];
}

/** 4. Connections: authenticated idle clients held, RSS per client, and a live pair's latency. */
export async function connectionsScenario(p: Profile, dir: string): Promise<Row[]> {
  const bb = await startBackbone(dir, p.connections + 2, 2048, [], [], { gcHook: true });
  try {
    await Bun.sleep(500);
    const before = rssBytes(bb.pid);
    const gcBefore = await (bb.gc as NonNullable<typeof bb.gc>)();
    log(`connections: ${p.connections} idle clients …`);
    const r = await runLoad(
      "loadgen-connections.ts",
      {
        server: bb.address,
        identities: bb.identities,
        count: p.connections,
        seconds: Math.max(2, p.seconds),
        rate: 1000,
        serverPid: bb.pid,
        gcSignal: true,
      },
      bb.pid,
      { dir, warmup: 0, timeoutSeconds: 900 },
    );
    const held = r.result.held as number;
    const perClient = (r.result.serverRss as number) - before;
    const gcHeld = await (bb.gcReading as NonNullable<typeof bb.gcReading>)(2);
    const one = (v: number) => summarize([v]);
    const kib = (bytes: number) => one(bytes / held / 1024);
    return [
      {
        scenario: "connections",
        label: `${held} idle clients held`,
        unit: "clients",
        better: "higher",
        backbone: one(held),
      },
      {
        scenario: "connections",
        label: "server RSS per client",
        unit: "KiB",
        better: "lower",
        backbone: one(perClient / held / 1024),
        rssMiB: r.rss / MiB,
        note: "raw: no GC forced, handshake garbage counted",
      },
      {
        scenario: "connections",
        label: "server RSS per client after GC",
        unit: "KiB",
        better: "lower",
        backbone: kib(gcHeld.rss - gcBefore.rss),
        reference: { label: "target", value: 4 },
      },
      {
        scenario: "connections",
        label: "server heap per client after GC",
        unit: "KiB",
        better: "lower",
        backbone: kib(gcHeld.heap + gcHeld.extra - gcBefore.heap - gcBefore.extra),
        reference: { label: "target", value: 4 },
        note: "bun:jsc heapStats: JS heap + memory its objects hold outside it",
      },
      {
        scenario: "connections",
        label: "live pair p50 while held",
        unit: "ms",
        better: "lower",
        backbone: one(r.result.p50 as number),
      },
      {
        scenario: "connections",
        label: "live pair p99 while held",
        unit: "ms",
        better: "lower",
        backbone: one(r.result.p99 as number),
      },
    ];
  } finally {
    await bb.stop();
  }
}

/**
 * 6. What the monitor costs on the message path: relay throughput of a server without
 * `--monitor` and of one with it, scraped (/metrics and /varz) every second — harsher
 * than Prometheus's usual 15 s — runs alternating so drift hits both alike.
 */
export async function monitorScenario(p: Profile, dir: string): Promise<Row[]> {
  const pairs = p.pairs.includes(10) ? 10 : (p.pairs[0] as number);
  const window = Math.max(...p.windows);
  const config = {
    pairs,
    size: 256,
    window,
    mode: "throughput",
    seconds: p.seconds,
    warmup: p.warmup,
  };
  const off = await startBackbone(join(dir, "off"), 2 * pairs);
  const on = await startBackbone(
    join(dir, "on"),
    2 * pairs,
    2048,
    [],
    ["--monitor", "127.0.0.1:0"],
  );
  const values = { off: [] as number[], on: [] as number[] };
  const cores = { off: [] as number[], on: [] as number[] };
  const rss = { off: [] as number[], on: [] as number[] };
  let scrapes = 0;
  try {
    for (let run = 0; run < p.runs; run++) {
      for (const [name, bb] of [
        ["off", off],
        ["on", on],
      ] as const) {
        log(`monitor ${name}: relay N=${pairs} W=${window} 256 B (run ${run + 1}) …`);
        const scraper =
          bb.monitorUrl &&
          setInterval(() => {
            for (const path of ["metrics", "varz"])
              void fetch(`${bb.monitorUrl}${path}`).then((r) => r.text().then(() => scrapes++));
          }, 1000);
        try {
          const r = await runLoad(
            "loadgen-backbone.ts",
            {
              ...config,
              server: bb.address,
              identities: bb.identities.slice(0, 2 * pairs),
              batch: p.batch,
            },
            bb.pid,
            { dir, warmup: p.warmup, timeoutSeconds: 120 + p.seconds },
          );
          values[name].push(r.result.msgsPerSec as number);
          cores[name].push(r.cores);
          rss[name].push(r.rss);
        } finally {
          if (scraper) clearInterval(scraper);
        }
      }
    }
  } finally {
    await off.stop();
    await on.stop();
  }
  const label = `N=${pairs} W=${window} 256 B`;
  const row = (name: "off" | "on", text: string): Row => ({
    scenario: "monitor",
    label: `${label}, ${text}`,
    unit: "msgs/s",
    better: "higher",
    pairs,
    size: 256,
    window,
    backbone: summarize(values[name]),
    cores: summarize(cores[name]).median,
    rssMiB: summarize(rss[name]).median / MiB,
  });
  const ratio = summarize(values.on).median / summarize(values.off).median;
  return [
    row("off", "no --monitor"),
    {
      ...row("on", "--monitor, scraped every 1 s"),
      note: `${(ratio * 100).toFixed(1)}% of the throughput without (${scrapes} scrapes answered)`,
    },
  ];
}
