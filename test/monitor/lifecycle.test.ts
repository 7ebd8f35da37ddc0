/**
 * The monitor in-process with a real server and SQLite file: /healthz says "shutting
 * down" from the moment close begins, and "store unwritable" once the store's database
 * is gone; handshake refusals are counted by reason.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "../../src/client/client.ts";
import { monitorConfig } from "../../src/monitor/config.ts";
import { createMonitor, type Monitor } from "../../src/monitor/index.ts";
import { BackboneServer } from "../../src/server/server.ts";
import type { ServerSettings } from "../../src/server/settings.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { enrollIdentity, testServerKey } from "../helpers/cluster.ts";
import { get, scrape, until } from "./helpers.ts";

let dir: string;
let store: SqliteStore;
let monitor: Monitor;
let server: BackboneServer;

async function start(settings: Partial<ServerSettings> = {}) {
  monitor = createMonitor({
    config: monitorConfig("127.0.0.1:0", undefined),
    dataDir: dir,
    node: "n1",
  });
  server = await BackboneServer.start({
    key: await testServerKey(),
    store: monitor.wrapStore(store),
    settings: { host: "127.0.0.1", port: 0, ...settings },
  });
  await monitor.start(server);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "backbone-monitor-"));
  store = new SqliteStore(join(dir, "backbone.db"));
});

afterEach(async () => {
  await server?.close();
  await monitor?.stop();
  try {
    store.close();
  } catch {
    // closed by the test
  }
  rmSync(dir, { recursive: true, force: true });
});

test("shutting down: 503 from the moment close begins", async () => {
  await start();
  expect(await get(`${monitor.url}healthz`)).toMatchObject({ status: 200, body: "ok\n" });
  const closing = server.close();
  expect(await get(`${monitor.url}healthz`)).toMatchObject({
    status: 503,
    body: "shutting down\n",
  });
  await closing;
});

test("a store that no longer answers: 503 store unwritable, and backbone_up 0", async () => {
  await start();
  expect((await get(`${monitor.url}healthz`)).status).toBe(200);
  store.close();
  const r = await until(async () => {
    const h = await get(`${monitor.url}healthz`);
    return h.status === 503 ? h : undefined;
  }, "503");
  expect(r.body).toMatch(/^store unwritable: .+\n$/);
  expect(r.body.split("\n").length).toBe(2); // one line
  const m = await scrape(monitor.url);
  expect(m.value("backbone_up")).toBe(0);
  expect(m.samples.find((s) => s.name === "backbone_up")?.labels).toEqual({ node: "n1" });
});

test("handshake refusals by reason: prefix_limit", async () => {
  await start({ max_pending_per_prefix: 1 });
  const open = () =>
    Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data() {} } });
  const a = await open();
  const b = await open();
  try {
    const m = await until(async () => {
      const s = await scrape(monitor.url);
      return s.value("backbone_handshake_refusals_total", { reason: "prefix_limit" }) === 1
        ? s
        : undefined;
    }, "the refusal counted");
    expect(m.value("backbone_handshakes_total", { outcome: "refused" })).toBe(1);
    expect(m.value("backbone_connections_total")).toBe(2);
    expect(m.value("backbone_handshakes_pending")).toBe(1);
  } finally {
    a.end();
    b.end();
  }
});

test("offline writes failing in real traffic (store_max_bytes reached): 503 naming the failed write", async () => {
  await start({ store_max_bytes: 256 * 1024 });
  const address = `127.0.0.1:${server.port}`;
  const key = await testServerKey();
  const alice = await connect({
    identity: await enrollIdentity(store, key, address, "alice"),
    reconnect: false,
  });
  const bob = await enrollIdentity(store, key, address, "bob");
  try {
    let refused = false;
    alice.on("notice", (n) => {
      if (n.status === "rejected") refused = true;
    });
    expect((await get(`${monitor.url}healthz`)).status).toBe(200);
    // 1 KB messages for offline bob until the store refuses one (bounded: 1000).
    for (let i = 0; i < 1000 && !refused; i++) {
      alice.send(bob.id, new Uint8Array(1000));
      await alice.ping();
    }
    expect(refused).toBe(true);
    const r = await until(async () => {
      const h = await get(`${monitor.url}healthz`);
      return h.status === 503 ? h : undefined;
    }, "503");
    expect(r.body).toBe(
      "store unwritable: enqueue failed: storage failure: database or disk is full\n",
    );
  } finally {
    await alice.close();
  }
});
