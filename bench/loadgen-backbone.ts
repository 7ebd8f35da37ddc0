/**
 * Load generator for backbone (its own process, so the server's cost stays visible).
 * Usage: bun bench/loadgen-backbone.ts CONFIG.json — prints one JSON result line.
 */
import { readFileSync } from "node:fs";
import { type Client, connect } from "../src/client/client.ts";
import { parseIdentity } from "../src/client/identity.ts";
import { type PairEnds, runWorkload, type WorkloadOptions } from "./lib/workload.ts";

interface Config extends WorkloadOptions {
  server: string;
  /** Identity file texts: 2 per pair (sender, receiver). */
  identities: string[];
  pairs: number;
  /** Offer records of many messages (docs/PROTOCOL.md § BATCH); default true. */
  batch?: boolean;
}

const config = JSON.parse(readFileSync(process.argv[2] as string, "utf8")) as Config;
const clients: Client[] = [];
const opts = {
  server: config.server,
  reconnect: false,
  maxBufferedBytes: 0,
  batch: config.batch !== false,
};
for (let i = 0; i < config.pairs * 2; i += 16) {
  const batch = config.identities.slice(i, Math.min(i + 16, config.pairs * 2));
  const identities = await Promise.all(batch.map((t) => parseIdentity(t)));
  clients.push(
    ...(await Promise.all(identities.map((identity) => connect({ identity, ...opts })))),
  );
}
const pairs: PairEnds[] = [];
for (let i = 0; i < config.pairs; i++) {
  const sender = clients[2 * i] as Client;
  const receiver = clients[2 * i + 1] as Client;
  pairs.push({
    send: (data) => sender.send(receiver.id, data),
    ack: (data) => receiver.send(sender.id, data),
    onData: (cb) => receiver.on("message", (m) => cb(m.data)),
    onAck: (cb) => sender.on("message", (m) => cb(m.data)),
  });
}
process.stdout.write("ready\n");
const result = await runWorkload(pairs, config);
process.stdout.write(`${JSON.stringify(result)}\n`);
await Promise.all(clients.map((c) => c.close("bench over")));
process.exit(0);
