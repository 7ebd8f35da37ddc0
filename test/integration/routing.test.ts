/**
 * Direct C2C over real sockets (docs/PROTOCOL.md § Messages, C2C): live delivery in
 * both directions with per-pair order, NOTICE unknown and too_large, and the true
 * sender written by the server.
 */
import { describe, expect, test } from "bun:test";
import type { Client } from "../../src/client/client.ts";
import { UsageError } from "../../src/errors.ts";
import { newClientId } from "../../src/ids.ts";
import { C2CType, ControlType, Format } from "../../src/wire/message.ts";
import { inbox, notices, startCluster, until } from "../helpers/cluster.ts";
import { expectError, thrown } from "../helpers/errors.ts";
import { isControl, jsonBody, text } from "../helpers/raw.ts";

describe("routing over real sockets", () => {
  test("two clients exchange direct messages both ways, in order", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const toAlice = inbox(alice);
    const toBob = inbox(bob);
    for (let i = 0; i < 200; i++) {
      alice.send(bob.id, `a${i}`);
      bob.send(alice.id, `b${i}`);
    }
    await until(() => toAlice.length === 200 && toBob.length === 200, 5000, "200 each way");
    expect(toBob.map((m) => m.text)).toEqual(Array.from({ length: 200 }, (_, i) => `a${i}`));
    expect(toAlice.map((m) => m.text)).toEqual(Array.from({ length: 200 }, (_, i) => `b${i}`));
    expect(toBob.every((m) => m.from === alice.id && m.kind === "direct")).toBe(true);
    expect(toAlice.every((m) => m.from === bob.id)).toBe(true);
  });

  test("20 clients all send to all: every pair keeps its order", async () => {
    await using c = await startCluster();
    const n = 20;
    const rounds = 25;
    const clients: Client[] = await Promise.all(
      Array.from({ length: n }, (_, i) => c.client(`peer${i}`)),
    );
    const boxes = clients.map(inbox);
    const heard = clients.map(notices);
    for (let r = 0; r < rounds; r++) {
      for (const from of clients) {
        for (const to of clients) if (to !== from) from.send(to.id, `${from.name}:${r}`);
      }
    }
    const each = (n - 1) * rounds;
    await until(() => boxes.every((b) => b.length === each), 15_000, "every message");
    for (const [i, box] of boxes.entries()) {
      for (const from of clients) {
        if (from === clients[i]) continue;
        const seq = box.filter((m) => m.from === from.id).map((m) => m.text);
        expect(seq).toEqual(Array.from({ length: rounds }, (_, r) => `${from.name}:${r}`));
      }
      expect(box.every((m) => m.kind === "direct")).toBe(true);
    }
    await Promise.all(clients.map((cl) => cl.ping()));
    expect(heard.flat()).toEqual([]); // all delivered live: no NOTICE at all
    expect((await clients[0]?.serverStatus())?.messages_routed).toBe(n * each);
  });

  test("a client may send to itself: delivered live, no NOTICE", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const got = inbox(alice);
    const heard = notices(alice);
    alice.send(alice.id, "note to self");
    await until(() => got.length === 1, 3000, "the message to self");
    expect(got[0]).toEqual({ from: alice.id, text: "note to self", kind: "direct" });
    await alice.ping();
    expect(heard).toEqual([]);
  });

  test("NOTICE unknown for an ID nobody registered, counted as discarded", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const heard = notices(alice);
    const nobody = newClientId();
    const before = await alice.serverStatus();
    alice.send(nobody, "hello?");
    alice.send(nobody.toUpperCase(), "anyone?");
    await alice.ping();
    expect(heard.map((n) => [n.address, n.status])).toEqual([
      [nobody, "unknown"],
      [nobody, "unknown"],
    ]);
    const after = await alice.serverStatus();
    expect(after.messages_discarded - before.messages_discarded).toBe(2);
    expect(after.messages_queued).toBe(0);
  });

  test("the library refuses data over max_message_size before sending (UsageError TOO_LARGE)", async () => {
    await using c = await startCluster({ max_message_size: 100 });
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const got = inbox(bob);
    expect(alice.settings.max_message_size).toBe(100);
    expectError(
      thrown(() => alice.send(bob.id, new Uint8Array(101))),
      UsageError,
      { code: "TOO_LARGE" },
    );
    expectError(
      thrown(() => alice.broadcast(new Uint8Array(101))),
      UsageError,
      { code: "TOO_LARGE" },
    );
    alice.send(bob.id, "x".repeat(100)); // exactly the limit is fine
    await until(() => got.length === 1, 3000, "the 100-byte message");
    expect(got[0]?.text).toBe("x".repeat(100));
  });

  test("the server answers data over max_message_size with NOTICE too_large", async () => {
    await using c = await startCluster({ max_message_size: 100 });
    const raw = await c.raw("raw");
    const bob = await c.client("bob");
    const got = inbox(bob);
    const before = (await raw.serverStatus()).messages_discarded as number;
    raw.sendC2C(bob.id, new Uint8Array(101));
    raw.sendC2C(new Uint8Array(16).fill(0xff), new Uint8Array(101), 0x01);
    raw.sendC2C(bob.id, "y".repeat(100));
    const seen = await raw.heartbeat();
    expect(seen.map((m) => (isControl(m, ControlType.NOTICE) ? jsonBody(m) : m))).toEqual([
      expect.objectContaining({ address: bob.id, status: "too_large" }),
      expect.objectContaining({
        address: "ffffffff-ffff-ffff-ffff-ffffffffffff",
        status: "too_large",
      }),
    ]);
    await bob.ping();
    expect(got.map((m) => m.text)).toEqual(["y".repeat(100)]);
    expect(((await raw.serverStatus()).messages_discarded as number) - before).toBe(2);
  });

  test("the server writes the true sender, whatever the raw client sends", async () => {
    await using c = await startCluster();
    const raw = await c.raw("mallory");
    const bob = await c.raw("bob");
    raw.sendC2C(bob.id, "from mallory");
    const m = await bob.nextMessage();
    expect(m.format).toBe(Format.C2C);
    expect(m.format === Format.C2C && m.type).toBe(C2CType.DIRECT);
    // The address field of a delivered message is the sender, as the server knows it.
    expect(m.format === Format.C2C && Buffer.from(m.address).toString("hex")).toBe(
      raw.id.replaceAll("-", ""),
    );
    expect(text(m)).toBe("from mallory");
  });
});
