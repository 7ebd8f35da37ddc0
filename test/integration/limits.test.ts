/**
 * Limits on handshakes (docs/PROTOCOL.md § Limits): many at once all succeed when the
 * limits allow; over the per-prefix limit a connection is closed before any challenge;
 * over the handshake rate a response is refused before any RSA work.
 */
import { describe, expect, test } from "bun:test";
import { connect } from "../../src/client/client.ts";
import type { Identity } from "../../src/client/identity.ts";
import { HandshakeError } from "../../src/errors.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { idToBytes } from "../../src/ids.ts";
import { inbox, startCluster, until } from "../helpers/cluster.ts";
import { expectError, rejected } from "../helpers/errors.ts";
import { countDecrypts } from "../helpers/flood.ts";
import { FramedSocket } from "../helpers/raw.ts";

/** Dials, reads the challenge and sends a genuine response; returns the socket. */
async function respondTo(port: number, identity: Identity): Promise<FramedSocket> {
  const sock = await FramedSocket.dial(port);
  const hs = new ClientHandshake({
    id: idToBytes(identity.id),
    key: identity.key,
    pinnedServerKey: identity.serverKey,
  });
  sock.writeFrame(await hs.respond(await sock.nextFrame()));
  return sock;
}

describe("handshake limits", () => {
  test("60 clients connecting at once all authenticate", async () => {
    await using c = await startCluster({
      max_pending_per_prefix: 100,
      handshake_rate: 1000,
      handshake_burst: 1000,
    });
    const identities = await Promise.all(Array.from({ length: 60 }, (_, i) => c.enroll(`n${i}`)));
    const clients = await Promise.all(identities.map((id) => c.client(id)));
    expect(clients.every((cl) => cl.connected)).toBe(true);
    expect(c.server.stats.handshakesRefused).toBe(0);
    const status = await clients[0]?.serverStatus();
    expect(status?.clients_online).toBe(60);
    expect(status?.connections).toBe(60);
    // And they all work: each sends one message to the next.
    const boxes = clients.map(inbox);
    for (const [i, cl] of clients.entries()) cl.send(clients[(i + 1) % 60]?.id as string, `${i}`);
    await until(() => boxes.every((b) => b.length === 1), 5000, "one message each");
    expect(boxes.map((b, i) => b[0]?.from === clients[(i + 59) % 60]?.id)).not.toContain(false);
  });

  test("over max_pending_per_prefix a new connection is closed at once, without a challenge", async () => {
    await using c = await startCluster({ max_pending_per_prefix: 2 });
    await using one = await FramedSocket.dial(c.server.port);
    await using two = await FramedSocket.dial(c.server.port);
    await one.nextFrame();
    await two.nextFrame();
    await using three = await FramedSocket.dial(c.server.port);
    await three.waitClosed();
    expect(three.framesReceived).toBe(0);
    expect(c.server.stats.handshakesRefused).toBe(1);
    // A pending handshake that ends frees its place: a real client now gets in.
    one.destroy();
    await until(() => c.server.connectionCount === 1, 3000, "the slot to free");
    const alice = await c.client("alice");
    expect(alice.connected).toBe(true);
    // Authenticated clients do not count against the limit.
    await using four = await FramedSocket.dial(c.server.port);
    expect((await four.nextFrame()).length).toBeGreaterThan(0);
    expect(two.isClosed).toBe(false);
  });

  test("over max_pending_handshakes the oldest pending handshake is dropped", async () => {
    await using c = await startCluster({ max_pending_handshakes: 2 });
    await using oldest = await FramedSocket.dial(c.server.port);
    await oldest.nextFrame();
    await using middle = await FramedSocket.dial(c.server.port);
    await middle.nextFrame();
    await using newest = await FramedSocket.dial(c.server.port);
    expect((await newest.nextFrame()).length).toBeGreaterThan(0);
    await oldest.waitClosed();
    expect(oldest.framesReceived).toBe(1);
    expect(middle.isClosed).toBe(false);
    expect(c.server.stats.handshakesRefused).toBe(1);
  });

  test("over handshake_rate a response is refused before any RSA work", async () => {
    await using c = await startCluster({ handshake_rate: 0.001, handshake_burst: 1 });
    using decrypts = countDecrypts(c.server.key);
    const alice = await c.client("alice"); // the burst's one token
    expect(decrypts.count).toBe(1);
    const bobId = await c.enroll("bob");
    const sock = await respondTo(c.server.port, bobId);
    await sock.waitClosed();
    expect(sock.framesReceived).toBe(1); // the challenge; no CONFIG, no STOP
    expect(decrypts.count).toBe(1);
    expect(c.server.stats.handshakesRefused).toBe(1);
    expect(c.server.stats.authFailures).toBe(0);
    // The library sees a handshake closed under it, and does not wait around.
    const err = await rejected(connect({ identity: bobId, server: c.address }));
    expectError(err, HandshakeError, { code: "CLOSED_DURING_HANDSHAKE" });
    expect(decrypts.count).toBe(1);
    expect(alice.connected).toBe(true);
    expect(await alice.ping()).toBeGreaterThanOrEqual(0);
  });
});
