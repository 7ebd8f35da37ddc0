/**
 * Liveness and settings (docs/PROTOCOL.md § Liveness, § Connection settings): the
 * server stops a silent client, keeps an active one, closes a handshake left
 * unanswered, and pushes CONFIG to everyone when its settings change.
 */
import { describe, expect, test } from "bun:test";
import { ControlType } from "../../src/wire/message.ts";
import type { ConnectionSettings } from "../../src/wire/settings.ts";
import { FAST, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import { FramedSocket, isControl, jsonBody } from "../helpers/raw.ts";

describe("liveness", () => {
  test("a client silent after login gets STOP 'heartbeat timeout' and is closed", async () => {
    const log = new MemoryLog();
    await using c = await startCluster(FAST, log);
    const raw = await c.raw("quiet");
    expect(raw.config).toEqual({ ...FAST, max_message_size: 65498 });
    expect(await raw.expectStop(5000)).toEqual({ reason: "heartbeat timeout", before: [] });
    expect(raw.sock.isClosed).toBe(true);
    expect(c.server.router.online.size).toBe(0);
    await until(() => log.find("disconnect").length === 1, 3000, "the disconnect log");
    expect(log.find("disconnect")[0]?.fields).toMatchObject({
      id: raw.id,
      reason: "heartbeat timeout",
    });
  });

  test("active clients stay: heartbeats from the library, or any valid frame", async () => {
    await using c = await startCluster(FAST);
    const lib = await c.client("lib");
    const ends: unknown[] = [];
    lib.on("disconnect", (e) => ends.push(e));
    const talker = await c.raw("talker");
    // The raw client never sends HEARTBEAT, only C2C to itself: every valid frame counts.
    const timeout = FAST.heartbeat_timeout * 1000;
    const end = performance.now() + 3 * timeout;
    let sent = 0;
    while (performance.now() < end) {
      talker.sendC2C(talker.id, `tick ${sent++}`);
      await Bun.sleep(timeout / 4);
    }
    for (let i = 0; i < sent; i++) expect((await talker.nextMessage()).format).toBe(0);
    expect(talker.sock.isClosed).toBe(false);
    expect(ends).toEqual([]);
    expect(lib.connected).toBe(true);
    expect(await lib.ping()).toBeGreaterThanOrEqual(0);
    expect(c.server.router.online.size).toBe(2);
  });

  test("a handshake left unanswered is closed silently after connection_timeout", async () => {
    await using c = await startCluster({ ...FAST, connection_timeout: 0.3 });
    await using sock = await FramedSocket.dial(c.server.port);
    const challenge = await sock.nextFrame();
    expect(challenge.length).toBeGreaterThan(2 + 294 + 64);
    await sock.waitClosed(5000);
    expect(sock.framesReceived).toBe(1); // the challenge, and not a word more
    expect(c.server.connectionCount).toBe(0);
  });

  test("a response of the wrong size is refused silently (no STOP)", async () => {
    await using c = await startCluster();
    await using sock = await FramedSocket.dial(c.server.port);
    await sock.nextFrame();
    sock.writeFrame(new Uint8Array(600));
    await sock.waitClosed();
    expect(sock.framesReceived).toBe(1);
    expect(c.server.stats.authFailures).toBe(1);
  });
});

describe("CONFIG pushed on reload (SIGHUP)", () => {
  test("every connected client gets the new settings at once", async () => {
    await using c = await startCluster(FAST);
    const clients = await Promise.all(["a", "b", "c", "d"].map((n) => c.client(n)));
    const seen = clients.map((cl) => {
      const got: ConnectionSettings[] = [];
      cl.on("config", (s) => got.push(s));
      return got;
    });
    const raw = await c.raw("raw");
    c.server.reload({ ...FAST, heartbeat_interval: 0.3, max_message_size: 1000 });
    await until(() => seen.every((s) => s.length === 1), 3000, "CONFIG at every client");
    const want = { ...FAST, heartbeat_interval: 0.3, max_message_size: 1000 };
    for (const [i, cl] of clients.entries()) {
      expect(seen[i]).toEqual([want]);
      expect(cl.settings).toEqual(want);
    }
    const { match } = await raw.readUntil((m) => isControl(m, ControlType.CONFIG));
    expect(jsonBody(match)).toEqual(want);
    // New logins get the new settings in their first CONFIG.
    expect((await c.raw("late")).config).toEqual(want);
    // The client library enforces the new max_message_size at once.
    expect(() => clients[0]?.send(clients[1]?.id as string, new Uint8Array(1001))).toThrow();
  });

  test("a reload that leaves the connection settings alone sends no CONFIG", async () => {
    await using c = await startCluster(FAST);
    const raw = await c.raw("raw");
    c.server.reload({ ...FAST, broadcast_rate: 5 });
    expect(await raw.heartbeat()).toEqual([]);
  });
});
