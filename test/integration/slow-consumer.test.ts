/**
 * A client that does not read (docs/PROTOCOL.md § Limits, § What is guaranteed): once
 * its outbound queue passes max_outbound_bytes it gets STOP `slow consumer`; others
 * are unaffected; the live messages still queued for it are stored and delivered at
 * its next login, so, counted end to end, none of the sender's messages is lost.
 */
import { expect, test } from "bun:test";
import { C2CType, ControlType, Format, type Message } from "../../src/wire/message.ts";
import { inbox, notices, startCluster, until } from "../helpers/cluster.ts";
import { isControl, RawSession } from "../helpers/raw.ts";

/** Message `i`: 4 bytes of index, then filler. */
function numbered(i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, i);
  return out;
}

function indexOf(m: Message): number {
  if (m.format !== Format.C2C) throw new TypeError("not a C2C message");
  return new DataView(m.data.buffer, m.data.byteOffset, m.data.byteLength).getUint32(0);
}

test("a client that stops reading is cut off; what was still queued for it is stored", async () => {
  await using c = await startCluster({ max_outbound_bytes: 64 * 1024 });
  const alice = await c.client("alice");
  const carol = await c.client("carol");
  const toCarol = inbox(carol);
  const heard = notices(alice);
  const slowId = await c.enroll("slow");
  const slow = await c.raw(slowId);
  slow.sock.pause(); // reads nothing more: the server meets TCP backpressure

  // Batches well under the bound (so only a real backlog trips it), each behind a
  // barrier, until the server has stopped the reader. Carol keeps chatting meanwhile.
  const size = 2000;
  const batch = 24;
  let sent = 0;
  let chats = 0;
  while (c.server.router.online.size === 3) {
    for (let i = 0; i < batch; i++) alice.send(slowId.id, numbered(sent++, size));
    alice.send(carol.id, `chat ${chats++}`);
    await alice.ping();
    if (sent > 20_000) throw new Error("the server never stopped the reader");
  }
  expect(c.server.stats.slowConsumers).toBe(1);
  // The reader reads again (before the server's grace for flushing the STOP runs out).
  slow.sock.resume();

  // Others are unaffected: carol got every chat message, in order, and is still on.
  await until(() => toCarol.length === chats, 3000, "carol's messages");
  expect(toCarol.map((m) => m.text)).toEqual(Array.from({ length: chats }, (_, i) => `chat ${i}`));
  expect(carol.connected && alice.connected).toBe(true);

  // What was written before the STOP, then the STOP.
  const { reason, before } = await slow.expectStop();
  expect(reason).toBe("slow consumer");
  expect(before.every((m) => m.format === Format.C2C && m.type === C2CType.DIRECT)).toBe(true);
  const firstSession = before.map(indexOf);
  expect(firstSession).toEqual(Array.from({ length: firstSession.length }, (_, i) => i));

  // Messages sent after the cut were queued for later (NOTICE queued), none refused.
  expect(heard.every((n) => n.status === "queued" && n.address === slowId.id)).toBe(true);

  // At the next login: everything else, stored, in order.
  await using again = await RawSession.login(c.server.port, slowId);
  const rest: Message[] = [];
  for (let i = firstSession.length; i < sent; i++) rest.push(await again.nextMessage());
  expect(rest.every((m) => m.format === Format.C2C && m.type === C2CType.STORED)).toBe(true);
  expect(rest.map(indexOf)).toEqual(
    Array.from({ length: sent - firstSession.length }, (_, i) => firstSession.length + i),
  );
  expect(await again.heartbeat()).toEqual([]); // and nothing more: none twice, none lost
  expect(firstSession.length + rest.length).toBe(sent);
  expect(rest.length).toBeGreaterThan(0);
});

test("a client that reads slowly but keeps up is never stopped", async () => {
  await using c = await startCluster({ max_outbound_bytes: 64 * 1024 });
  const alice = await c.client("alice");
  const reader = await c.raw("reader");
  const total = 400;
  // 400 × 2 KB = 800 KB through a 64 KiB bound, in barriered batches of 16.
  let got = 0;
  for (let i = 0; i < total; i += 16) {
    for (let j = i; j < i + 16; j++) alice.send(reader.id, numbered(j, 2000));
    await alice.ping();
    for (let j = i; j < i + 16; j++) {
      const m = await reader.nextMessage();
      expect(isControl(m, ControlType.STOP)).toBe(false);
      expect(indexOf(m)).toBe(got++);
    }
  }
  expect(got).toBe(total);
  expect(c.server.stats.slowConsumers).toBe(0);
});
