/**
 * The client library against a real server: the messages() iterator, reconnecting
 * with backoff after a server restart (with messages buffered meanwhile), and the
 * failures that must not be retried (a server key that is not the pinned one) or
 * must be (a server not up yet).
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, connect } from "../../src/client/client.ts";
import type { IncomingMessage } from "../../src/client/types.ts";
import { generateRsaKeyPair, RsaPublicKey } from "../../src/crypto/rsa.ts";
import { ConnectionError, HandshakeError, PinningError, UsageError } from "../../src/errors.ts";
import { BackboneServer } from "../../src/server/server.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { enrollIdentity, inbox, startCluster, testServerKey, until } from "../helpers/cluster.ts";
import { expectError, rejected, thrown } from "../helpers/errors.ts";

/** A TCP port nothing listens on (taken from the OS, then released). */
function closedPort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

describe("client library", () => {
  test("messages() yields incoming messages in order; return() detaches it", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const listeners = bob.listenerCount("message");
    const got: IncomingMessage[] = [];
    const reading = (async () => {
      for await (const m of bob.messages()) {
        got.push(m);
        if (got.length === 3) break;
      }
    })();
    for (let i = 0; i < 3; i++) alice.send(bob.id, `m${i}`);
    await reading;
    expect(got.map((m) => new TextDecoder().decode(m.data))).toEqual(["m0", "m1", "m2"]);
    expect(got.every((m) => m.from === alice.id && m.kind === "direct")).toBe(true);
    expect(bob.listenerCount("message")).toBe(listeners);
  });

  test("messages() ends when the client closes", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const iterator = bob.messages();
    alice.send(bob.id, "before close");
    const first = await iterator.next();
    expect(first.done).toBe(false);
    const next = iterator.next();
    await bob.close();
    expect(await next).toEqual({ value: undefined, done: true });
  });

  test("send() checks its arguments", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    expectError(
      thrown(() => alice.send("bob", "hi")),
      UsageError,
      { code: "BAD_ID" },
    );
  });

  test("after a server restart: reconnect with backoff; messages buffered meanwhile arrive", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const got = inbox(bob);
    const events: string[] = [];
    let pendingWhileDown = -1;
    alice.once("disconnect", (e) => {
      events.push(`disconnect ${e.reason} ${e.willReconnect}`);
      // Disconnected now: these are buffered, not lost.
      for (let i = 0; i < 5; i++) alice.send(bob.id, `buffered ${i}`);
      pendingWhileDown = alice.pendingBytes;
    });
    alice.on("reconnecting", (e) => events.push(`reconnecting ${e.attempt}`));
    alice.on("connect", () => events.push("connect"));
    let bobConnects = 0;
    bob.on("connect", () => bobConnects++);

    await c.restart();
    await until(() => events.includes("connect") && bobConnects === 1, 5000, "both back");
    expect(events[0]).toBe("disconnect server shutting down true");
    expect(events[1]).toBe("reconnecting 1");
    expect(events.at(-1)).toBe("connect");
    expect(pendingWhileDown).toBeGreaterThan(0);
    await until(() => got.length === 5, 5000, "the buffered messages");
    expect(got.map((m) => m.text)).toEqual(Array.from({ length: 5 }, (_, i) => `buffered ${i}`));
    expect(alice.pendingBytes).toBe(0);
    alice.send(bob.id, "after");
    await until(() => got.length === 6, 3000, "a live message");
    expect(got[5]).toEqual({ from: alice.id, text: "after", kind: "direct" });
  });

  test("a server key other than the pinned one: PinningError, and no retry", async () => {
    await using c = await startCluster();
    const identity = await c.enroll("alice");
    const other = await generateRsaKeyPair(2048);
    const pinned = await RsaPublicKey.fromSpki(other.publicSpki);
    const client = new Client(
      { ...identity, server: c.address, serverKey: pinned },
      { waitForServer: 3000, backoff: { initialMs: 20, maxMs: 50 } },
    );
    let retries = 0;
    client.on("reconnecting", () => retries++);
    const err = await rejected(client.start());
    expectError(err, PinningError, {
      stage: "pinning",
      expected: pinned.fingerprint,
      received: c.server.key.publicKey.fingerprint,
    });
    expect(retries).toBe(0);
    expect(c.server.stats.connections).toBe(1);
    await client.closed;
  });

  test("connect() to a port nobody listens on: ConnectionError UNREACHABLE", async () => {
    await using c = await startCluster();
    const identity = await c.enroll("alice");
    const err = await rejected(connect({ identity, server: `127.0.0.1:${closedPort()}` }));
    expectError(err, ConnectionError, { code: "UNREACHABLE" });
  });

  test("a peer that accepts TCP but never sends a challenge: ConnectionError TIMEOUT", async () => {
    await using c = await startCluster();
    const identity = await c.enroll("alice");
    const mute = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const err = await rejected(
        connect({ identity, server: `127.0.0.1:${mute.port}`, connectTimeout: 0.3 }),
      );
      expectError(err, ConnectionError, { code: "TIMEOUT" });
    } finally {
      mute.stop(true);
    }
  });

  test("a peer that sends a malformed challenge: HandshakeError stage challenge", async () => {
    await using c = await startCluster();
    const identity = await c.enroll("alice");
    const liar = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { open: (s) => void s.write(new Uint8Array([0, 3, 0, 1, 7])), data() {} },
    });
    try {
      const err = await rejected(connect({ identity, server: `127.0.0.1:${liar.port}` }));
      expectError(err, HandshakeError, { stage: "challenge" });
    } finally {
      liar.stop(true);
    }
  });

  test("waitForServer: keeps trying until the server appears", async () => {
    const dir = mkdtempSync(join(tmpdir(), "backbone-wait-"));
    const store = new SqliteStore(join(dir, "backbone.db"));
    const key = await testServerKey();
    const port = closedPort();
    let server: BackboneServer | null = null;
    try {
      const identity = await enrollIdentity(store, key, `127.0.0.1:${port}`, "early");
      const client = new Client(identity, {
        waitForServer: 10_000,
        backoff: { initialMs: 20, maxMs: 100 },
      });
      const attempts: Error[] = [];
      client.on("reconnecting", (e) => e.error && attempts.push(e.error));
      const started = client.start();
      await until(() => attempts.length >= 2, 5000, "two failed attempts");
      expectError(attempts[0], ConnectionError, { code: "UNREACHABLE" });
      server = await BackboneServer.start({ key, store, settings: { host: "127.0.0.1", port } });
      await started;
      expect(client.connected).toBe(true);
      expect((await client.serverStatus()).clients_online).toBe(1);
      await client.close();
    } finally {
      await server?.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
