/**
 * Offline queue load: a sender sends M messages to a registered client that is not
 * connected (each answered by NOTICE queued, which paces a window of W), then the
 * recipient logs in and receives them all.
 * Usage: bun bench/loadgen-offline.ts CONFIG.json
 */
import { readFileSync } from "node:fs";
import { connect } from "../src/client/client.ts";
import { parseIdentity } from "../src/client/identity.ts";

const c = JSON.parse(readFileSync(process.argv[2] as string, "utf8"));
const [senderId, recipientId] = await Promise.all([
  parseIdentity(c.sender),
  parseIdentity(c.recipient),
]);
const sender = await connect({ identity: senderId, reconnect: false });
process.stdout.write("ready\n");
const data = new Uint8Array(c.size);
let sent = 0;
let queued = 0;
let refused = 0;
const stored = Promise.withResolvers<void>();
const pump = () => {
  while (sent < c.messages && sent - queued - refused < c.window) {
    sender.send(recipientId.id, data);
    sent++;
  }
};
sender.on("notice", (n) => {
  if (n.status === "queued") queued++;
  else refused++;
  if (queued + refused >= c.messages) stored.resolve();
  else pump();
});
const t0 = performance.now();
pump();
const deadline = setTimeout(() => stored.reject(new Error("storing timed out")), 300_000);
await stored.promise;
const storeSeconds = (performance.now() - t0) / 1000;

let got = 0;
const drained = Promise.withResolvers<void>();
const t1 = performance.now();
const recipient = await connect({ identity: recipientId, reconnect: false });
recipient.on("message", () => {
  if (++got >= queued) drained.resolve();
});
if (queued === 0) drained.resolve();
await drained.promise;
clearTimeout(deadline);
const drainSeconds = (performance.now() - t1) / 1000;
process.stdout.write(
  `${JSON.stringify({ queued, refused, storedPerSec: queued / storeSeconds, drainedPerSec: got / drainSeconds, storeSeconds, drainSeconds })}\n`,
);
await Promise.all([sender.close(), recipient.close()]);
process.exit(0);
