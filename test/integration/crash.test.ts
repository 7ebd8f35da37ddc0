/**
 * A server in its own process (test/helpers/server-process.ts), crashed with `kill -9`
 * or frozen with SIGSTOP: messages answered NOTICE queued survive the crash
 * (docs/PROTOCOL.md § What is guaranteed), and a client notices a silent server
 * within heartbeat_timeout and keeps reconnecting until it is back (§ Liveness).
 */
import { describe, expect, test } from "bun:test";
import { type Client, connect } from "../../src/client/client.ts";
import type { IncomingMessage } from "../../src/client/types.ts";
import { FAST, notices, until } from "../helpers/cluster.ts";
import { makeDataDir, spawnServer } from "../helpers/processes.ts";

describe("a server process", () => {
  test("kill -9 loses nothing that was answered NOTICE queued", async () => {
    await using data = await makeDataDir();
    await using first = await spawnServer(data.dir);
    const aliceId = await data.enroll("alice", first.address);
    const bobId = await data.enroll("bob", first.address); // never online before the crash
    const alice = await connect({ identity: aliceId, reconnect: false });
    const heard = notices(alice);
    const total = 200;
    for (let i = 0; i < total; i++) alice.send(bobId.id, `m${i}`);
    await until(() => heard.length === total, 5000, "a NOTICE for every message");
    expect(heard.every((n) => n.status === "queued")).toBe(true);

    first.proc.kill(9);
    await first.exited;
    expect(first.proc.signalCode).toBe("SIGKILL");
    await alice.closed; // the link broke with the process
    expect(await data.store.pendingCount()).toBe(total); // on disk, read by another process

    await using second = await spawnServer(data.dir);
    const bob = await connect({ identity: bobId, server: second.address, reconnect: false });
    try {
      const got: IncomingMessage[] = [];
      bob.on("message", (m) => got.push(m));
      await until(() => got.length === total, 5000, `every stored message\n${second.log()}`);
      expect(got.map((m) => new TextDecoder().decode(m.data))).toEqual(
        Array.from({ length: total }, (_, i) => `m${i}`),
      );
      expect(got.every((m) => m.kind === "stored" && m.from === aliceId.id)).toBe(true);
      await bob.ping();
      expect(got.length).toBe(total);
      await until(async () => (await data.store.pendingCount()) === 0, 3000, "the queue to empty");
    } finally {
      await bob.close();
    }
  });

  test("SIGSTOP: the client notices the silence, keeps reconnecting, and is back after SIGCONT", async () => {
    await using data = await makeDataDir();
    await using server = await spawnServer(data.dir, FAST);
    const identity = await data.enroll("alice", server.address);
    let client: Client | null = null;
    try {
      client = await connect({ identity, backoff: { initialMs: 20, maxMs: 200 } });
      const alice = client;
      expect(alice.settings.heartbeat_timeout).toBe(FAST.heartbeat_timeout);
      const ends: { reason: string; willReconnect: boolean }[] = [];
      let reconnecting = 0;
      let connects = 0;
      alice.on("disconnect", (e) => ends.push(e));
      alice.on("reconnecting", () => reconnecting++);
      alice.on("connect", () => connects++);
      expect(await alice.ping()).toBeGreaterThanOrEqual(0);

      server.proc.kill("SIGSTOP");
      // The TCP connection stays up (the kernel still holds it): only silence tells.
      // Far below the default heartbeat_timeout (45 s): the CONFIG value is in use.
      await until(() => ends.length === 1, 3000, "the client to give up on the server");
      expect(ends[0]?.willReconnect).toBe(true);
      expect(alice.connected).toBe(false);
      // Attempts reach the kernel's backlog but get no challenge: each one times out.
      await until(() => reconnecting >= 2, 5000, "repeated reconnect attempts");
      expect(connects).toBe(0);

      server.proc.kill("SIGCONT");
      await until(() => connects === 1, 10_000, `the reconnect\n${server.log()}`);
      expect(alice.connected).toBe(true);
      expect(await alice.ping()).toBeGreaterThanOrEqual(0);
      expect((await alice.serverStatus()).clients_online).toBe(1);
    } finally {
      server.proc.kill("SIGCONT");
      await client?.close();
    }
  });
});
