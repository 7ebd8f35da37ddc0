/**
 * Everything the server queues toward a client counts against `max_outbound_bytes`
 * (docs/PROTOCOL.md § Limits), not only routed C2C: a client that sends requests and
 * never reads their replies — HEARTBEAT, SERVER_STATUS, CLIENT_STATUS, NOTICEs — is
 * stopped as a slow consumer once its backlog passes the bound, and the backlog the
 * server holds for it never grows past the bound (plus the one message that crossed
 * it). Stored messages for a client that does not read are paced by its reading: they
 * hold at most half the bound.
 *
 * Real server, real sockets; the non-reading client pauses its socket, so the server
 * meets TCP backpressure once the kernel's buffers are full.
 */
import { describe, expect, test } from "bun:test";
import { idKey, idToBytes } from "../../src/ids.ts";
import { ENTRY_BYTES } from "../../src/net/outbox.ts";
import type { Connection } from "../../src/server/connection.ts";
import { ControlType, encodeControl } from "../../src/wire/message.ts";
import { type Cluster, startCluster, until } from "../helpers/cluster.ts";
import { c2c, type RawSession } from "../helpers/raw.ts";

const LIMIT = 256 * 1024;
/** The most one message can add past the bound: a full frame and its bookkeeping. */
const SLACK = 65535 + 2 + ENTRY_BYTES;
/** Replies the flood may cause before the test gives up: far past kernel buffers + bound. */
const MAX_REPLY_BYTES = 96 * 1024 * 1024;

function connectionOf(c: Cluster, id: string): Connection | undefined {
  return c.server.router.online.get(idKey(idToBytes(id)));
}

/**
 * Sends `batch()` again and again without ever reading, until the server stops the
 * client (or `MAX_REPLY_BYTES` of replies were asked for); samples the server's
 * backlog for the client meanwhile. Returns the largest backlog seen.
 */
async function floodWithoutReading(
  c: Cluster,
  raw: RawSession,
  batch: () => Uint8Array[],
  replyBytes: number,
): Promise<number> {
  const conn = connectionOf(c, raw.id) as Connection;
  raw.sock.pause();
  let most = 0;
  let asked = 0;
  const sample = setInterval(() => {
    most = Math.max(most, conn.outbox?.pendingBytes ?? 0);
  }, 1);
  try {
    while (conn.phase === "open" && asked < MAX_REPLY_BYTES) {
      for (const m of batch()) {
        raw.send(m);
        asked += replyBytes;
      }
      most = Math.max(most, conn.outbox?.pendingBytes ?? 0);
      await Bun.sleep(1);
    }
  } finally {
    clearInterval(sample);
  }
  return Math.max(most, conn.outbox?.pendingBytes ?? 0);
}

const names = Array.from({ length: 256 }, (_, i) => `nobody-${i}`);
const statusQuery = encodeControl(ControlType.CLIENT_STATUS, { clients: names });

/** A request kind, what to send, and roughly how many reply bytes each message causes. */
const kinds: {
  name: string;
  settings?: Record<string, number>;
  batch: (c: Cluster) => Uint8Array[];
  replyBytes: number;
}[] = [
  {
    name: "HEARTBEAT",
    batch: () => Array.from({ length: 2000 }, () => encodeControl(ControlType.HEARTBEAT)),
    replyBytes: 19,
  },
  {
    name: "SERVER_STATUS",
    batch: () => Array.from({ length: 200 }, () => encodeControl(ControlType.SERVER_STATUS)),
    replyBytes: 400,
  },
  {
    name: "CLIENT_STATUS (256 names each)",
    batch: () => Array.from({ length: 8 }, () => statusQuery),
    replyBytes: 9000,
  },
  {
    name: "NOTICE unknown (messages to an unregistered ID)",
    batch: () =>
      Array.from({ length: 500 }, () => c2c(0x00, crypto.randomUUID(), new Uint8Array(8))),
    replyBytes: 120,
  },
  {
    name: "NOTICE too_large",
    settings: { max_message_size: 16 },
    batch: () =>
      Array.from({ length: 500 }, () => c2c(0x00, crypto.randomUUID(), new Uint8Array(17))),
    replyBytes: 150,
  },
  {
    name: "NOTICE rate_limited (broadcasts over the rate)",
    settings: { broadcast_rate: 1, broadcast_burst: 1 },
    batch: () =>
      Array.from({ length: 500 }, () => c2c(0x01, "ffffffff-ffff-ffff-ffff-ffffffffffff", "x")),
    replyBytes: 120,
  },
];

describe("a client that sends requests and never reads", () => {
  for (const kind of kinds) {
    test(`${kind.name}: stopped as a slow consumer, backlog bounded`, async () => {
      await using c = await startCluster({
        max_outbound_bytes: LIMIT,
        heartbeat_timeout: 60,
        heartbeat_interval: 30,
        // The work budget would only slow the requests down (fairness.test.ts): lifted,
        // so that the replies pile up as fast as the client can ask.
        work_rate: 1e9,
        work_burst: 1e9,
        ...kind.settings,
      });
      const raw = await c.raw("greedy");
      const bystander = await c.client("bystander");
      const most = await floodWithoutReading(c, raw, () => kind.batch(c), kind.replyBytes);
      expect(c.server.stats.slowConsumers).toBe(1);
      expect(most).toBeLessThanOrEqual(LIMIT + SLACK);
      expect(c.server.router.online.size).toBe(1);
      // Gone (cut after its grace for the STOP: checked once), and others are still served.
      if (kind.name === "NOTICE too_large")
        await until(() => c.server.connectionCount === 1, 5000, "the greedy client to be cut");
      expect(await bystander.ping()).toBeGreaterThanOrEqual(0);
      console.log(`${kind.name}: most backlog ${most} B (bound ${LIMIT})`);
    }, 30_000);
  }
});

test("stored messages for a client that does not read hold at most half the bound", async () => {
  await using c = await startCluster({
    max_outbound_bytes: LIMIT,
    queue_max_messages: 100_000,
    queue_max_per_sender: 100_000,
  });
  const sender = await c.enroll("sender");
  const reader = await c.enroll("reader");
  // 600 × 60 KB = 36 MB held: far past the kernel's buffers (which take ~4 MB here)
  // and the bound; one batch of 256 read from the store is 15 MB.
  const data = new Uint8Array(60_000);
  const at = Math.floor(Date.now() / 1000);
  await c.store.enqueue(
    reader.id,
    Array.from({ length: 600 }, () => ({ sender: sender.id, at, data })),
    { maxMessages: Infinity, maxBytes: Infinity, maxAge: Infinity, maxPerSender: Infinity },
  );
  const raw = await c.raw(reader);
  raw.sock.pause();
  const conn = connectionOf(c, raw.id) as Connection;
  let most = 0;
  const end = performance.now() + 1500;
  while (performance.now() < end) {
    most = Math.max(most, conn.outbox?.pendingBytes ?? 0);
    await Bun.sleep(2);
  }
  expect(most).toBeGreaterThan(0);
  expect(most).toBeLessThanOrEqual(LIMIT / 2 + SLACK);
  expect(conn.phase).toBe("open"); // waiting for the client, not stopping it
  // Reading again, it gets all 600, none twice.
  raw.sock.resume();
  for (let i = 0; i < 600; i++) await raw.nextMessage();
  expect(await raw.heartbeat()).toEqual([]);
  expect(c.server.stats.slowConsumers).toBe(0);
  console.log(`stored to a non-reader: most backlog ${most} B (half bound ${LIMIT / 2})`);
}, 30_000);
