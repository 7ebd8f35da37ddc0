/**
 * Load generator for nats-server, the peer backbone is compared with: the same
 * workload (bench/lib/workload.ts) over the `nats` client, one connection per
 * sender and per receiver as with backbone, optionally over TLS.
 * Usage: bun bench/loadgen-nats.ts CONFIG.json — prints one JSON result line.
 */
import { readFileSync } from "node:fs";
import { connect, type NatsConnection } from "nats";
import { type PairEnds, runWorkload, type WorkloadOptions } from "./lib/workload.ts";

interface Config extends WorkloadOptions {
  /** host:port */
  server: string;
  pairs: number;
  /** CA file when the server uses TLS. */
  caFile?: string;
}

const config = JSON.parse(readFileSync(process.argv[2] as string, "utf8")) as Config;
const connections: NatsConnection[] = [];
const open = () =>
  connect({
    servers: config.server,
    ...(config.caFile ? { tls: { caFile: config.caFile } } : {}),
    maxReconnectAttempts: 0,
    noEcho: true,
  });
for (let i = 0; i < config.pairs * 2; i += 16) {
  const n = Math.min(16, config.pairs * 2 - i);
  connections.push(...(await Promise.all(Array.from({ length: n }, open))));
}
const pairs: PairEnds[] = [];
for (let i = 0; i < config.pairs; i++) {
  const sender = connections[2 * i] as NatsConnection;
  const receiver = connections[2 * i + 1] as NatsConnection;
  pairs.push({
    send: (data) => sender.publish(`d.${i}`, data),
    ack: (data) => receiver.publish(`a.${i}`, data),
    onData: (cb) => void receiver.subscribe(`d.${i}`, { callback: (_err, m) => cb(m.data) }),
    onAck: (cb) => void sender.subscribe(`a.${i}`, { callback: (_err, m) => cb(m.data) }),
  });
}
process.stdout.write("ready\n");
// Subscriptions exist on the server once each connection has been flushed.
const result = await runWorkload(pairs, config, () =>
  Promise.all(connections.map((c) => c.flush())),
);
process.stdout.write(`${JSON.stringify(result)}\n`);
await Promise.all(connections.map((c) => c.close()));
process.exit(0);
