/**
 * How the outbox packs records (docs/PROTOCOL.md § BATCH, "Limits"): driven over a fake
 * socket (as test/outbox.test.ts does), every frame opened with an independent AES-GCM
 * at the counter it must have used and taken apart by hand.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { Sealer } from "../src/crypto/channel.ts";
import { CONTROL, LIVE, Outbox, SWITCH } from "../src/net/outbox.ts";
import {
  BATCH_HEADER_BYTES,
  eachInRecord,
  encodeBatchOffer,
  encodeRecord,
  MAX_BATCH_MESSAGES,
} from "../src/wire/batch.ts";
import { MAX_MESSAGE_DATA } from "../src/wire/constants.ts";
import { ControlType, encodeControl } from "../src/wire/message.ts";
import { cat } from "./helpers/bytes.ts";
import { Prng } from "./helpers/prng.ts";
import { gcmOpen } from "./helpers/schedule.ts";

const key = new Prng(91).bytes(32);

function setup(batching: boolean) {
  const written: Uint8Array[] = [];
  const socket = {
    write(bytes: Uint8Array): number {
      written.push(bytes.slice());
      return bytes.length;
    },
  } as unknown as Socket<unknown>;
  const outbox = new Outbox(socket, new Sealer(key, 0));
  if (batching) outbox.startBatching();
  /** Every frame so far, opened: each a list of messages (one unless a record). */
  const frames = () => {
    const stream = cat(...written);
    const out: Uint8Array[][] = [];
    let counter = 0;
    for (let at = 0; at < stream.length; ) {
      const size = ((stream[at] as number) << 8) | (stream[at + 1] as number);
      const plain = gcmOpen(key, counter++, stream.subarray(at + 2, at + 2 + size));
      at += 2 + size;
      if (plain[0] !== 0x19 || plain[5] !== 0x01) {
        out.push([plain]);
        continue;
      }
      const msgs: Uint8Array[] = [];
      for (let i = 6; i < plain.length; ) {
        const len = ((plain[i] as number) << 8) | (plain[i + 1] as number);
        msgs.push(plain.slice(i + 2, i + 2 + len));
        i += 2 + len;
      }
      out.push(msgs);
    }
    return out;
  };
  return { outbox, frames };
}

const msg = (i: number, size = 20) => {
  const m = new Uint8Array(size);
  m[0] = 0x00;
  m[1] = i >>> 8;
  m[2] = i & 0xff;
  return m;
};

describe("records in the outbox", () => {
  test("without batching: one message per frame, as before", () => {
    const { outbox, frames } = setup(false);
    for (let i = 0; i < 10; i++) outbox.push(msg(i), LIVE);
    outbox.flush();
    expect(frames().map((f) => f.length)).toEqual(Array(10).fill(1));
  });

  test("a lone message goes alone, not as a record of one", () => {
    const { outbox, frames } = setup(true);
    outbox.push(msg(1), LIVE);
    outbox.flush();
    expect(frames()).toEqual([[msg(1)]]);
  });

  test("what one flush holds shares records, in order, at most MAX_BATCH_MESSAGES each", () => {
    const { outbox, frames } = setup(true);
    const n = MAX_BATCH_MESSAGES * 2 + 5;
    for (let i = 0; i < n; i++) outbox.push(msg(i, 3), LIVE);
    outbox.flush();
    const f = frames();
    expect(f.map((r) => r.length)).toEqual([MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES, 5]);
    expect(f.flat()).toEqual(Array.from({ length: n }, (_, i) => msg(i, 3)));
    expect(outbox.framesOut).toBe(n); // messages, as the monitor counts them
  });

  test("a record never passes one frame: large messages split records, one too large for a record goes alone", () => {
    const { outbox, frames } = setup(true);
    const big = MAX_MESSAGE_DATA - 6 - 2; // the largest that fits a record alone
    const sizes = [30_000, 30_000, 30_000, big, 10, MAX_MESSAGE_DATA, 10, 10];
    sizes.forEach((s, i) => {
      outbox.push(msg(i, s), LIVE);
    });
    outbox.flush();
    const f = frames();
    expect(f.map((r) => r.map((m) => m.length))).toEqual([
      [30_000, 30_000],
      [30_000],
      [big],
      [10],
      [MAX_MESSAGE_DATA],
      [10, 10],
    ]);
  });

  test("SWITCH: the accept goes alone and turns records on for what follows it", () => {
    const { outbox, frames } = setup(false);
    outbox.push(msg(0), LIVE);
    outbox.push(msg(1), LIVE);
    const accept = encodeBatchOffer(5);
    outbox.push(accept, SWITCH);
    outbox.push(msg(2), LIVE);
    outbox.push(encodeControl(ControlType.HEARTBEAT, undefined, 5), CONTROL);
    outbox.push(accept, SWITCH); // a second accept: alone again, never inside a record
    outbox.push(msg(3), LIVE);
    outbox.flush();
    expect(frames()).toEqual([
      [msg(0)],
      [msg(1)],
      [accept],
      [msg(2), encodeControl(ControlType.HEARTBEAT, undefined, 5)],
      [accept],
      [msg(3)],
    ]);
    expect(outbox.batching).toBe(true);
  });

  test("undelivered live messages are still taken out one by one (stored later), whatever their record", () => {
    const { outbox } = setup(true);
    for (let i = 0; i < 5; i++) outbox.push(msg(i), i % 2 ? CONTROL : LIVE);
    expect(outbox.takeUndelivered()).toEqual([msg(0), msg(2), msg(4)]);
  });
});

describe("taking a record apart", () => {
  test("each message is a copy of its own size, never a view that keeps the whole record alive", () => {
    const messages = Array.from({ length: 50 }, (_, i) => msg(i, 100));
    // node:crypto hands out Buffers, whose slice() is a view: the copy must not be one.
    const record = Buffer.from(encodeRecord(messages, 5));
    const got: Uint8Array[] = [];
    eachInRecord(record, BATCH_HEADER_BYTES, (m) => got.push(m) > 0);
    expect(got).toEqual(messages);
    for (const m of got) {
      expect(m.buffer === record.buffer).toBe(false);
      expect(m.buffer.byteLength).toBe(100);
    }
  });
});
