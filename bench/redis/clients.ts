/**
 * Which Redis client for cluster mode: Bun's built-in `RedisClient`, ioredis or node-redis,
 * measured against a real redis-server on a free loopback port, correctness first
 * (binary safety, subscriptions across a Redis restart, a timeout while Redis is
 * frozen), then speed. Prints one JSON object per client.
 *
 *   bun bench/redis/clients.ts [--n 20000]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RedisClient } from "bun";
import IORedis from "ioredis";
import { createClient } from "redis";

const N = Number(process.argv[process.argv.indexOf("--n") + 1]) || 20000;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

class RedisProc {
  dir = mkdtempSync(join(tmpdir(), "bb-redis-"));
  proc: ReturnType<typeof spawn> | undefined;
  constructor(readonly port: number) {}
  async start(): Promise<void> {
    this.proc = spawn(
      "redis-server",
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      { stdio: "ignore" },
    );
    for (let i = 0; i < 200; i++) {
      if (await canConnect(this.port)) return;
      await Bun.sleep(10);
    }
    throw new Error("redis-server did not start");
  }
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await done;
  }
  freeze(on: boolean): void {
    this.proc?.kill(on ? "SIGSTOP" : "SIGCONT");
  }
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function canConnect(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

const binary = new Uint8Array(256).map((_, i) => i);
const sameBytes = (a: Uint8Array | undefined | null, b: Uint8Array) =>
  !!a && a.length === b.length && a.every((v, i) => v === b[i]);

/** The operations under test, in each client's own API. */
interface Adapter {
  name: string;
  connect(url: string): Promise<void>;
  setGetBinary(): Promise<boolean>;
  xaddBinary(): Promise<boolean>;
  subscribe(channel: string, onMessage: (m: Uint8Array) => void): Promise<void>;
  publish(channel: string, m: Uint8Array): Promise<unknown>;
  get(key: string): Promise<unknown>;
  close(): Promise<void>;
}

function bunAdapter(): Adapter {
  let c: RedisClient;
  let sub: RedisClient;
  return {
    name: "bun RedisClient",
    async connect(url) {
      c = new RedisClient(url);
      sub = new RedisClient(url);
      await c.connect();
      await sub.connect();
    },
    async setGetBinary() {
      await c.set("k", Buffer.from(binary) as unknown as string);
      return sameBytes(await c.getBuffer("k"), binary);
    },
    async xaddBinary() {
      const id = await c.send("XADD", ["s", "*", "d", Buffer.from(binary) as unknown as string]);
      const r = (await c.send("XRANGE", ["s", String(id), String(id)])) as unknown;
      const v = (r as [string, unknown[]][])[0]?.[1]?.[1];
      return typeof v === "string"
        ? sameBytes(Buffer.from(v, "latin1"), binary)
        : sameBytes(v as Uint8Array, binary);
    },
    async subscribe(channel, onMessage) {
      await sub.subscribe(channel, (m: string) => onMessage(Buffer.from(m, "latin1")));
    },
    publish: (ch, m) => c.send("PUBLISH", [ch, Buffer.from(m).toString("latin1")]),
    get: (k) => c.get(k),
    async close() {
      c.close();
      sub.close();
    },
  };
}

function ioredisAdapter(): Adapter {
  let c: IORedis;
  let sub: IORedis;
  return {
    name: "ioredis",
    async connect(url) {
      const opts = { commandTimeout: 2000, maxRetriesPerRequest: 3, lazyConnect: true };
      c = new IORedis(url, opts);
      sub = new IORedis(url, opts);
      await c.connect();
      await sub.connect();
    },
    async setGetBinary() {
      await c.set("k", Buffer.from(binary));
      return sameBytes(await c.getBuffer("k"), binary);
    },
    async xaddBinary() {
      const id = await c.xadd("s", "*", "d", Buffer.from(binary));
      const r = await c.xrangeBuffer("s", id as string, id as string);
      return sameBytes(r[0]?.[1]?.[1], binary);
    },
    async subscribe(channel, onMessage) {
      sub.on("messageBuffer", (_ch: Buffer, m: Buffer) => onMessage(m));
      await sub.subscribe(channel);
    },
    publish: (ch, m) => c.publish(ch, Buffer.from(m)),
    get: (k) => c.get(k),
    async close() {
      c.disconnect();
      sub.disconnect();
    },
  };
}

function nodeRedisAdapter(): Adapter {
  // biome-ignore lint/suspicious/noExplicitAny: node-redis's generic client type is unwieldy here
  let c: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  let sub: any;
  return {
    name: "node-redis",
    async connect(url) {
      const base = createClient({ url, socket: { connectTimeout: 2000 } }).on("error", () => {});
      sub = base.duplicate().on("error", () => {});
      await base.connect();
      await sub.connect();
      c = base.withCommandOptions({ timeout: 2000 });
    },
    async setGetBinary() {
      await c.set("k", Buffer.from(binary));
      const v = await c.withTypeMapping({ 36: Buffer }).get("k");
      return sameBytes(v, binary);
    },
    async xaddBinary() {
      const id = await c.sendCommand(["XADD", "s", "*", "d", Buffer.from(binary)]);
      const r = await c.sendCommand(["XRANGE", "s", id, id], { typeMapping: { 36: Buffer } });
      return sameBytes(r?.[0]?.[1]?.[1], binary);
    },
    async subscribe(channel, onMessage) {
      await sub.subscribe(channel, (m: Buffer) => onMessage(m), true);
    },
    publish: (ch, m) => c.publish(ch, Buffer.from(m)),
    get: (k) => c.get(k),
    async close() {
      await c.close?.().catch(() => {});
      await sub.close?.().catch(() => {});
    },
  };
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let t: Timer | undefined;
  const r = await Promise.race([
    p,
    new Promise<"timeout">((res) => (t = setTimeout(() => res("timeout"), ms))),
  ]);
  clearTimeout(t);
  return r;
}

async function evaluate(make: () => Adapter): Promise<Record<string, unknown>> {
  const port = await freePort();
  const redis = new RedisProc(port);
  await redis.start();
  const a = make();
  const url = `redis://127.0.0.1:${port}`;
  const out: Record<string, unknown> = { client: a.name };
  try {
    await a.connect(url);
    out.set_get_binary = await a.setGetBinary().catch((e) => `error: ${e}`);
    out.xadd_xrange_binary = await a.xaddBinary().catch((e) => `error: ${e}`);

    // Pub/sub binary safety, then subscriptions across a Redis restart.
    let got: Uint8Array[] = [];
    await a.subscribe("ch", (m) => got.push(m));
    await a.publish("ch", binary);
    for (let i = 0; i < 100 && got.length === 0; i++) await Bun.sleep(10);
    out.pubsub_binary = sameBytes(got[0], binary);

    await redis.stop();
    await redis.start();
    // Give the client up to 5 s to reconnect, then publish 100 and count arrivals.
    for (let i = 0; i < 500; i++) {
      if (
        (await withTimeout(
          a
            .get("x")
            .then(() => "ok")
            .catch(() => "err"),
          200,
        )) === "ok"
      )
        break;
      await Bun.sleep(10);
    }
    await Bun.sleep(500);
    got = [];
    for (let i = 0; i < 100; i++)
      await withTimeout(
        a.publish("ch", new Uint8Array([i])).catch(() => 0),
        500,
      );
    await Bun.sleep(500);
    out.pubsub_after_restart = `${got.length}/100`;

    // A frozen Redis: does a command fail by itself, and when?
    redis.freeze(true);
    const t0 = performance.now();
    const r = await withTimeout(
      a
        .get("x")
        .then(() => "reply")
        .catch(() => "rejected"),
      5000,
    );
    out.frozen_redis =
      r === "timeout" ? "no answer in 5 s" : `${r} after ${Math.round(performance.now() - t0)} ms`;
    redis.freeze(false);
    await Bun.sleep(200);

    // Speed: pipelined PUBLISH of 64 B, sequential GET round trips.
    const payload = new Uint8Array(64).fill(7);
    let t = performance.now();
    const ps: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) ps.push(a.publish("speed", payload));
    await Promise.all(ps);
    out.publish_per_s = Math.round(N / ((performance.now() - t) / 1000));
    const M = Math.min(N, 5000);
    t = performance.now();
    for (let i = 0; i < M; i++) await a.get("k");
    out.sequential_get_us = Math.round(((performance.now() - t) * 1000) / M);
  } catch (e) {
    out.error = String(e);
  } finally {
    await withTimeout(a.close(), 1000);
    redis.freeze(false);
    await redis.stop();
    redis.cleanup();
  }
  return out;
}

for (const make of [bunAdapter, ioredisAdapter, nodeRedisAdapter]) {
  console.log(JSON.stringify(await evaluate(make)));
}
process.exit(0);
