/**
 * A refused login costs the same for registered, revoked and unknown IDs (docs/SECURITY.md
 * § Timing), measured against a real server process on loopback.
 *
 * Each trial sends a response with a valid shape (genuine OAEP block and AEAD, signed by
 * a key that is not the client's) naming, in random order, a fresh registered ID, a
 * fresh revoked ID and a fresh unknown ID — each for the first time, so no key of
 * theirs can be cached — and times each from the response's last byte written to the
 * STOP `authentication failed` read. What is compared is the difference per trial,
 * registered − unknown and revoked − unknown; its median gets a distribution-free 99%
 * confidence interval (order statistics of the sign test).
 *
 * The leak to catch: the old server imported a registered client's key on the first
 * look-up and nothing for an unknown ID — a median difference of ~190 µs on loopback
 * here, 67–194 µs over runs (the issue measured ~100 µs; 35 of 40 pairs told apart).
 * Verdicts against TOLERANCE = 40 µs, after each batch of trials (other processes
 * share the machine and noise varies, so an inconclusive batch means more trials):
 * - leak:   either interval lies wholly above TOLERANCE — fail;
 * - equal:  both intervals lie inside ±TOLERANCE — pass;
 * - after the last batch, the medians decide (both within ±TOLERANCE: equal).
 */
import { expect, test } from "bun:test";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { idToBytes, newClientId } from "../../src/ids.ts";
import { enrollClient } from "../../src/server/enroll.ts";
import { makeDataDir, spawnServer } from "../helpers/processes.ts";
import { FramedSocket } from "../helpers/raw.ts";

const BATCH = 40;
const MAX_TRIALS = 600;
/** The largest difference of medians (ms) taken as equal. */
const TOLERANCE = 0.04;

/** A 2048-bit SPKI like `template` but with a random modulus (valid to import; no one has its private half). */
function randomSpki(template: Uint8Array): Uint8Array {
  const spki = new Uint8Array(template);
  // 30 82 01 22 | 30 0d <rsaEncryption, NULL> | 03 82 01 0f 00 | 30 82 01 0a | 02 82 01 01 00 <n: 256 bytes> | 02 03 01 00 01
  const at = spki.length - 5 - 256;
  crypto.getRandomValues(spki.subarray(at, at + 256));
  spki[at] = (spki[at] as number) | 0x80;
  spki[at + 255] = (spki[at + 255] as number) | 1;
  return spki;
}

/** The median of `xs` and its distribution-free confidence interval at z (sign-test order statistics). */
function medianCi(xs: number[], z = 2.576): { median: number; lo: number; hi: number } {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const j = Math.max(0, Math.floor(n / 2 - (z * Math.sqrt(n)) / 2) - 1);
  const median =
    n % 2 ? (s[(n - 1) / 2] as number) : ((s[n / 2 - 1] as number) + (s[n / 2] as number)) / 2;
  return { median, lo: s[j] as number, hi: s[n - 1 - j] as number };
}

test("registered, revoked and unknown IDs are refused in times that cannot be told apart", async () => {
  await using data = await makeDataDir();
  const settings = {
    handshake_rate: 100_000,
    handshake_burst: 100_000,
    log_level: "error" as const,
  };
  await using server = await spawnServer(data.dir, settings);
  const [signer, template] = await Promise.all([
    generateRsaKeyPair(2048),
    generateRsaKeyPair(2048),
  ]);
  const wrongKey = await RsaPrivateKey.fromPkcs8(signer.privatePkcs8);
  const serverKey = data.key.publicKey;

  // Fresh IDs for every trial: registered and revoked ones each with a key of their own.
  const fresh = async (kind: "registered" | "revoked" | "unknown"): Promise<string> => {
    if (kind === "unknown") return newClientId();
    const { record } = await enrollClient(data.store, {
      server: server.address,
      serverKey: data.key,
      publicKey: randomSpki(template.publicSpki),
    });
    if (kind === "revoked") await data.store.revokeClient(record.id, Math.floor(Date.now() / 1000));
    return record.id;
  };

  /** Milliseconds from the response written to the refusal read. */
  const probe = async (id: string): Promise<number> => {
    await using sock = await FramedSocket.dial(server.port);
    const challenge = await sock.nextFrame();
    const hs = new ClientHandshake({
      id: idToBytes(id),
      key: wrongKey,
      pinnedServerKey: serverKey,
    });
    const response = await hs.respond(challenge);
    const t0 = performance.now();
    sock.writeFrame(response);
    const stop = await sock.nextFrame();
    const t = performance.now() - t0;
    expect(() => hs.finish(stop)).toThrow("authentication failed");
    return t;
  };

  const kinds = ["registered", "revoked", "unknown"] as const;
  const diffs = { registered: [] as number[], revoked: [] as number[] };
  let verdict: "equal" | "leak" | undefined;
  let report = "";
  // Warm-up: the server's first handshakes pay for JIT and lazy imports.
  for (let i = 0; i < 10; i++) await probe(await fresh(kinds[i % 3] as (typeof kinds)[number]));
  while (!verdict && diffs.registered.length < MAX_TRIALS) {
    for (let b = 0; b < BATCH; b++) {
      const ids = { registered: "", revoked: "", unknown: "" };
      for (const k of kinds) ids[k] = await fresh(k);
      const order = [...kinds].sort(() => Math.random() - 0.5);
      const t: Record<string, number> = {};
      for (const k of order) t[k] = await probe(ids[k]);
      diffs.registered.push((t.registered as number) - (t.unknown as number));
      diffs.revoked.push((t.revoked as number) - (t.unknown as number));
    }
    const reg = medianCi(diffs.registered);
    const rev = medianCi(diffs.revoked);
    const n = diffs.registered.length;
    const fmt = (c: typeof reg) =>
      `median ${(c.median * 1000).toFixed(0)} µs [99% CI ${(c.lo * 1000).toFixed(0)}, ${(c.hi * 1000).toFixed(0)}]`;
    report = `${n} trials; registered−unknown ${fmt(reg)}; revoked−unknown ${fmt(rev)}`;
    const inside = (c: typeof reg) => c.lo > -TOLERANCE && c.hi < TOLERANCE;
    if (reg.lo > TOLERANCE || rev.lo > TOLERANCE) verdict = "leak";
    else if (inside(reg) && inside(rev)) verdict = "equal";
    else if (n >= MAX_TRIALS) {
      const small = (c: typeof reg) => Math.abs(c.median) < TOLERANCE;
      verdict = small(reg) && small(rev) ? "equal" : "leak";
    }
  }
  console.log(`auth timing: ${verdict}: ${report}`);
  expect({ verdict, report }).toEqual({ verdict: "equal", report });
}, 240_000);
