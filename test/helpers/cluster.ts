/**
 * A real server on 127.0.0.1 (port 0) with a fresh data directory, and enrolled
 * clients, for integration tests. Keys are 2048-bit to keep the suite fast, and
 * enrolled clients share one key pair unless asked for their own (a client is its ID;
 * generating a key per client would cost ~0.1 s each).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, connect } from "../../src/client/client.ts";
import { type Identity, parseIdentity } from "../../src/client/identity.ts";
import type { ConnectOptions, Notice } from "../../src/client/types.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import type { LogFields, Logger } from "../../src/log.ts";
import { enrollClient } from "../../src/server/enroll.ts";
import { BackboneServer } from "../../src/server/server.ts";
import type { ServerSettings } from "../../src/server/settings.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/store.ts";
import { RawSession } from "./raw.ts";

/** Short liveness settings for tests that wait on heartbeats or timeouts. */
export const FAST = {
  heartbeat_interval: 0.2,
  heartbeat_timeout: 0.6,
  connection_timeout: 1,
} as const satisfies Partial<ServerSettings>;

let serverKey: Promise<RsaPrivateKey> | null = null;
let clientKey: Promise<{ key: RsaPrivateKey; spki: Uint8Array }> | null = null;

/** One 2048-bit server key per test process. */
export function testServerKey(): Promise<RsaPrivateKey> {
  serverKey ??= generateRsaKeyPair(2048).then((p) => RsaPrivateKey.fromPkcs8(p.privatePkcs8));
  return serverKey;
}

/** One 2048-bit client key pair per test process, shared by enrolled clients. */
export function testClientKey(): Promise<{ key: RsaPrivateKey; spki: Uint8Array }> {
  clientKey ??= generateRsaKeyPair(2048).then(async (p) => ({
    key: await RsaPrivateKey.fromPkcs8(p.privatePkcs8),
    spki: p.publicSpki,
  }));
  return clientKey;
}

/**
 * Registers a client in `store` and returns its identity (pinning `serverKey`, pointing
 * at `server`). With `ownKey`, the client gets a fresh key pair instead of the shared one.
 */
export async function enrollIdentity(
  store: Store,
  serverKey: RsaPrivateKey,
  server: string,
  name: string,
  ownKey = false,
): Promise<Identity> {
  if (ownKey) {
    const { identityText } = await enrollClient(store, { name, server, serverKey, bits: 2048 });
    return parseIdentity(identityText);
  }
  const shared = await testClientKey();
  const { record } = await enrollClient(store, { name, server, serverKey, publicKey: shared.spki });
  return {
    id: record.id,
    name: record.name,
    server,
    serverKey: serverKey.publicKey,
    key: shared.key,
  };
}

/** A log entry kept by `MemoryLog`. */
export interface LogEntry {
  level: string;
  event: string;
  fields: LogFields;
}

/** A logger that keeps every entry, so a test can check what the server logged. */
export class MemoryLog implements Logger {
  readonly entries: LogEntry[] = [];
  debug(event: string, fields: LogFields = {}): void {
    this.entries.push({ level: "debug", event, fields });
  }
  info(event: string, fields: LogFields = {}): void {
    this.entries.push({ level: "info", event, fields });
  }
  warn(event: string, fields: LogFields = {}): void {
    this.entries.push({ level: "warn", event, fields });
  }
  error(event: string, fields: LogFields = {}): void {
    this.entries.push({ level: "error", event, fields });
  }
  /** Entries of `event`. */
  find(event: string): LogEntry[] {
    return this.entries.filter((e) => e.event === event);
  }
}

export interface Cluster extends AsyncDisposable {
  dir: string;
  server: BackboneServer;
  store: SqliteStore;
  address: string;
  /** Enrolls a client and returns its identity (shared key pair unless `ownKey`). */
  enroll(name: string, ownKey?: boolean): Promise<Identity>;
  /** Enrolls (when given a name) and connects a client; closed with the cluster. */
  client(who: string | Identity, opts?: Partial<ConnectOptions>): Promise<Client>;
  /** Enrolls (when given a name) and logs in a raw client; closed with the cluster. */
  raw(who: string | Identity): Promise<RawSession>;
  /** Restarts the server on the same data directory and port. */
  restart(settings?: Partial<ServerSettings>): Promise<void>;
}

export async function startCluster(
  settings: Partial<ServerSettings> = {},
  log?: Logger,
): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), "backbone-test-"));
  const key = await testServerKey();
  const store = new SqliteStore(join(dir, "backbone.db"));
  const base = { host: "127.0.0.1", port: 0, ...settings };
  let server = await BackboneServer.start({ key, store, settings: base, ...(log ? { log } : {}) });
  const clients: Client[] = [];
  const raws: RawSession[] = [];
  const cluster: Cluster = {
    dir,
    get server() {
      return server;
    },
    store,
    get address() {
      return `127.0.0.1:${server.port}`;
    },
    enroll(name, ownKey = false) {
      return enrollIdentity(store, key, `127.0.0.1:${server.port}`, name, ownKey);
    },
    async client(who, opts = {}) {
      const identity = typeof who === "string" ? await cluster.enroll(who) : who;
      const c = await connect({
        identity: { ...identity, server: `127.0.0.1:${server.port}` },
        backoff: { initialMs: 20, maxMs: 200 },
        ...opts,
      });
      clients.push(c);
      return c;
    },
    async raw(who) {
      const identity = typeof who === "string" ? await cluster.enroll(who) : who;
      const r = await RawSession.login(server.port, identity);
      raws.push(r);
      return r;
    },
    async restart(more = {}) {
      const port = server.port;
      await server.close();
      server = await BackboneServer.start({
        key,
        store,
        settings: { ...base, ...more, port },
        ...(log ? { log } : {}),
      });
    },
    async [Symbol.asyncDispose]() {
      for (const r of raws) r.sock.destroy();
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await server.close("test over", 1000);
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** Resolves when `check` returns true (polled), or rejects after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const end = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** Collects a client's incoming messages (as text) into an array. */
export function inbox(client: Client): { from: string; text: string; kind: string }[] {
  const got: { from: string; text: string; kind: string }[] = [];
  client.on("message", (m) =>
    got.push({ from: m.from, text: new TextDecoder().decode(m.data), kind: m.kind }),
  );
  return got;
}

/** Collects a client's NOTICEs into an array. */
export function notices(client: Client): Notice[] {
  const got: Notice[] = [];
  client.on("notice", (n) => got.push(n));
  return got;
}
