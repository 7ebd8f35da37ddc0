/**
 * The server's client-key cache (src/server/key-cache.ts): every ID costs one key
 * import the first time and none after, whether registered, revoked or unknown; a
 * registry change is noticed per entry (no wholesale clearing); the least recently
 * used go first beyond the capacity. Imports are counted on the real RsaPublicKey.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { fingerprint } from "../src/crypto/primitives.ts";
import { generateRsaKeyPair, RsaPublicKey } from "../src/crypto/rsa.ts";
import { StandIn } from "../src/handshake/server.ts";
import { newClientId } from "../src/ids.ts";
import { ClientKeyCache } from "../src/server/key-cache.ts";
import type { ClientRecord } from "../src/store/store.ts";

let spkiA: Uint8Array;
let spkiB: Uint8Array;
let imports = 0;
const fromSpki = RsaPublicKey.fromSpki;

beforeAll(async () => {
  [spkiA, spkiB] = (await Promise.all([generateRsaKeyPair(2048), generateRsaKeyPair(2048)])).map(
    (p) => p.publicSpki,
  ) as [Uint8Array, Uint8Array];
  RsaPublicKey.fromSpki = (spki: Uint8Array) => {
    imports++;
    return fromSpki.call(RsaPublicKey, spki);
  };
});
afterEach(() => {
  imports = 0;
});
afterAll(() => {
  RsaPublicKey.fromSpki = fromSpki;
});

const record = (id: string, spki: Uint8Array, revokedAt: number | null = null): ClientRecord => ({
  id,
  name: id,
  publicKey: spki,
  fingerprint: fingerprint(spki),
  createdAt: 0,
  revokedAt,
  lastSeen: null,
  online: false,
});

test("registered, revoked and unknown IDs: one import the first time, none after", async () => {
  const cache = new ClientKeyCache();
  const reg = newClientId();
  const rev = newClientId();
  const unknown = newClientId();
  for (let round = 0; round < 3; round++) {
    const a = await cache.resolve(reg, record(reg, spkiA), 256);
    const b = await cache.resolve(rev, record(rev, spkiB, 1), 256);
    const c = await cache.resolve(unknown, null, 256);
    expect(a).toBeInstanceOf(RsaPublicKey);
    expect(b).toBeInstanceOf(StandIn);
    expect(c).toBeInstanceOf(StandIn);
    expect((c as StandIn).key.modulusBytes).toBe(256); // the signature's size
    expect(imports).toBe(3); // all in the first round
  }
});

test("unknown IDs get stand-ins of their own, never the same key twice", async () => {
  const cache = new ClientKeyCache();
  const keys = new Set<string>();
  for (let i = 0; i < 5; i++) {
    const s = (await cache.resolve(newClientId(), null, 384)) as StandIn;
    expect(s.key.modulusBytes).toBe(384);
    keys.add(s.key.fingerprint);
  }
  expect(keys.size).toBe(5);
});

test("a registry change is seen per entry: revoked, re-keyed, newly enrolled", async () => {
  const cache = new ClientKeyCache();
  const id = newClientId();
  expect(await cache.resolve(id, null, 256)).toBeInstanceOf(StandIn); // unknown
  expect(await cache.resolve(id, record(id, spkiA), 256)).toBeInstanceOf(RsaPublicKey); // enrolled
  const b = await cache.resolve(id, record(id, spkiB), 256); // another key
  expect((b as RsaPublicKey).fingerprint).toBe(fingerprint(spkiB));
  expect(await cache.resolve(id, record(id, spkiB, 5), 256)).toBeInstanceOf(StandIn); // revoked
  expect(imports).toBe(4);
});

test("beyond its capacity the least recently used ID goes first", async () => {
  const cache = new ClientKeyCache(3);
  const ids = [newClientId(), newClientId(), newClientId(), newClientId()];
  for (const id of ids.slice(0, 3)) await cache.resolve(id, null, 256);
  await cache.resolve(ids[0] as string, null, 256); // used again: now the newest
  await cache.resolve(ids[3] as string, null, 256); // evicts ids[1]
  expect(cache.size).toBe(3);
  imports = 0;
  await cache.resolve(ids[0] as string, null, 256);
  await cache.resolve(ids[2] as string, null, 256);
  expect(imports).toBe(0);
  await cache.resolve(ids[1] as string, null, 256);
  expect(imports).toBe(1);
});
