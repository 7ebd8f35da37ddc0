/**
 * Records of many messages (docs/PROTOCOL.md § BATCH): negotiated with an offer and an
 * accept; one sealed frame then carries several messages, in order, both ways. A
 * client that does not offer — and a server that does not accept — sees one message
 * per frame, exactly as before.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "../../src/client/client.ts";
import {
  BATCH_HEADER_BYTES,
  checkRecord,
  eachInRecord,
  encodeBatchOffer,
  encodeRecord,
  MAX_BATCH_MESSAGES,
} from "../../src/wire/batch.ts";
import {
  ControlType,
  decodeJson,
  decodeMessage,
  encodeAckBody,
  encodeControl,
  Format,
  type Message,
} from "../../src/wire/message.ts";
import { type Cluster, startCluster, until } from "../helpers/cluster.ts";
import { FakeServer } from "../helpers/fake-server.ts";
import { makeDataDir, spawnServer } from "../helpers/processes.ts";
import { c2c, isControl, RawSession } from "../helpers/raw.ts";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster();
});
afterAll(async () => {
  await c[Symbol.asyncDispose]();
});

const dec = new TextDecoder();
const OFFER = encodeBatchOffer(0x6955b900);

async function rawLogin(name: string, early: Uint8Array[] = []): Promise<RawSession> {
  const identity = await c.enroll(`${name}-${crypto.randomUUID().slice(0, 8)}`);
  return RawSession.login(c.server.port, identity, "127.0.0.1", early);
}

/** Reads frames until `want` messages have come; records are taken apart. */
async function readMessages(
  raw: RawSession,
  want: number,
): Promise<{ frames: number; records: number; messages: Uint8Array[] }> {
  const out = { frames: 0, records: 0, messages: [] as Uint8Array[] };
  while (out.messages.length < want) {
    const plain = await raw.next();
    out.frames++;
    if (plain[0] === 0x19 && plain[5] === 0x01) {
      checkRecord(plain);
      out.records++;
      eachInRecord(plain, BATCH_HEADER_BYTES, (m) => out.messages.push(m) > 0);
    } else out.messages.push(plain);
  }
  return out;
}

function texts(messages: Uint8Array[]): string[] {
  return messages.map((m) => dec.decode(m.subarray(17)));
}

async function discarded(raw: RawSession): Promise<number> {
  return (await raw.serverStatus()).messages_discarded as number;
}

describe("negotiation", () => {
  test("a client that does not offer gets one message per frame, never a record", async () => {
    const bob = await rawLogin("plain-bob");
    const alice = await c.client("plain-alice"); // offers, and sends records
    await until(() => alice.connected);
    await alice.ping(); // the accept has come: alice now seals records
    for (let i = 0; i < 200; i++) alice.send(bob.id, `m${i}`);
    const got = await readMessages(bob, 200);
    expect(got.records).toBe(0);
    expect(got.frames).toBe(200);
    expect(got.messages.every((m) => m[0] === 0x00)).toBe(true);
    expect(texts(got.messages)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
    expect(await bob.heartbeat()).toEqual([]);
  });

  test("an offer sent with the response is accepted right after CONFIG; then what is queued together goes in records", async () => {
    const bob = await rawLogin("batch-bob", [OFFER]);
    const accept = await bob.next();
    expect(accept[0]).toBe(0x19);
    expect([...accept.subarray(5)]).toEqual([0x00, 0x01]); // kind accept, version 1
    expect(accept.length).toBe(7);
    const alice = await c.client("batch-alice");
    await alice.ping();
    for (let i = 0; i < 500; i++) alice.send(bob.id, `m${i}`);
    const got = await readMessages(bob, 500);
    expect(got.records).toBeGreaterThan(0);
    expect(got.frames).toBeLessThan(100);
    expect(texts(got.messages)).toEqual(Array.from({ length: 500 }, (_, i) => `m${i}`));
    // A lone message still goes at once, alone in its frame.
    alice.send(bob.id, "alone");
    const lone = await bob.next();
    expect(lone[0]).toBe(0x00);
    expect(dec.decode(lone.subarray(17))).toBe("alone");
  });

  test("a repeated offer gets the accept again; a record from a client that never offered is discarded and counted", async () => {
    const raw = await rawLogin("no-offer");
    const bob = await rawLogin("no-offer-bob");
    const before = await discarded(raw);
    raw.send(encodeRecord([c2c(0x00, bob.id, "hidden 1"), c2c(0x00, bob.id, "hidden 2")]));
    expect(await raw.heartbeat()).toEqual([]);
    expect(await discarded(raw)).toBe(before + 1);
    expect(await bob.heartbeat()).toEqual([]); // nothing delivered
    raw.send(OFFER);
    raw.send(OFFER);
    raw.send(encodeControl(ControlType.HEARTBEAT));
    const answers = await readMessages(raw, 3);
    expect(answers.messages.map((m) => [...m.subarray(0, 1), ...m.subarray(5)])).toEqual([
      [0x19, 0x00, 0x01],
      [0x19, 0x00, 0x01],
      [0x10],
    ]);
  });

  test("the library against a server that does not accept (an older one): offers once, then one message per frame", async () => {
    const alice = await c.enroll(`old-${crypto.randomUUID().slice(0, 8)}`);
    const serverKey = (await import("../helpers/cluster.ts")).testServerKey;
    await using fake = await FakeServer.start({
      key: await serverKey(),
      clients: new Map([[alice.id, alice.key.publicKey]]),
      config: { heartbeat_interval: 15, heartbeat_timeout: 45 },
    });
    const { connect } = await import("../../src/client/client.ts");
    const client = await connect({
      identity: { ...alice, server: fake.address },
      reconnect: false,
    });
    const to = crypto.randomUUID();
    for (let i = 0; i < 100; i++) client.send(to, `m${i}`);
    await until(() => fake.received.filter((m) => m.format === Format.C2C).length === 100);
    const offers = fake.received.filter((m) => isControl(m, ControlType.BATCH));
    expect(offers.length).toBe(1);
    const data = fake.received.filter((m) => m.format === Format.C2C);
    expect(data.map((m) => dec.decode((m as Extract<Message, { format: 0 }>).data))).toEqual(
      Array.from({ length: 100 }, (_, i) => `m${i}`),
    );
    await client.close();
    // batch: false offers nothing.
    const quiet = await connect({
      identity: { ...alice, server: fake.address },
      reconnect: false,
      batch: false,
    });
    quiet.send(to, "x");
    await until(() => fake.received.filter((m) => m.format === Format.C2C).length === 101);
    expect(fake.received.filter((m) => isControl(m, ControlType.BATCH)).length).toBe(1);
    await quiet.close();
  });
});

describe("records from a client", () => {
  async function batchedRaw(name: string): Promise<RawSession> {
    const raw = await rawLogin(name, [OFFER]);
    const accept = decodeMessage(await raw.next());
    expect(isControl(accept, ControlType.BATCH)).toBe(true);
    return raw;
  }

  test("control and data mixed in one record: handled in order, replies in order", async () => {
    const alice = await batchedRaw("mix-alice");
    const bob = await rawLogin("mix-bob");
    alice.send(
      encodeRecord([
        encodeControl(ControlType.HEARTBEAT),
        c2c(0x00, bob.id, "one"),
        encodeControl(ControlType.SERVER_STATUS),
        c2c(0x00, bob.id, "two"),
        encodeControl(ControlType.CLIENT_STATUS, { clients: [bob.id] }),
        encodeControl(ControlType.HEARTBEAT),
      ]),
    );
    const got = await readMessages(alice, 4);
    expect(got.messages.map((m) => m[0])).toEqual([0x10, 0x12, 0x13, 0x10]);
    const status = decodeJson(got.messages[2]?.subarray(5) as Uint8Array) as {
      clients: { id: string; online: boolean }[];
    };
    expect(status.clients[0]?.online).toBe(true);
    const toBob = await readMessages(bob, 2);
    expect(texts(toBob.messages)).toEqual(["one", "two"]);
  });

  test("order is kept across many records and frames in between", async () => {
    const alice = await batchedRaw("order-alice");
    const bob = await c.client(`order-bob-${crypto.randomUUID().slice(0, 8)}`);
    const got: string[] = [];
    bob.on("message", (m) => got.push(dec.decode(m.data)));
    await bob.ping();
    let n = 0;
    for (let r = 0; r < 40; r++) {
      const msgs = Array.from({ length: 1 + (r % 7) * 40 }, () => c2c(0x00, bob.id, `m${n++}`));
      alice.send(encodeRecord(msgs));
      alice.send(c2c(0x00, bob.id, `m${n++}`)); // a frame of its own in between
    }
    await until(() => got.length === n, 10_000, "all messages");
    expect(got).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
  });

  const faults: [string, () => Uint8Array][] = [
    ["a record with no message", () => new Uint8Array([0x19, 0, 0, 0, 0, 0x01])],
    ["a length field cut short", () => cat(encodeRecord([hello()]), new Uint8Array([0x00]))],
    ["an entry of length 0", () => cat(encodeRecord([hello()]), new Uint8Array([0, 0]))],
    [
      "a truncated last message",
      () => {
        const r = encodeRecord([hello(), hello()]);
        return r.subarray(0, r.length - 3);
      },
    ],
    ["a BATCH inside a record", () => encodeRecord([hello(), encodeRecord([hello(), hello()])])],
    [
      "more than MAX_BATCH_MESSAGES messages",
      () => {
        const one = encodeControl(ControlType.HEARTBEAT);
        const body = cat(...Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => cat(u16(5), one)));
        return cat(new Uint8Array([0x19, 0, 0, 0, 0, 0x01]), body);
      },
    ],
  ];
  let bobId = "";
  const hello = () => c2c(0x00, bobId, "before the fault");

  for (const [name, record] of faults) {
    test(`${name}: STOP protocol error, and none of the record's messages is acted on`, async () => {
      const bob = await rawLogin("fault-bob");
      bobId = bob.id;
      const alice = await batchedRaw("fault-alice");
      const errors = c.server.stats.protocolErrors;
      alice.send(record());
      const { reason, before } = await alice.expectStop();
      expect(reason).toBe("protocol error");
      expect(before).toEqual([]);
      expect(c.server.stats.protocolErrors).toBe(errors + 1);
      expect(await bob.heartbeat()).toEqual([]); // nothing from the bad record
    });
  }

  test("a message inside that is malformed (a control message of 3 bytes) stops the connection like one in its own frame", async () => {
    const bob = await rawLogin("short-bob");
    const alice = await batchedRaw("short-alice");
    alice.send(encodeRecord([c2c(0x00, bob.id, "first"), new Uint8Array([0x12, 0, 0])]));
    const { reason } = await alice.expectStop();
    expect(reason).toBe("protocol error");
    const got = await readMessages(bob, 1);
    expect(texts(got.messages)).toEqual(["first"]); // handled before, in order
  });
});

describe("stored messages and ACK", () => {
  test("stored messages come in records; acknowledged exactly, the rest delivered again at the next login", async () => {
    await using c = await startCluster();
    const bobIdentity = await c.enroll(`stored-bob-${crypto.randomUUID().slice(0, 8)}`);
    const alice: Client = await c.client(`stored-alice-${crypto.randomUUID().slice(0, 8)}`);
    const total = 600;
    for (let i = 0; i < total; i++) alice.send(bobIdentity.id, `s${i}`);
    await until(async () => (await c.store.pendingCount()) >= total, 10_000, "messages stored");
    // First login: ACK 0 and the offer with the response; read 300, acknowledge 100.
    const first = await RawSession.login(c.server.port, bobIdentity, "127.0.0.1", [
      encodeControl(ControlType.ACK, encodeAckBody(0)),
      OFFER,
    ]);
    expect(isControl(decodeMessage(await first.next()), ControlType.BATCH)).toBe(true);
    const part = await readMessages(first, 256); // the first batch of acknowledged delivery
    expect(part.records).toBeGreaterThan(0);
    expect(part.messages.every((m) => m[0] === 0x02)).toBe(true);
    first.send(encodeControl(ControlType.ACK, encodeAckBody(100)));
    await first.heartbeat();
    first.sock.destroy();
    await until(
      async () => (await c.store.pendingCount()) === total - 100,
      5000,
      "100 acknowledged",
    );
    // Second login: exactly the 500 not acknowledged, in order, acknowledged as they come.
    const second = await RawSession.login(c.server.port, bobIdentity, "127.0.0.1", [
      encodeControl(ControlType.ACK, encodeAckBody(0)),
      OFFER,
    ]);
    expect(isControl(decodeMessage(await second.next()), ControlType.BATCH)).toBe(true);
    const rest: Uint8Array[] = [];
    while (rest.length < total - 100) {
      const got = await readMessages(second, 1);
      rest.push(...got.messages);
      second.send(encodeControl(ControlType.ACK, encodeAckBody(rest.length)));
    }
    expect(rest.map((m) => dec.decode(m.subarray(21)))).toEqual(
      Array.from({ length: total - 100 }, (_, i) => `s${i + 100}`),
    );
    expect(await second.heartbeat()).toEqual([]);
    await until(async () => (await c.store.pendingCount()) === 0, 5000, "all acknowledged");
    second.sock.destroy();
  });
});

describe("the work budget counts every message of a record", () => {
  test("CLIENT_STATUS requests packed in records are served no faster than the budget, in order", async () => {
    const rate = 2560;
    const burst = 1280;
    await using b = await startCluster({ work_rate: rate, work_burst: burst });
    const identity = await b.enroll("budget-flooder");
    const raw = await RawSession.login(b.server.port, identity, "127.0.0.1", [OFFER]);
    expect(isControl(decodeMessage(await raw.next()), ControlType.BATCH)).toBe(true);
    const n = 20;
    const request = (i: number) =>
      encodeControl(ControlType.CLIENT_STATUS, {
        clients: Array.from({ length: 256 }, (_, k) => `r${i}-${k}`),
      });
    const t0 = performance.now();
    raw.send(encodeRecord(Array.from({ length: 10 }, (_, i) => request(i))));
    raw.send(encodeRecord(Array.from({ length: 10 }, (_, i) => request(10 + i))));
    const arrivals: number[] = [];
    const tags: string[] = [];
    while (arrivals.length < n) {
      const got = await readMessages(raw, 1);
      for (const m of got.messages) {
        arrivals.push((performance.now() - t0) / 1000);
        const body = decodeJson(m.subarray(5)) as { clients: { query: string }[] };
        tags.push(body.clients[0]?.query.split("-")[0] ?? "");
      }
    }
    expect(tags).toEqual(Array.from({ length: n }, (_, i) => `r${i}`));
    for (const [k, t] of arrivals.entries()) {
      expect((k + 1) * 256).toBeLessThanOrEqual(burst + rate * t + 256);
    }
    raw.sock.destroy();
  });
});

describe("input slices count every message of a record", () => {
  test("a flood of CLIENT_STATUS packed in records, budget lifted: another client's HEARTBEAT waits for a few slices, not the flood", async () => {
    // As test/hardening/fairness.test.ts, with the requests in records of 10: each
    // record is 10 × 256 lookups, 5 slices' worth, so the server must yield mid-record.
    await using data = await makeDataDir();
    await using server = await spawnServer(data.dir, { work_rate: 1e9, work_burst: 1e9 });
    const flooderId = await data.enroll("record-flooder", server.address);
    const victimId = await data.enroll("record-victim", server.address);
    await using flooder = await RawSession.login(server.port, flooderId, "127.0.0.1", [OFFER]);
    await using victim = await RawSession.login(server.port, victimId);
    expect(isControl(decodeMessage(await flooder.next()), ControlType.BATCH)).toBe(true);
    const total = 600;
    const request = (i: number) =>
      encodeControl(ControlType.CLIENT_STATUS, {
        clients: Array.from({ length: 256 }, (_, k) => `r${i}-${k}`),
      });
    const seen = { replies: 0, tags: [] as string[] };
    const reading = (async () => {
      while (seen.replies < total) {
        const got = await readMessages(flooder, 1).catch(() => null);
        if (!got) return;
        for (const m of got.messages) {
          if (m[0] !== 0x13) continue;
          seen.replies++;
          const body = decodeJson(m.subarray(5)) as { clients: { query: string }[] };
          seen.tags.push(body.clients[0]?.query.split("-")[0] ?? "");
        }
      }
    })();
    for (let r = 0; r < total / 10; r++)
      flooder.send(encodeRecord(Array.from({ length: 10 }, (_, i) => request(r * 10 + i))));
    while (seen.replies === 0) await Bun.sleep(1);
    await victim.heartbeat(20_000); // not measured: the test's own sends settle first
    const during: number[] = [];
    for (let round = 0; round < 8 && seen.replies < total; round++) {
      const before = seen.replies;
      await victim.heartbeat(20_000);
      during.push(seen.replies - before);
    }
    during.sort((a, b) => a - b);
    expect(during.length).toBeGreaterThan(0);
    // A slice is 512 lookups (2 requests); a record is 10. Were records handled whole,
    // a HEARTBEAT would wait for at least one record (10 replies) at every turn.
    expect(during[Math.floor(during.length / 2)] as number).toBeLessThanOrEqual(8);
    await reading;
    expect(seen.tags).toEqual(Array.from({ length: total }, (_, i) => `r${i}`));
    console.log(
      `records flood: flooder replies during another's HEARTBEAT (sorted): ${during.join(",")}`,
    );
  }, 60_000);
});

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u16(n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff]);
}
