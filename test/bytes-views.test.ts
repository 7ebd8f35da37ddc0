/**
 * Bytes kept beyond the call that received them are copies of their own size, never
 * views of a socket chunk or a decrypted record: Bun's socket chunks and node:crypto's
 * outputs are `Buffer`s, whose `slice` is a view. Each case feeds a `Buffer` (what the
 * real socket and cipher hand out) and checks that what is kept owns exactly its bytes.
 */
import { describe, expect, test } from "bun:test";
import { TYPE_PREKEY } from "../src/e2e/constants.ts";
import { decodeEnvelope, pad, unpad } from "../src/e2e/envelope.ts";
import { BATCH_HEADER_BYTES, eachInRecord, encodeRecord } from "../src/wire/batch.ts";
import { copyBytes } from "../src/wire/bytes.ts";
import { encodeFrame, FrameReader } from "../src/wire/frame.ts";

/** True when `b` is a view into a larger buffer (keeps more memory than its length). */
const isView = (b: Uint8Array) => b.buffer.byteLength !== b.length;

describe("copies, not views", () => {
  test("copyBytes copies out of a Buffer, and is never a view", () => {
    const big = Buffer.alloc(65536, 7);
    const c = copyBytes(big, 100, 200);
    expect(c.length).toBe(100);
    expect(isView(c)).toBe(false);
    big[150] = 9;
    expect(c[50]).toBe(7); // not shared
    expect(isView(copyBytes(big))).toBe(false);
    expect(Array.from(copyBytes(Buffer.from([1, 2, 3, 4]), -2))).toEqual([3, 4]);
  });

  test("FrameReader: the rest of a paused socket chunk is a copy of the rest alone", () => {
    const frames = Array.from({ length: 200 }, (_, i) => encodeFrame(new Uint8Array(300).fill(i)));
    const chunk = Buffer.concat(frames); // one socket chunk of many frames
    const reader = new FrameReader();
    const rest = reader.push(chunk, () => false) as Uint8Array;
    expect(rest.length).toBe(chunk.length - 302);
    expect(isView(rest)).toBe(false);
    chunk.fill(0); // the chunk reused: the rest must not change
    const seen: number[] = [];
    reader.push(rest, (p) => {
      seen.push(p[0] as number);
      return undefined;
    });
    expect(seen).toEqual(Array.from({ length: 199 }, (_, i) => i + 1));
  });

  test("records: each message handed out is a copy of its own size, not the record", () => {
    const messages = Array.from({ length: 100 }, (_, i) => new Uint8Array(40).fill(i));
    const record = Buffer.from(encodeRecord(messages)); // as node:crypto would hand it out
    const kept: Uint8Array[] = [];
    eachInRecord(record, BATCH_HEADER_BYTES, (m) => kept.push(m) > 0);
    expect(kept.length).toBe(100);
    for (const m of kept) expect(isView(m)).toBe(false);
    expect(kept[42]?.[0]).toBe(42);
  });

  test("E2E: keys and ciphertext parsed from a received message do not keep the message", () => {
    // A prekey envelope inside a large decrypted Buffer, as a client receives it.
    const f = 4;
    const env = new Uint8Array(f + 169 + 40 + 16 + 64);
    env.set([0xff, 0xe2, 1, TYPE_PREKEY]);
    const frame = Buffer.alloc(65000);
    frame.set(env, 1000);
    const e = decodeEnvelope(frame.subarray(1000, 1000 + env.length));
    if (!("sender" in e)) throw new Error("expected a prekey envelope");
    for (const b of [
      e.sender.signingKey,
      e.sender.dhKey,
      e.sender.dhSignature,
      e.init.ephemeral,
      e.header.dh,
      e.prefix,
      e.ciphertext,
    ])
      expect(isView(b)).toBe(false);
    const padded = Buffer.concat([Buffer.alloc(4096), Buffer.from(pad(new Uint8Array(10)))]);
    expect(isView(unpad(padded.subarray(4096)))).toBe(false);
  });
});
