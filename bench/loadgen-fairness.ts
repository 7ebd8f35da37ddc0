/**
 * Fairness: a victim's ping (HEARTBEAT round trip) while another client floods
 * CLIENT_STATUS requests of 256 lookups each, reading the replies (issue 9: "one client
 * can stall everyone"). The flooder keeps `inFlight` requests outstanding — as fast as
 * the server serves it; with `flood` false it stays idle (the baseline). The victim
 * pings `pingRate` times per second for `seconds` after `warmup`.
 * Usage: bun bench/loadgen-fairness.ts CONFIG.json — prints one JSON result line.
 */
import { readFileSync } from "node:fs";
import { connect } from "../src/client/client.ts";
import { parseIdentity } from "../src/client/identity.ts";

interface Config {
  server: string;
  /** [victim, flooder] identity texts. */
  identities: string[];
  flood: boolean;
  inFlight: number;
  pingRate: number;
  seconds: number;
  warmup: number;
}

const c = JSON.parse(readFileSync(process.argv[2] as string, "utf8")) as Config;
const opts = { server: c.server, reconnect: false };
const [victim, flooder] = await Promise.all(
  (c.identities.slice(0, 2) as string[]).map(async (t) =>
    connect({ identity: await parseIdentity(t), ...opts }),
  ),
);
if (!victim || !flooder) throw new Error("two identities needed");
const names = Array.from({ length: 256 }, (_, i) => `nobody-${i}`);
let served = 0;
let running = true;
const floods = c.flood
  ? Array.from({ length: c.inFlight }, async () => {
      while (running) {
        await flooder.clientStatus(names);
        served++;
      }
    })
  : [];
process.stdout.write("ready\n");
const start = performance.now();
const measureFrom = start + c.warmup * 1000;
const end = measureFrom + c.seconds * 1000;
const rtts: number[] = [];
let servedAtStart = 0;
// Bounded in time: one ping per 1/pingRate s until `end`.
while (performance.now() < end) {
  const now = performance.now();
  if (now >= measureFrom && servedAtStart === 0) servedAtStart = served || -1;
  const rtt = await victim.ping();
  if (now >= measureFrom) rtts.push(rtt);
  const next = now + 1000 / c.pingRate;
  const wait = next - performance.now();
  if (wait > 0) await Bun.sleep(wait);
}
const measured = (performance.now() - measureFrom) / 1000;
const floodPerSec = (served - Math.max(0, servedAtStart)) / measured;
running = false;
rtts.sort((a, b) => a - b);
const q = (p: number) => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))] ?? Number.NaN;
process.stdout.write(
  `${JSON.stringify({ p50: q(0.5), p99: q(0.99), max: rtts.at(-1), samples: rtts.length, floodPerSec })}\n`,
);
await Promise.race([Promise.allSettled(floods), Bun.sleep(2000)]);
process.exit(0);
