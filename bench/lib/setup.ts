/**
 * A data directory for a benchmark server, with many registered clients that share
 * one key pair (so enrolment is instant; the server verifies each login all the same).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatIdentity } from "../../src/client/identity.ts";
import { fingerprint } from "../../src/crypto/primitives.ts";
import { generateRsaKeyPair } from "../../src/crypto/rsa.ts";
import { newClientId } from "../../src/ids.ts";
import { loadOrCreateServerKey, openStore } from "../../src/server/datadir.ts";

export interface BenchData {
  dir: string;
  /** Identity file texts, server address left as a placeholder `SERVER`. */
  identities: string[];
}

export async function prepareData(
  dir: string,
  clients: number,
  clientBits = 2048,
): Promise<BenchData> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { key } = await loadOrCreateServerKey(dir, { bits: 3072 });
  const pair = await generateRsaKeyPair(clientBits);
  const store = openStore(dir);
  const identities: string[] = [];
  try {
    for (let i = 0; i < clients; i++) {
      const id = newClientId();
      const name = `bench-${i}`;
      await store.addClient({
        id,
        name,
        publicKey: pair.publicSpki,
        fingerprint: fingerprint(pair.publicSpki),
      });
      identities.push(
        formatIdentity({
          id,
          name,
          server: "127.0.0.1:1",
          serverSpki: key.publicKey.spki,
          serverFingerprint: key.publicKey.fingerprint,
          clientFingerprint: fingerprint(pair.publicSpki),
          privatePkcs8: pair.privatePkcs8,
        }),
      );
    }
  } finally {
    store.close();
  }
  return { dir, identities };
}

/**
 * Settings for a benchmark server: limits that would throttle a load test lifted
 * (not the work budget: the fairness scenario measures it), then `extra` TOML lines.
 */
export function writeBenchConfig(dir: string, extra: string[] = []): string {
  const path = join(dir, "bench.toml");
  writeFileSync(
    path,
    [
      "max_pending_handshakes = 20000",
      "max_pending_per_prefix = 20000",
      "handshake_rate = 1000000",
      "handshake_burst = 1000000",
      "max_outbound_bytes = 67108864",
      "queue_max_messages = 10000000",
      "queue_max_per_sender = 10000000",
      "queue_max_bytes = 4294967296",
      "heartbeat_interval = 15",
      "heartbeat_timeout = 60",
      "connection_timeout = 30",
      'log_level = "warn"',
      ...extra,
      "",
    ].join("\n"),
  );
  return path;
}
