/**
 * A store that cannot grow (docs/PROTOCOL.md § Limits, § What is guaranteed): first
 * bounded by the `store_max_bytes` setting, then a really full disk (a 2 MiB tmpfs
 * holding the data directory, when this machine lets the test mount one). Either way
 * the server answers NOTICE `rejected` with a logged reason — never a silent drop —
 * keeps routing live traffic, delivers every queued message exactly once, and leaves a
 * store that passes SQLite's integrity check.
 */
import { describe, expect, test } from "bun:test";
import { copyFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, connect } from "../../src/client/client.ts";
import { writeSecretFile } from "../../src/crypto/keyfile.ts";
import { toPem } from "../../src/crypto/pem.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import { StoreError } from "../../src/errors.ts";
import { dataPaths } from "../../src/server/datadir.ts";
import { BackboneServer } from "../../src/server/server.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import {
  enrollIdentity,
  MemoryLog,
  notices,
  startCluster,
  testServerKey,
  until,
} from "../helpers/cluster.ts";
import { Ledger, type Peer } from "../helpers/ledger.ts";
import { spawnServer } from "../helpers/processes.ts";
import { integrity } from "../helpers/store-check.ts";
import { fillDisk, onTmpfs, tmpfsMountable, tryRun } from "../helpers/tmpfs.ts";

const FULL = "storage failure: database or disk is full";
const peer = (c: { id: string; name: string }): Peer => ({ id: c.id, name: c.name });

/** Batches of one 1 KB message from `from` to `to` until one is refused (at most `max`). */
async function untilRejected(ledger: Ledger, from: Client, to: Peer, max: number): Promise<void> {
  for (let i = 0; i < max && ledger.summary().rejected === 0; i++) {
    expect(await ledger.batch(from, from.name, [to], 1000)).toBe(true);
  }
  expect(ledger.summary().rejected).toBe(1);
}

describe("store_max_bytes", () => {
  test("past the bound: NOTICE rejected with a logged reason, live traffic goes on, nothing queued is lost", async () => {
    const log = new MemoryLog();
    await using c = await startCluster({ store_max_bytes: 256 * 1024 }, log);
    const ledger = new Ledger();
    const alice = await c.client("alice");
    const carol = await c.client("carol");
    const heard = notices(alice);
    const bob = await c.enroll("bob");
    const dave = await c.enroll("dave");
    for (const [cl, n] of [
      [alice, "alice"],
      [carol, "carol"],
    ] as const)
      ledger.watch(cl, n);

    await untilRejected(ledger, alice, peer(bob), 1000);
    const queued = ledger.summary().queued;
    expect(queued).toBeGreaterThan(50); // the bound, not something else, refused it
    expect(heard.at(-1)).toEqual({ address: bob.id, status: "rejected", reason: FULL });
    expect(log.find("store write failed")[0]?.fields).toMatchObject({ to: bob.id, reason: FULL });
    for (let i = 0; i < 5; i++) await ledger.batch(alice, "alice", [peer(bob)], 1000);
    expect(ledger.summary().rejected).toBe(6); // it stays full: refused, never dropped silently
    // Live traffic is untouched.
    for (let i = 0; i < 20; i++) {
      expect(await ledger.batch(alice, "alice", [peer(carol)])).toBe(true);
      expect(await ledger.batch(carol, "carol", [peer(alice)])).toBe(true);
    }
    expect((await alice.serverStatus()).messages_rejected).toBe(6);

    // Bob logs in: everything queued, once, in order. His delivered messages free pages...
    ledger.watch(await c.client(bob), "bob");
    await until(() => ledger.missing().length === 0, 5000, "bob's stored messages");
    await until(async () => (await c.store.pendingCount()) === 0, 3000, "bob's queue to empty");
    // ... which the store reuses: a message for dave is queued again.
    expect(await ledger.batch(alice, "alice", [peer(dave)], 1000)).toBe(true);
    expect(ledger.summary().queued).toBe(queued + 1);
    // Lifting the bound (reload) lets the store grow again.
    c.server.reload({ store_max_bytes: 0 });
    for (let i = 0; i < 300; i++) await ledger.batch(alice, "alice", [peer(dave)], 1000);
    expect(ledger.summary().rejected).toBe(6);
    ledger.watch(await c.client(dave), "dave");
    await until(() => ledger.missing().length === 0, 5000, "dave's stored messages");
    const sum = ledger.summary();
    expect([sum.lost, sum.duplicates, ledger.problems.length]).toEqual([0, 0, 0]);
    expect(sum.queued).toBe(queued + 301);
    expect(integrity(join(c.dir, "backbone.db"))).toBe("ok");
  });
});

if (!tmpfsMountable)
  console.warn(
    "disk-full: skipping the tmpfs tests: cannot mount a tmpfs here (needs root and mount rights)",
  );

describe("a really full disk", () => {
  test.skipIf(!tmpfsMountable)(
    "tmpfs full: NOTICE rejected and logged, live traffic goes on, queued ones arrive once; read-only: a clear refusal",
    async () => {
      await onTmpfs("2m", async (mnt) => {
        const db = join(mnt, "backbone.db");
        const log = new MemoryLog();
        const clients: Client[] = [];
        let store: SqliteStore | null = new SqliteStore(db);
        let server: BackboneServer | null = null;
        try {
          const key = await testServerKey();
          const settings = { host: "127.0.0.1", port: 0 };
          server = await BackboneServer.start({ key, store, settings, log });
          const address = `127.0.0.1:${server.port}`;
          const ids = await Promise.all(
            ["alice", "carol", "bob"].map((n) =>
              enrollIdentity(store as SqliteStore, key, address, n),
            ),
          );
          const ledger = new Ledger();
          const login = async (i: number) => {
            const cl = await connect({ identity: ids[i] as (typeof ids)[0], reconnect: false });
            clients.push(cl);
            ledger.watch(cl, cl.name);
            return cl;
          };
          const [alice, carol] = [await login(0), await login(1)];
          const heard = notices(alice);
          const bob = peer(ids[2] as Peer);
          for (let i = 0; i < 20; i++) await ledger.batch(alice, "alice", [bob], 1000);
          expect(ledger.summary().queued).toBe(20);

          fillDisk(join(mnt, "filler"));
          await untilRejected(ledger, alice, bob, 2000);
          expect(heard.at(-1)).toEqual({ address: bob.id, status: "rejected", reason: FULL });
          expect(log.find("store write failed").at(-1)?.fields).toMatchObject({ reason: FULL });
          for (let i = 0; i < 10; i++)
            expect(await ledger.batch(alice, "alice", [peer(carol)])).toBe(true);
          expect(ledger.live).toBe(10);

          // Bob logs in while the disk is still full: he gets his messages, and — though
          // the store cannot delete them yet — not a second time at his next login.
          await (await login(2)).ping();
          await until(() => ledger.missing().length === 0, 5000, "bob's stored messages");
          await clients.pop()?.close();
          await (await login(2)).ping();
          await Bun.sleep(100);
          expect(ledger.problems).toEqual([]);
          expect(
            log.find("store delete failed; delivered messages are skipped until it works").length,
          ).toBe(2);

          // Room again: queued again, and delivered; the old ones are deleted at last.
          rmSync(join(mnt, "filler"));
          await clients.pop()?.close();
          for (let i = 0; i < 5; i++) await ledger.batch(alice, "alice", [bob], 1000);
          await (await login(2)).ping();
          await until(() => ledger.missing().length === 0, 5000, "the last stored messages");
          await until(async () => (await store?.pendingCount()) === 0, 3000, "the store to empty");
          const sum = ledger.summary();
          console.log(ledger.line("tmpfs"));
          expect([sum.lost, sum.duplicates, ledger.problems.length]).toEqual([0, 0, 0]);
          expect(integrity(db)).toBe("ok");

          // Read-only. Linux refuses to remount a filesystem read-only while a file on it is
          // open for writing (the running server's store), so the data directory cannot turn
          // read-only under a running server; a server started on one refuses clearly.
          const busy = tryRun("mount", "-o", "remount,ro", mnt);
          expect([busy.ok, busy.err.includes("busy")]).toEqual([false, true]);
          for (const cl of clients.splice(0)) await cl.close();
          await server.close();
          server = null;
          store.close(); // releases the files (this is what lets the remount through)
          store = null;
          expect(tryRun("mount", "-o", "remount,ro", mnt)).toEqual({ ok: true, err: "" });
          let refusal: unknown = null;
          try {
            new SqliteStore(db).close();
          } catch (err) {
            refusal = err;
          }
          expect(refusal).toBeInstanceOf(StoreError);
          // One line naming the file (SQLite does not say "read-only": it cannot create -shm).
          expect(refusal).toMatchObject({
            code: "STORE_OPEN",
            message: `cannot open store ${db}: unable to open database file`,
          });
          // The file left behind is sound (checked on a copy: a read-only WAL store cannot be opened).
          const copy = join(tmpdir(), `backbone-ro-copy-${process.pid}.db`);
          copyFileSync(db, copy);
          expect(integrity(copy)).toBe("ok");
          for (const f of [copy, `${copy}-wal`, `${copy}-shm`]) rmSync(f, { force: true });
        } finally {
          for (const cl of clients) await cl.close();
          await server?.close();
          store?.close();
        }
      });
    },
  );

  test.skipIf(!tmpfsMountable)(
    "kill -9 with the disk full: the server restarts anyway and serves live traffic",
    async () => {
      await onTmpfs("2m", async (mnt) => {
        const pair = await generateRsaKeyPair(2048);
        writeSecretFile(dataPaths(mnt).key, toPem("PRIVATE KEY", pair.privatePkcs8));
        const key = await RsaPrivateKey.fromPkcs8(pair.privatePkcs8);
        const store = new SqliteStore(dataPaths(mnt).db);
        let server = await spawnServer(mnt);
        const clients: Client[] = [];
        try {
          const ledger = new Ledger();
          for (const name of ["alice", "carol"]) {
            const id = await enrollIdentity(store, key, server.address, name);
            const cl = await connect({ identity: id, backoff: { initialMs: 20, maxMs: 200 } });
            ledger.watch(cl, name);
            clients.push(cl);
          }
          const [alice, carol] = clients as [Client, Client];
          expect(await ledger.batch(alice, "alice", [peer(carol)])).toBe(true);
          // Presence is written in batches (within 50 ms): wait until both are recorded online.
          await until(
            async () => (await store.listClients()).filter((r) => r.online).length === 2,
            5000,
            "presence recorded",
          );
          fillDisk(join(mnt, "filler"));
          server.proc.kill(9); // "online" stays recorded for both: the restart must reset it
          await server.exited;
          server = await spawnServer(mnt, { port: server.port });
          await until(
            () => clients.every((cl) => cl.connected),
            10_000,
            `reconnects\n${server.log()}`,
          );
          expect(server.log()).toContain("presence reset failed");
          for (let i = 0; i < 10; i++)
            expect(await ledger.batch(carol, "carol", [peer(alice)])).toBe(true);
          expect([ledger.live, ledger.problems.length]).toEqual([11, 0]);
          expect(integrity(dataPaths(mnt).db)).toBe("ok");
        } finally {
          for (const cl of clients) await cl.close();
          await server.kill();
          store.close();
        }
      });
    },
  );
});
