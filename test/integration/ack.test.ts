/**
 * Acknowledged delivery of stored messages (docs/PROTOCOL.md § ACK): with ACK the
 * server removes a stored message only once the client has acknowledged it, and
 * hands out the next batch only then; without ACK, once handed to TCP.
 */
import { describe, expect, test } from "bun:test";
import { ControlType, encodeAckBody, encodeControl, type Message } from "../../src/wire/message.ts";
import { inbox, startCluster, until } from "../helpers/cluster.ts";
import { RawSession } from "../helpers/raw.ts";

const ack = (n: number) => encodeControl(ControlType.ACK, encodeAckBody(n));
const isStored = (m: Message) => m.format === 0 && m.type === 2;
const text = (m: Message) => new TextDecoder().decode((m as { data: Uint8Array }).data);

async function storeFor(c: Awaited<ReturnType<typeof startCluster>>, n: number) {
  const alice = await c.client("alice");
  const bob = await c.enroll("bob");
  for (let i = 0; i < n; i++) alice.send(bob.id, `m${i}`);
  await alice.ping();
  expect(await c.store.pendingCount()).toBe(n);
  return bob;
}

/** Reads `n` stored messages (and whatever else arrives) from a raw session. */
async function readStored(raw: RawSession, n: number): Promise<string[]> {
  const got: string[] = [];
  while (got.length < n) {
    const m = await raw.nextMessage();
    if (isStored(m)) got.push(text(m));
  }
  return got;
}

describe("acknowledged delivery (ACK)", () => {
  test("without ACK: stored messages leave the store once handed to TCP", async () => {
    await using c = await startCluster();
    const bob = await storeFor(c, 10);
    const raw = await RawSession.login(c.server.port, bob);
    expect(await readStored(raw, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    await until(async () => (await c.store.pendingCount()) === 0, 3000, "the store to empty");
    raw.sock.destroy();
  });

  test("with ACK 0 after the response: batch by batch, removed only as acknowledged", async () => {
    await using c = await startCluster();
    const bob = await storeFor(c, 300); // two batches: 256 + 44
    const raw = await RawSession.login(c.server.port, bob, "127.0.0.1", [ack(0)]);
    const first = await readStored(raw, 256);
    expect(first.at(-1)).toBe("m255");
    // The next batch waits for the acknowledgement; nothing is removed yet.
    expect((await raw.heartbeat()).filter(isStored)).toEqual([]);
    expect(await c.store.pendingCount()).toBe(300);
    raw.send(ack(100)); // a partial acknowledgement: the batch is removed when complete
    expect(await raw.heartbeat()).toEqual([]);
    expect(await c.store.pendingCount()).toBe(300);
    raw.send(ack(256));
    const second = await readStored(raw, 44);
    expect(second).toEqual(Array.from({ length: 44 }, (_, i) => `m${256 + i}`));
    expect(await c.store.pendingCount()).toBe(44);
    raw.send(ack(300));
    await until(async () => (await c.store.pendingCount()) === 0, 3000, "the store to empty");
    raw.sock.destroy();
  });

  test("a connection that ends before acknowledging: the rest comes again next login, in order", async () => {
    await using c = await startCluster();
    const bob = await storeFor(c, 300);
    const raw = await RawSession.login(c.server.port, bob, "127.0.0.1", [ack(0)]);
    await readStored(raw, 256);
    raw.send(ack(100));
    expect(await raw.heartbeat()).toEqual([]);
    raw.sock.destroy(); // 156 received but never acknowledged
    await until(() => c.server.router.online.size === 1, 3000, "bob gone");
    // What was acknowledged is removed when the connection ends, the rest stays.
    await until(async () => (await c.store.pendingCount()) === 200, 3000, "100 removed");
    const again = await c.client(bob); // the library acknowledges
    const got = inbox(again);
    await until(() => got.length === 200, 5000, "the unacknowledged 200");
    expect(got.map((m) => m.text)).toEqual(Array.from({ length: 200 }, (_, i) => `m${100 + i}`));
    expect(got.every((m) => m.kind === "stored")).toBe(true);
    await until(async () => (await c.store.pendingCount()) === 0, 3000, "the store to empty");
  });

  test("an ACK whose body is not 4 bytes is discarded and counted; the connection stays", async () => {
    await using c = await startCluster();
    const raw = await c.raw("carol");
    const before = Number((await raw.serverStatus()).messages_discarded);
    raw.send(encodeControl(ControlType.ACK, new Uint8Array(3)));
    raw.send(encodeControl(ControlType.ACK, new Uint8Array(5)));
    expect(await raw.heartbeat()).toEqual([]);
    expect(Number((await raw.serverStatus()).messages_discarded)).toBe(before + 2);
  });
});
