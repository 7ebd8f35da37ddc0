/**
 * Idle connections: opens `count` authenticated clients (they heartbeat as CONFIG
 * says) and holds them; reports the server's RSS once all are held, then measures a
 * live pair's latency at `rate` msgs/s for `seconds` while they are held. With
 * `gcSignal`, it first sends the server SIGUSR2 (a full GC, see bench/lib/gc-preload.ts)
 * and reads the RSS after it.
 * Usage: bun bench/loadgen-connections.ts CONFIG.json
 */
import { readFileSync } from "node:fs";
import { type Client, connect } from "../src/client/client.ts";
import { parseIdentity } from "../src/client/identity.ts";
import { rssBytes } from "./lib/proc.ts";
import { runWorkload } from "./lib/workload.ts";

const c = JSON.parse(readFileSync(process.argv[2] as string, "utf8"));
const texts = c.identities as string[];
const clients: Client[] = [];
const CONCURRENCY = 64;
let next = 2; // identities 0 and 1 are the live pair
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < c.count + 2) {
      const text = texts[next++] as string;
      clients.push(await connect({ identity: await parseIdentity(text), reconnect: false }));
    }
  }),
);
await Bun.sleep(1000);
const serverRss = rssBytes(c.serverPid);
let serverRssAfterGc: number | undefined;
if (c.gcSignal) {
  process.kill(c.serverPid, "SIGUSR2");
  await Bun.sleep(2000);
  serverRssAfterGc = rssBytes(c.serverPid);
}
const [a, b] = await Promise.all(
  [0, 1].map(async (i) => connect({ identity: await parseIdentity(texts[i] as string) })),
);
const sender = a as Client;
const receiver = b as Client;
process.stdout.write("ready\n");
const result = await runWorkload(
  [
    {
      send: (data) => sender.send(receiver.id, data),
      ack: (data) => receiver.send(sender.id, data),
      onData: (cb) => receiver.on("message", (m) => cb(m.data)),
      onAck: (cb) => sender.on("message", (m) => cb(m.data)),
    },
  ],
  { mode: "latency", size: 256, window: 1 << 30, seconds: c.seconds, warmup: 1, rate: c.rate },
);
process.stdout.write(
  `${JSON.stringify({ ...result, held: clients.length, serverRss, serverRssAfterGc })}\n`,
);
process.exit(0);
