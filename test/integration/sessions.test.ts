/**
 * Sessions (docs/PROTOCOL.md § Sessions and delivery, § STOP): one connection per
 * client ID (replacement), revocation noticed from another process's write, and a
 * client's own STOP.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { connect } from "../../src/client/client.ts";
import { ConnectionError, HandshakeError } from "../../src/errors.ts";
import { idKey, idToBytes } from "../../src/ids.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { ControlType, Format } from "../../src/wire/message.ts";
import { inbox, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import { expectError, rejected } from "../helpers/errors.ts";
import { RawSession } from "../helpers/raw.ts";

/** 1 KB of data starting with the u32 index `i`. */
function numbered(i: number): Uint8Array {
  const out = new Uint8Array(1024);
  new DataView(out.buffer).setUint32(0, i);
  return out;
}

describe("sessions", () => {
  test("a second login with the same session tag replaces the first, which does not reconnect", async () => {
    await using c = await startCluster();
    const identity = await c.enroll("alice");
    const bob = await c.client("bob");
    const session = { tag: crypto.getRandomValues(new Uint8Array(16)) };
    const first = await c.client(identity, { session });
    const firstGot = inbox(first);
    const ends: { reason: string; willReconnect: boolean }[] = [];
    const closes: { error?: Error }[] = [];
    first.on("disconnect", (e) => ends.push(e));
    first.on("close", (e) => closes.push(e));
    const second = await c.client(identity, { session });
    const secondGot = inbox(second);
    await first.closed;
    expect(ends).toEqual([{ reason: "replaced by a new connection", willReconnect: false }]);
    expect(closes.length).toBe(1);
    expectError(closes[0]?.error, ConnectionError, { code: "STOPPED" });
    expect(first.connected).toBe(false);
    expect(second.connected).toBe(true);
    bob.send(identity.id, "to the new one");
    await until(() => secondGot.length === 1, 3000, "delivery to the new connection");
    expect(secondGot[0]).toEqual({ from: bob.id, text: "to the new one", kind: "direct" });
    expect(firstGot).toEqual([]);
    expect((await bob.clientStatus([identity.id]))[0]).toMatchObject({ online: true });
    expect((await bob.serverStatus()).clients_online).toBe(2);
  });

  test("a raw client sees STOP 'replaced by a new connection' and the close", async () => {
    await using c = await startCluster();
    const identity = await c.enroll("alice");
    const first = await c.raw(identity);
    const second = await c.raw(identity);
    expect(await first.expectStop()).toEqual({
      reason: "replaced by a new connection",
      before: [],
    });
    expect(await second.heartbeat()).toEqual([]);
  });

  test("replacing a connection that stopped reading keeps the sender's order", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    const stalled = await c.raw(bobId);
    stalled.sock.pause(); // the old instance hangs, with a backlog the server cannot write
    const old = () => c.server.router.online.get(idKey(idToBytes(bobId.id)));
    let sent = 0;
    while ((old()?.outbox?.pendingBytes ?? 0) < 512 * 1024) {
      for (let i = 0; i < 16; i++) alice.send(bobId.id, numbered(sent++));
      await alice.ping();
      if (sent > 20_000) throw new Error("no backlog built up");
    }
    for (let i = 0; i < 16; i++) alice.send(bobId.id, numbered(sent++)); // on the way in, too
    const fresh = await RawSession.login(c.server.port, bobId);
    for (let i = 0; i < 16; i++) alice.send(bobId.id, numbered(sent++)); // and after
    await alice.ping();
    // The old connection wrote a prefix it will never read (so lost, as the protocol
    // allows); everything after it comes to the new one, each message once, in order.
    const got: number[] = [];
    while (got.at(-1) !== sent - 1) {
      const m = await fresh.nextMessage(8000);
      if (m.format !== Format.C2C) throw new Error(`unexpected message ${m.format}/${m.type}`);
      got.push(new DataView(m.data.buffer, m.data.byteOffset).getUint32(0));
    }
    const first = got[0] as number;
    expect(first).toBeGreaterThan(0);
    expect(got).toEqual(Array.from({ length: sent - first }, (_, i) => first + i));
    expect(await fresh.heartbeat()).toEqual([]);
    // Nothing was left behind for a later login once the old connection is gone.
    await stalled.sock.waitClosed(5000);
    await c.server.router.allStored();
    expect(await c.store.pendingCount()).toBe(0);
    fresh.sock.destroy();
    await using later = await RawSession.login(c.server.port, bobId);
    expect(await later.heartbeat()).toEqual([]);
  });

  test("revoked from another process: STOP revoked, no reconnect, and no login afterwards", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const rawId = await c.enroll("mallory");
    const raw = await c.raw(rawId);
    const bob = await c.client("bob");
    const ends: { reason: string; willReconnect: boolean }[] = [];
    alice.on("disconnect", (e) => ends.push(e));
    let reconnects = 0;
    alice.on("reconnecting", () => reconnects++);

    // As `backbone revoke` would: its own connection to the same database file.
    const cli = new SqliteStore(join(c.dir, "backbone.db"));
    try {
      const at = Math.floor(Date.now() / 1000);
      expect(await cli.revokeClient(alice.id, at)).toBe(true);
      expect(await cli.revokeClient(rawId.id, at)).toBe(true);
    } finally {
      cli.close();
    }

    await alice.closed; // the server noticed within its registry poll
    expect(ends).toEqual([{ reason: "revoked", willReconnect: false }]);
    expect(reconnects).toBe(0);
    expect((await raw.expectStop()).reason).toBe("revoked");

    const identity = { ...(await c.enroll("spare")), id: alice.id, name: alice.name };
    const err = await rejected(connect({ identity, server: c.address, waitForServer: 1000 }));
    expectError(err, HandshakeError, { stage: "authentication" });
    expect(c.server.stats.connections).toBe(4); // one refused attempt: no retry
    await expect(RawSession.login(c.server.port, rawId)).rejects.toMatchObject({
      name: "HandshakeError",
      stage: "authentication",
    });
    // Bob is untouched, and the revoked clients are unknown to him.
    const status = await bob.clientStatus([alice.id, "mallory"]);
    expect(status).toEqual([
      { query: alice.id, error: "unknown" },
      { query: "mallory", error: "unknown" },
    ]);
    expect((await bob.serverStatus()).clients_online).toBe(1);
  });

  test("close() sends STOP; the server logs the client off and drops it", async () => {
    const log = new MemoryLog();
    await using c = await startCluster({}, log);
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    expect((await bob.serverStatus()).clients_online).toBe(2);
    const ends: { reason: string; willReconnect: boolean }[] = [];
    alice.on("disconnect", (e) => ends.push(e));
    await alice.close("done for today");
    expect(ends).toEqual([{ reason: "closed by this client", willReconnect: false }]);
    expect(alice.connected).toBe(false);
    expectError(
      (() => {
        try {
          alice.send(bob.id, "too late");
        } catch (err) {
          return err;
        }
      })(),
      ConnectionError,
      { code: "CLOSED" },
    );
    await until(() => log.find("disconnect").length === 1, 3000, "the server's disconnect log");
    expect(log.find("disconnect")[0]?.fields).toMatchObject({
      id: alice.id,
      name: "alice",
      reason: "client stop: done for today",
    });
    expect((await bob.serverStatus()).clients_online).toBe(1);
    expect((await bob.clientStatus([alice.id]))[0]).toMatchObject({ online: false });
    // A message to alice now waits for her.
    const heard: string[] = [];
    bob.on("notice", (n) => heard.push(n.status));
    bob.send(alice.id, "later");
    await bob.ping();
    expect(heard).toEqual(["queued"]);
  });

  test("a raw client's STOP: the server closes without answering", async () => {
    const log = new MemoryLog();
    await using c = await startCluster({}, log);
    const raw = await c.raw("raw");
    raw.sendControl(ControlType.STOP, "bye");
    await raw.sock.waitClosed();
    expect(raw.sock.buffered).toBe(0);
    await until(() => log.find("disconnect").length === 1, 3000, "the disconnect log");
    expect(log.find("disconnect")[0]?.fields.reason).toBe("client stop: bye");
  });
});
