/**
 * A real server on 127.0.0.1 (port 0) with a fresh data directory, and enrolled
 * clients, for integration tests. Keys are 2048-bit to keep the suite fast.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, connect } from "../../src/client/client.ts";
import { type Identity, parseIdentity } from "../../src/client/identity.ts";
import type { ConnectOptions } from "../../src/client/types.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import type { Logger } from "../../src/log.ts";
import { enrollClient } from "../../src/server/enroll.ts";
import { BackboneServer } from "../../src/server/server.ts";
import type { ServerSettings } from "../../src/server/settings.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";

let serverKey: Promise<RsaPrivateKey> | null = null;

/** One 2048-bit server key per test process. */
export function testServerKey(): Promise<RsaPrivateKey> {
  serverKey ??= generateRsaKeyPair(2048).then((p) => RsaPrivateKey.fromPkcs8(p.privatePkcs8));
  return serverKey;
}

export interface Cluster extends AsyncDisposable {
  dir: string;
  server: BackboneServer;
  store: SqliteStore;
  address: string;
  /** Enrolls a client and returns its identity. */
  enroll(name: string): Promise<Identity>;
  /** Enrolls (when given a name) and connects a client; closed with the cluster. */
  client(who: string | Identity, opts?: Partial<ConnectOptions>): Promise<Client>;
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
  const cluster: Cluster = {
    dir,
    get server() {
      return server;
    },
    store,
    get address() {
      return `127.0.0.1:${server.port}`;
    },
    async enroll(name) {
      const { identityText } = await enrollClient(store, {
        name,
        server: `127.0.0.1:${server.port}`,
        serverKey: key,
        bits: 2048,
      });
      return parseIdentity(identityText);
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
