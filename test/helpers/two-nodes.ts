/**
 * Two `serve` processes of the compiled binary on one real redis-server (cluster mode,
 * docs/CLUSTER.md), each with its own data directory holding the same server key, and
 * library clients pointed at either node.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Client, connect } from "../../src/client/client.ts";
import { loadIdentity } from "../../src/client/identity.ts";
import type { ConnectOptions } from "../../src/client/types.ts";
import { freePort, type Running, type Sandbox, type ServerInfo, sandbox } from "./binary.ts";
import { type RedisServer, startRedis } from "./redis.ts";

export interface Nodes {
  sb: Sandbox;
  redis: RedisServer;
  a: ServerInfo;
  b: ServerInfo;
  ids: Record<string, string>;
  /** Connects `name` to `node` (no reconnects); closed with the test. */
  client(name: string, node: ServerInfo, opts?: Partial<ConnectOptions>): Promise<Client>;
  close(): Promise<void>;
}

export async function twoNodes(
  names: string[],
  config: Record<string, string> = {},
): Promise<Nodes> {
  const sb = await sandbox();
  const redis = await startRedis(config);
  const store = ["--store", redis.url];
  const a = await sb.serve(store);
  const b = await sb.serve([...store, "--data", nodeData(sb, "data-b")]);
  const ids: Record<string, string> = {};
  for (const name of names) {
    const r = await sb.keygen(name, a.address, store);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  const clients: Client[] = [];
  return {
    sb,
    redis,
    a,
    b,
    ids,
    async client(name, node, opts = {}) {
      const identity = await loadIdentity(join(sb.dir, `${name}.identity`));
      const c = await connect({
        identity: { ...identity, server: node.address },
        reconnect: false,
        ...opts,
      });
      clients.push(c);
      return c;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await sb[Symbol.asyncDispose]();
      await redis[Symbol.asyncDispose]();
    },
  };
}

/** Another node's data directory in the sandbox, holding copies of the first one's key files. */
export function nodeData(sb: Sandbox, name: string): string {
  const dir = join(sb.dir, name);
  mkdirSync(dir, { mode: 0o700 });
  for (const f of ["server.key", "server.pub"]) copyFileSync(join(sb.data, f), join(dir, f));
  return dir;
}

/**
 * Two nodes on one machine sharing one port (`--reuse-port`) on the store `storeUrl`;
 * resolves once both listen.
 */
export async function sharedPortNodes(
  sb: Sandbox,
  storeUrl: string,
): Promise<{ port: number; a: Running; b: Running }> {
  const port = freePort();
  const node = (data: string) =>
    sb.start([
      ...["serve", "--host", "127.0.0.1", "--port", String(port), "--reuse-port"],
      ...["--store", storeUrl, "--data", data],
    ]);
  const a = node(sb.data);
  await a.waitFor(/^listening on /, "stdout", 10_000);
  const b = node(nodeData(sb, "data-b"));
  await b.waitFor(/^listening on /, "stdout", 10_000);
  return { port, a, b };
}

export type Got = { text: string; kind: string }[];

/** An `incoming` hook that records every message from the first one on. */
export function collect(into: Got): ConnectOptions["incoming"] {
  return (m) => {
    into.push({ text: new TextDecoder().decode(m.data), kind: m.kind });
    return m;
  };
}

/** What `client` hears of `name`'s presence (CLIENT_STATUS). */
export async function isOnline(client: Client, name: string): Promise<boolean | undefined> {
  const [entry] = await client.clientStatus([name]);
  return entry && "online" in entry ? entry.online : undefined;
}
