/**
 * SERVER_STATUS and CLIENT_STATUS (docs/PROTOCOL.md § Control message bodies), through
 * the client library and a raw client (for requests the library would not send).
 */
import { describe, expect, test } from "bun:test";
import { UsageError } from "../../src/errors.ts";
import { newClientId } from "../../src/ids.ts";
import { VERSION } from "../../src/version.ts";
import { ControlType } from "../../src/wire/message.ts";
import { startCluster, until } from "../helpers/cluster.ts";
import { expectError, rejected } from "../helpers/errors.ts";
import { isControl, jsonBody } from "../helpers/raw.ts";

const BAD_REQUEST = { clients: [], error: "bad request" };

describe("SERVER_STATUS", () => {
  test("every field, with counters that follow what happened", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const carol = await c.enroll("carol");
    const dave = await c.enroll("dave");
    await c.store.revokeClient(dave.id, Math.floor(Date.now() / 1000));
    const fresh = await alice.serverStatus();
    expect(fresh).toMatchObject({
      protocol: "backbone/1",
      version: VERSION,
      server_key: c.server.key.publicKey.fingerprint,
      clients_online: 2,
      clients_registered: 3, // alice, bob, carol; dave is revoked
      messages_routed: 0,
      messages_queued: 0,
      messages_stored: 0,
      messages_discarded: 0,
      connections: 2,
    });
    expect(Math.abs((fresh.time as number) - Date.now() / 1000)).toBeLessThan(5);
    expect(Number.isInteger(fresh.time)).toBe(true);
    expect(typeof fresh.uptime).toBe("number");
    expect(fresh.uptime).toBeGreaterThanOrEqual(0);

    for (let i = 0; i < 3; i++) alice.send(bob.id, `live ${i}`); // routed
    alice.send(carol.id, "held 1"); // stored
    alice.send(carol.id, "held 2");
    alice.send(newClientId(), "lost"); // unknown: discarded
    alice.send(dave.id, "revoked"); // unknown too
    alice.broadcast("all"); // one copy to bob: routed
    await alice.ping();
    const status = await alice.serverStatus();
    expect(status).toMatchObject({
      messages_routed: 4,
      messages_queued: 2,
      messages_stored: 2,
      messages_discarded: 2,
      clients_online: 2,
    });

    const carolClient = await c.client(carol);
    await until(
      async () => (await carolClient.serverStatus()).messages_queued === 0,
      3000,
      "carol's queue to drain",
    );
    expect(await carolClient.serverStatus()).toMatchObject({
      clients_online: 3,
      messages_routed: 6, // a stored message counts as routed when it is delivered
      messages_stored: 2, // since start: unchanged by delivery
      connections: 3,
    });
    await bob.close();
    await until(
      async () => (await alice.serverStatus()).clients_online === 2,
      3000,
      "bob to be gone",
    );
  });
});

describe("requests", () => {
  test("each request gets exactly one reply of its type, in request order", async () => {
    await using c = await startCluster();
    const raw = await c.raw("raw");
    const types = [
      ControlType.HEARTBEAT,
      ControlType.SERVER_STATUS,
      ControlType.CLIENT_STATUS,
      ControlType.HEARTBEAT,
      ControlType.CLIENT_STATUS,
      ControlType.SERVER_STATUS,
      ControlType.HEARTBEAT,
    ];
    for (const [i, type] of types.entries()) {
      raw.sendControl(
        type,
        type === ControlType.CLIENT_STATUS ? { clients: [`q${i}`] } : undefined,
      );
    }
    const replies = [];
    for (let i = 0; i < types.length; i++) replies.push(await raw.nextMessage());
    expect(replies.map((m) => m.format === 1 && m.type)).toEqual(types);
    expect(jsonBody(replies[4] as (typeof replies)[number])).toEqual({
      clients: [{ query: "q4", error: "unknown" }],
    });
    expect(await raw.heartbeat()).toEqual([]); // and nothing else
  });
});

describe("CLIENT_STATUS", () => {
  test("by ID and by name (case and width folded), in request order, duplicates included", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("Bob.Builder");
    const carol = await c.enroll("carol");
    const dave = await c.enroll("dave");
    await c.store.revokeClient(dave.id, Math.floor(Date.now() / 1000));
    const stranger = newClientId();
    const queries = [
      bob.id,
      "bob.builder",
      "BOB.BUILDER",
      "ＢＯＢ．ＢＵＩＬＤＥＲ", // fullwidth: the same name after NFKC
      bob.id.toUpperCase(),
      carol.id,
      "carol",
      "nobody",
      stranger,
      dave.id,
      "dave",
      alice.id,
      bob.id,
    ];
    const entries = await alice.clientStatus(queries);
    const bobEntry = {
      id: bob.id,
      name: "Bob.Builder",
      online: true,
      last_seen: expect.any(Number),
      sessions: 1,
    };
    const carolEntry = { id: carol.id, name: "carol", online: false, last_seen: null, sessions: 0 };
    expect(entries).toEqual([
      bobEntry,
      bobEntry,
      bobEntry,
      bobEntry,
      bobEntry,
      carolEntry,
      carolEntry,
      { query: "nobody", error: "unknown" },
      { query: stranger, error: "unknown" },
      { query: dave.id, error: "unknown" },
      { query: "dave", error: "unknown" },
      { id: alice.id, name: "alice", online: true, last_seen: expect.any(Number), sessions: 1 },
      bobEntry,
    ]);
  });

  test("a client that has left: online false, last_seen kept", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const loggedIn = Math.floor(Date.now() / 1000);
    await bob.close();
    await until(
      async () => {
        const [entry] = await alice.clientStatus(["bob"]);
        return entry !== undefined && "online" in entry && !entry.online;
      },
      3000,
      "bob offline",
    );
    const [entry] = await alice.clientStatus(["bob"]);
    expect(entry).toMatchObject({ id: bob.id, online: false });
    const seen = (entry as { last_seen: number }).last_seen;
    expect(seen).toBeGreaterThanOrEqual(loggedIn - 1);
    expect(seen).toBeLessThanOrEqual(Date.now() / 1000);
  });

  test("resolve(): names to IDs; IDs as they are; unknown names throw", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.enroll("bob");
    expect(await alice.resolve("BOB")).toBe(bob.id);
    expect(await alice.resolve(bob.id.toUpperCase())).toBe(bob.id);
    const stranger = newClientId();
    expect(await alice.resolve(stranger)).toBe(stranger); // an ID is never looked up
    expectError(await rejected(alice.resolve("nobody")), UsageError, { code: "UNKNOWN_CLIENT" });
    expect(await alice.clientStatus([])).toEqual([]);
    expectError(
      await rejected(alice.clientStatus(Array.from({ length: 257 }, () => "bob"))),
      UsageError,
      { code: "TOO_MANY" },
    );
  });

  test("malformed requests get exactly one 'bad request' each, in order", async () => {
    await using c = await startCluster();
    const raw = await c.raw("raw");
    const bob = await c.enroll("bob");
    const bodies: (string | Uint8Array)[] = [
      "not json",
      new Uint8Array([0xff, 0xfe]), // not UTF-8
      "[]", // not an object
      "{}", // clients missing
      '{"clients":"bob"}', // not an array
      '{"clients":["bob",1]}', // an entry that is not a string
      JSON.stringify({ clients: Array.from({ length: 257 }, () => "bob") }), // too many
      "", // empty body
    ];
    for (const body of bodies) raw.sendControl(ControlType.CLIENT_STATUS, body);
    // A good one after them: answered in its place.
    raw.sendControl(ControlType.CLIENT_STATUS, { clients: ["bob"], extra: "ignored" });
    const replies = [];
    for (let i = 0; i <= bodies.length; i++) {
      const m = await raw.nextMessage();
      expect(isControl(m, ControlType.CLIENT_STATUS)).toBe(true);
      replies.push(jsonBody(m));
    }
    expect(replies.slice(0, -1)).toEqual(bodies.map(() => BAD_REQUEST));
    expect(replies.at(-1)).toEqual({
      clients: [{ id: bob.id, name: "bob", online: false, last_seen: null }],
    });
    expect(await raw.heartbeat()).toEqual([]); // still connected
  });

  test("any string is a query: empty and overlong ones are simply unknown", async () => {
    await using c = await startCluster();
    const raw = await c.raw("raw");
    const long = "n".repeat(1000);
    const reply = await raw.request(ControlType.CLIENT_STATUS, { clients: ["", long, "raw"] });
    expect(reply).toEqual({
      clients: [
        { query: "", error: "unknown" },
        { query: long, error: "unknown" },
        { id: raw.id, name: "raw", online: true, last_seen: expect.any(Number) },
      ],
    });
  });

  test("256 entries is the most, and is answered in full", async () => {
    await using c = await startCluster();
    const raw = await c.raw("raw");
    const queries = Array.from({ length: 256 }, (_, i) => (i % 2 ? "raw" : `x${i}`));
    const reply = await raw.request(ControlType.CLIENT_STATUS, { clients: queries });
    const entries = reply.clients as Record<string, unknown>[];
    expect(entries.length).toBe(256);
    expect(entries[0]).toEqual({ query: "x0", error: "unknown" });
    expect(entries[1]).toMatchObject({ id: raw.id, name: "raw", online: true });
  });
});
