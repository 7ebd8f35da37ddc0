/**
 * Handshake load: `concurrency` loops, each logging in (full handshake) and out again
 * as fast as it can, for `seconds`. Prints logins per second.
 * Usage: bun bench/loadgen-handshakes.ts CONFIG.json
 */
import { readFileSync } from "node:fs";
import { connect } from "../src/client/client.ts";
import { type Identity, parseIdentity } from "../src/client/identity.ts";

const c = JSON.parse(readFileSync(process.argv[2] as string, "utf8"));
const identities: Identity[] = await Promise.all(
  (c.identities as string[]).map((t) => parseIdentity(t)),
);
process.stdout.write("ready\n");
const end = performance.now() + c.seconds * 1000;
let logins = 0;
let failures = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: c.concurrency }, async (_, i) => {
    const identity = identities[i % identities.length] as Identity;
    while (performance.now() < end) {
      try {
        const client = await connect({ identity, reconnect: false });
        logins++;
        await client.close("bench");
      } catch {
        failures++;
      }
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(
  `${JSON.stringify({ logins, failures, seconds, loginsPerSec: logins / seconds })}\n`,
);
process.exit(0);
