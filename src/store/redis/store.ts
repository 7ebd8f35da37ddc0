/**
 * The Redis store: the registry and the offline queue of src/store/store.ts kept in one
 * Redis (7.0 or later), so that several server nodes can share them (docs/CLUSTER.md).
 * Client: ioredis (chosen by measurement, docs/CLUSTER.md § The Redis client). Every
 * call has a timeout (`commandTimeout`); an unreachable Redis fails the call with
 * `StoreError` `STORE_UNAVAILABLE` instead of waiting.
 *
 * Layout (prefix `bb:` by default): `client:{id}` hash, `names` hash (name key → id),
 * `clients` zset (id by creation time), `registry` counter (the version), `inbox:{id}`
 * stream of held messages with ids `SEQ-0`, `inbox:{id}:totals` and `inbox:{id}:senders`
 * hashes, `seq` counter, `recipients` set, `pending` counter.
 */
import IORedis from "ioredis";
import { StoreError } from "../../errors.ts";
import { isUuid, nameKey } from "../../ids.ts";
import type {
  ClientRecord,
  EnqueueResult,
  KeyStore,
  NodeLease,
  PresenceChange,
  QueuedMessage,
  QueueLimits,
  Store,
  StoredMessage,
} from "../store.ts";
import { RedisKeyStore } from "./keys.ts";
import { runScript, type Script, script } from "./lua.ts";
import { RedisQueue } from "./queue.ts";
import { toRecord } from "./records.ts";
import { RedisRooms } from "./rooms.ts";
import { ADD_CLIENT, PRESENCE, REVOKE } from "./scripts.ts";
import { redactUrl } from "./url.ts";

/** How long one Redis call may take before it fails (ms). */
const COMMAND_TIMEOUT_MS = 2_000;

export interface RedisStoreOptions {
  /** Key prefix, `bb:` by default; lets tests and several deployments share one Redis. */
  prefix?: string;
  commandTimeoutMs?: number;
  /** `CLIENT SETNAME` of the connection (servers use {@link SERVER_CONNECTION_NAME}). */
  connectionName?: string;
}

/** The connection name of a backbone server's store connection (see `serversConnected`). */
export const SERVER_CONNECTION_NAME = "backbone-serve";

export { isRedisUrl, redactUrl } from "./url.ts";

export class RedisStore implements Store {
  readonly url: string;
  /** The E2E key directory (docs/PROTOCOL.md § KEYS). */
  readonly keys: KeyStore;
  readonly #r: IORedis;
  readonly #p: string;
  /** The connection's last error: ioredis rejects `connect()` with only "Connection is closed.". */
  #lastError: Error | undefined;
  /** Rooms and memberships (rooms.ts). */
  readonly rooms: RedisRooms;
  /** The offline queue (queue.ts). */
  readonly #queue: RedisQueue;

  /** Connects lazily; the first call connects. Use {@link RedisStore.open} to connect now. */
  constructor(url: string, opts: RedisStoreOptions = {}) {
    this.url = url;
    this.#p = opts.prefix ?? "bb:";
    this.#r = new IORedis(url, {
      lazyConnect: true,
      connectionName: opts.connectionName,
      commandTimeout: opts.commandTimeoutMs ?? COMMAND_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    });
    // Errors surface through the calls; the connection's own events would otherwise be
    // printed by ioredis as unhandled.
    this.#r.on("error", (err: Error) => {
      this.#lastError = err;
    });
    this.keys = new RedisKeyStore(this.#r, this.#p);
    this.rooms = new RedisRooms(this.#r, this.#p, (what, run) => this.#call(what, run));
    this.#queue = new RedisQueue(this.#r, this.#p, (what, run) => this.#call(what, run));
  }

  /** Opens the store at `url` and checks that Redis answers. Throws `STORE_OPEN`. */
  static async open(url: string, opts: RedisStoreOptions = {}): Promise<RedisStore> {
    const store = new RedisStore(url, opts);
    try {
      await store.#r.connect();
      await store.#r.ping();
    } catch (cause) {
      store.close();
      throw new StoreError(
        "STORE_OPEN",
        `cannot open store ${redactUrl(url)}: ${openFailure(cause, store.#lastError)}`,
        {
          cause,
        },
      );
    }
    return store;
  }

  #k(...parts: string[]): string {
    return this.#p + parts.join(":");
  }

  async #call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (cause) {
      if (cause instanceof StoreError) throw cause;
      throw new StoreError("STORE_UNAVAILABLE", `redis ${what}: ${(cause as Error).message}`, {
        cause,
      });
    }
  }

  #eval(s: Script, keys: string[], args: (string | number | Uint8Array)[]) {
    return runScript(this.#r, s, keys, args);
  }

  async addClient(c: {
    id: string;
    name: string;
    publicKey: Uint8Array;
    fingerprint: string;
  }): Promise<ClientRecord> {
    const createdAt = Math.floor(Date.now() / 1000);
    const id = c.id.toLowerCase();
    await this.#register(c, [id, c.name, nameKey(c.name), c.publicKey, c.fingerprint, createdAt]);
    return { ...c, id, createdAt, revokedAt: null, lastSeen: null, online: false };
  }

  async importClient(r: ClientRecord): Promise<void> {
    const id = r.id.toLowerCase();
    const extra = [r.revokedAt ?? "", r.lastSeen ?? ""];
    await this.#register(r, [
      id,
      r.name,
      nameKey(r.name),
      r.publicKey,
      r.fingerprint,
      r.createdAt,
      ...extra,
    ]);
  }

  async #register(c: { id: string; name: string }, args: (string | number | Uint8Array)[]) {
    const id = c.id.toLowerCase();
    const r = await this.#call("register", () =>
      this.#eval(
        S.addClient,
        [this.#k("client", id), this.#k("names"), this.#k("clients"), this.#k("registry")],
        args,
      ),
    );
    if (r === "NAME_TAKEN")
      throw new StoreError("NAME_TAKEN", `the name "${c.name}" is already taken`);
    if (r === "ID_TAKEN") throw new StoreError("ID_TAKEN", `the ID ${c.id} is already registered`);
  }

  async getClient(id: string): Promise<ClientRecord | null> {
    const h = await this.#call("get client", () =>
      this.#r.hgetallBuffer(this.#k("client", id.toLowerCase())),
    );
    return toRecord(h);
  }

  async findClient(query: string): Promise<ClientRecord | null> {
    if (isUuid(query)) return this.getClient(query);
    const id = await this.#call("find client", () =>
      this.#r.hget(this.#k("names"), nameKey(query)),
    );
    return id ? this.getClient(id) : null;
  }

  async listClients(): Promise<ClientRecord[]> {
    const ids = await this.#call("list clients", () =>
      this.#r.zrange(this.#k("clients"), "0", "-1"),
    );
    const pipe = this.#r.pipeline();
    for (const id of ids) pipe.hgetallBuffer(this.#k("client", id));
    const rows = (await this.#call("list clients", () => pipe.exec())) ?? [];
    const out: ClientRecord[] = [];
    for (const [err, h] of rows) {
      const rec = err ? null : toRecord(h as Record<string, Buffer>);
      if (rec) out.push(rec);
    }
    // As the SQLite store: by creation time, then name.
    return out.sort(
      (a, b) => a.createdAt - b.createdAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
  }

  async countClients(): Promise<number> {
    return (await this.listClients()).filter((c) => c.revokedAt === null).length;
  }

  async revokeClient(id: string, at: number): Promise<boolean> {
    // A revoked client's E2E bundle goes with it (docs/PROTOCOL.md § KEYS).
    await this.#call("revoke", () => this.keys.deleteKeys(id));
    const r = await this.#call("revoke", () =>
      this.#eval(
        S.revoke,
        [this.#k("client", id.toLowerCase()), this.#k("registry"), this.#k("revocations")],
        [at],
      ),
    );
    return r === 1;
  }

  async revocationSerial(): Promise<number> {
    return Number(
      (await this.#call("revocations", () => this.#r.get(this.#k("revocations")))) ?? 0,
    );
  }

  async dropFromSender(sender: string): Promise<number> {
    return this.#queue.removeEverywhere("sender", sender.toLowerCase());
  }

  async renewLease(lease: NodeLease): Promise<void> {
    await this.#call("lease", () =>
      this.#r.hset(this.#k("leases"), lease.node, JSON.stringify(lease)),
    );
  }

  async leases(): Promise<NodeLease[]> {
    const all = await this.#call("leases", () => this.#r.hgetall(this.#k("leases")));
    return Object.values(all).map((v) => JSON.parse(v) as NodeLease);
  }

  async setPresence(changes: PresenceChange[]): Promise<void> {
    if (changes.length === 0) return;
    const keys = changes.map((c) => this.#k("client", c.id.toLowerCase()));
    const args = changes.flatMap((c) => [c.at, c.online ? 1 : 0]);
    await this.#call("presence", () => this.#eval(S.presence, keys, args));
  }

  async resetPresence(): Promise<void> {
    const ids = await this.#call("presence", () => this.#r.zrange(this.#k("clients"), "0", "-1"));
    if (ids.length === 0) return;
    const pipe = this.#r.pipeline();
    for (const id of ids) pipe.hset(this.#k("client", id), "online", "0");
    await this.#call("presence", () => pipe.exec());
  }

  // ---- the offline queue (queue.ts) ---------------------------------------------------

  enqueue(
    recipient: string,
    messages: QueuedMessage[],
    limits: QueueLimits,
  ): Promise<EnqueueResult[]> {
    return this.#queue.enqueue(recipient, messages, limits);
  }

  peek(recipient: string, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    return this.#queue.peek(recipient, limit, afterSeq);
  }

  remove(recipient: string, throughSeq: number): Promise<void> {
    return this.#queue.remove(recipient, throughSeq);
  }

  expire(before: number): Promise<number> {
    return this.#queue.removeEverywhere("age", before);
  }

  heldRecipients(): Promise<string[]> {
    return this.#queue.heldRecipients();
  }

  pendingCount(): Promise<number> {
    return this.#queue.pendingCount();
  }

  async version(): Promise<number> {
    return Number((await this.#call("version", () => this.#r.get(this.#k("registry")))) ?? 0);
  }

  /**
   * Records `fingerprint` as the cluster's server key if none is recorded yet, and returns
   * the recorded one: every node must present the key clients pin, so a node whose key
   * differs must refuse to start (docs/CLUSTER.md § Server key).
   */
  async claimServerKey(fingerprint: string): Promise<string> {
    const key = this.#k("server_key");
    await this.#r.set(key, fingerprint, "NX");
    return (await this.#r.get(key)) ?? fingerprint;
  }

  /**
   * A one-line warning when Redis's persistence settings can lose a message the server
   * has acknowledged (NOTICE `queued`): anything but `appendonly yes` with `appendfsync
   * always`. Null when acknowledged means durable.
   */
  async persistenceWarning(): Promise<string | null> {
    const [, aof] = (await this.#r.config("GET", "appendonly")) as string[];
    const [, fsync] = (await this.#r.config("GET", "appendfsync")) as string[];
    if (aof === "yes" && fsync === "always") return null;
    return `redis persistence is appendonly=${aof} appendfsync=${fsync}: messages acknowledged as queued can be lost if Redis stops; set appendonly yes and appendfsync always`;
  }

  /** One small write (the `health` key): fails when Redis cannot take writes. */
  async probe(): Promise<void> {
    await this.#call("probe", () => this.#r.set(this.#k("health"), String(Date.now())));
  }

  /** The server key fingerprint recorded by the first server, if any. */
  async recordedServerKey(): Promise<string | null> {
    return this.#call("server key", () => this.#r.get(this.#k("server_key")));
  }

  /** How many backbone servers are connected to this Redis now (`CLIENT LIST` names). */
  async serversConnected(): Promise<number> {
    const list = await this.#call("client list", () => this.#r.client("LIST"));
    return String(list)
      .split("\n")
      .filter((line) => line.includes(` name=${SERVER_CONNECTION_NAME} `)).length;
  }

  /** Redis answers, and each recipient's totals match its stream. */
  async check(): Promise<string[]> {
    const problems: string[] = [];
    try {
      await this.#r.ping();
      await this.#queue.checkTotals(problems);
    } catch (e) {
      problems.push(`redis unreachable: ${(e as Error).message}`);
    }
    return problems;
  }

  close(): void {
    this.#r.disconnect();
  }
}

const S = {
  addClient: script(ADD_CLIENT),
  revoke: script(REVOKE),
  presence: script(PRESENCE),
};

/**
 * Why Redis could not be opened, in words a user can act on: the socket's own error
 * (`connect ECONNREFUSED 127.0.0.1:6379`) rather than ioredis's "Connection is closed.".
 */
function openFailure(cause: unknown, last: Error | undefined): string {
  const err = (last ?? cause) as Error & { code?: string };
  const code = err.code ?? (cause as { code?: string }).code;
  if (code === "ECONNREFUSED") return "connection refused (is redis-server running there?)";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `host not found (${code})`;
  return err.message.split("\n")[0] ?? String(err);
}
