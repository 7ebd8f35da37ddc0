/**
 * The E2E key directory (store.ts `KeyStore`) in the Redis store: per owner a hash
 * `e2e:{id}` (identity, head, max_prekey_id) and a zset `e2e:{id}:otk` of one-time
 * prekey IDs with their entries in the hash `e2e:{id}:otk:e`. Each operation is one Lua
 * script, so a one-time prekey is handed out exactly once however many nodes fetch.
 */
import type IORedis from "ioredis";
import type { ExportedKeys, KeyStore } from "../store.ts";

/**
 * ARGV: replace (0/1), max one-time, identity, head, then (id, entry) pairs.
 * Returns {ok (1/0), count or error}.
 */
const PUBLISH = `
local b, otk, ent = KEYS[1], KEYS[2], KEYS[3]
local replace, maxOne, identity, head = ARGV[1] == '1', tonumber(ARGV[2]), ARGV[3], ARGV[4]
local held = redis.call('HGET', b, 'identity')
local maxId = tonumber(redis.call('HGET', b, 'max_prekey_id') or '-1')
local n = (#ARGV - 4) / 2
local top = 0
for i = 5, #ARGV, 2 do top = math.max(top, tonumber(ARGV[i])) end
local function stale(floor)
  for i = 5, #ARGV, 2 do if tonumber(ARGV[i]) <= floor then return true end end
  return false
end
if replace or not held then
  if n > maxOne then return {0, 'too_many'} end
  local floor = -1
  if held and held == identity then floor = maxId end
  if stale(floor) then return {0, 'stale_prekey'} end
  redis.call('DEL', otk, ent)
  redis.call('HSET', b, 'identity', identity, 'head', head, 'max_prekey_id', math.max(top, floor, 0))
else
  if held ~= identity then return {0, 'identity_mismatch'} end
  if stale(maxId) then return {0, 'stale_prekey'} end
  if redis.call('ZCARD', otk) + n > maxOne then return {0, 'too_many'} end
  redis.call('HSET', b, 'head', head, 'max_prekey_id', math.max(top, maxId))
end
for i = 5, #ARGV, 2 do
  redis.call('ZADD', otk, tonumber(ARGV[i]), ARGV[i])
  redis.call('HSET', ent, ARGV[i], ARGV[i + 1])
end
return {1, redis.call('ZCARD', otk)}
`;

/** Returns {head, entry or false, remaining}, or false when there is no bundle. */
const TAKE = `
local head = redis.call('HGET', KEYS[1], 'head')
if not head then return false end
local first = redis.call('ZPOPMIN', KEYS[2])
local entry = false
if first[1] then
  entry = redis.call('HGET', KEYS[3], first[1])
  redis.call('HDEL', KEYS[3], first[1])
end
return {head, entry, redis.call('ZCARD', KEYS[2])}
`;

export class RedisKeyStore implements KeyStore {
  readonly #r: IORedis;
  readonly #p: string;

  constructor(redis: IORedis, prefix: string) {
    this.#r = redis;
    this.#p = prefix;
  }

  #keys(owner: string): [string, string, string] {
    const b = `${this.#p}e2e:${owner.toLowerCase()}`;
    return [b, `${b}:otk`, `${b}:otk:e`];
  }

  async publishKeys(
    owner: string,
    bundle: {
      identity: Uint8Array;
      head: Uint8Array;
      oneTime: { id: number; entry: Uint8Array }[];
    },
    replace: boolean,
    maxOneTime: number,
  ): Promise<{ ok: true; oneTime: number } | { ok: false; error: string }> {
    const args: (string | Buffer)[] = [
      replace ? "1" : "0",
      String(maxOneTime),
      Buffer.from(bundle.identity),
      Buffer.from(bundle.head),
    ];
    for (const k of bundle.oneTime) args.push(String(k.id), Buffer.from(k.entry));
    const [ok, value] = (await this.#r.eval(PUBLISH, 3, ...this.#keys(owner), ...args)) as [
      number,
      number | string,
    ];
    return ok === 1 ? { ok: true, oneTime: Number(value) } : { ok: false, error: String(value) };
  }

  async takeKeys(
    owner: string,
  ): Promise<{ head: Uint8Array; oneTime: Uint8Array | null; remaining: number } | null> {
    const r = (await this.#r.callBuffer("EVAL", [TAKE, 3, ...this.#keys(owner)])) as
      | [Buffer, Buffer | null, number]
      | null;
    if (!r) return null;
    return {
      head: new Uint8Array(r[0]),
      oneTime: r[1] ? new Uint8Array(r[1]) : null,
      remaining: Number(r[2]),
    };
  }

  async countKeys(owner: string): Promise<number | null> {
    const [b, otk] = this.#keys(owner);
    if (!(await this.#r.exists(b))) return null;
    return this.#r.zcard(otk);
  }

  async keyIdentity(owner: string): Promise<Uint8Array | null> {
    const [b] = this.#keys(owner);
    const identity = await this.#r.hgetBuffer(b, "identity");
    return identity ? new Uint8Array(identity) : null;
  }

  async exportKeys(owner: string): Promise<ExportedKeys | null> {
    const [b, otk, ent] = this.#keys(owner);
    const h = await this.#r.hgetallBuffer(b);
    if (!h.identity || !h.head) return null;
    const ids = await this.#r.zrange(otk, "0", "-1");
    const entries = ids.length > 0 ? await this.#r.hmgetBuffer(ent, ...ids) : [];
    return {
      identity: new Uint8Array(h.identity),
      head: new Uint8Array(h.head),
      maxPrekeyId: Number(String(h.max_prekey_id ?? "0")),
      oneTime: ids.map((id, i) => ({ id: Number(id), entry: new Uint8Array(entries[i] ?? []) })),
    };
  }

  async importKeys(owner: string, k: ExportedKeys): Promise<void> {
    const [b, otk, ent] = this.#keys(owner);
    const tx = this.#r.multi().del(b, otk, ent);
    tx.hset(b, "identity", Buffer.from(k.identity), "head", Buffer.from(k.head));
    tx.hset(b, "max_prekey_id", String(k.maxPrekeyId));
    for (const p of k.oneTime) {
      tx.zadd(otk, p.id, String(p.id));
      tx.hset(ent, String(p.id), Buffer.from(p.entry));
    }
    await tx.exec();
  }

  async deleteKeys(owner: string): Promise<boolean> {
    return (await this.#r.del(...this.#keys(owner))) > 0;
  }
}
