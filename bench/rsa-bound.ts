/**
 * The bound RSA sets on logins: what one server login costs in RSA alone — one
 * RSA-OAEP decryption with the 3072-bit server key plus one RSA-PSS verification with
 * a 3072-bit client key — done as fast as this machine can, with `concurrency`
 * operations in flight (WebCrypto runs them on its thread pool, as in the server).
 * Usage: bun bench/rsa-bound.ts CONFIG.json
 */
import { readFileSync } from "node:fs";
import { generateRsaKeyPair, RsaPrivateKey } from "../src/crypto/rsa.ts";
import { cpuSeconds } from "./lib/proc.ts";

const c = JSON.parse(readFileSync(process.argv[2] as string, "utf8"));
const server = await RsaPrivateKey.fromPkcs8((await generateRsaKeyPair(3072)).privatePkcs8);
const client = await RsaPrivateKey.fromPkcs8((await generateRsaKeyPair(3072)).privatePkcs8);
const block = await server.publicKey.encrypt(new Uint8Array(64));
const message = new Uint8Array(100);
const signature = await client.sign(message);
process.stdout.write("ready\n");
const end = performance.now() + c.seconds * 1000;
let ops = 0;
const cpu0 = cpuSeconds(process.pid);
const t0 = performance.now();
await Promise.all(
  Array.from({ length: c.concurrency }, async () => {
    while (performance.now() < end) {
      await server.decrypt(block);
      if (!(await client.publicKey.verify(message, signature))) throw new Error("verify failed");
      ops++;
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
const cores = (cpuSeconds(process.pid) - cpu0) / seconds;
process.stdout.write(`${JSON.stringify({ ops, seconds, opsPerSec: ops / seconds, cores })}\n`);
process.exit(0);
