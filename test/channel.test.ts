/**
 * Encrypted frames (docs/PROTOCOL.md § Encrypted frames): AES-256-GCM with the nonce
 * `0x00000000 || counter (u64)`, one counter per direction, and every way a frame can
 * fail to open.
 */
import { describe, expect, test } from "bun:test";
import { createCipheriv } from "node:crypto";
import { frameLength, Opener, Sealer } from "../src/crypto/channel.ts";
import { WireError } from "../src/errors.ts";
import { COUNTER_LIMIT, MAX_MESSAGE_DATA, TAG_BYTES } from "../src/wire/constants.ts";
import { FrameReader } from "../src/wire/frame.ts";
import { cat, flip, u8, u16 } from "./helpers/bytes.ts";
import { expectError, thrown } from "./helpers/errors.ts";
import { Prng } from "./helpers/prng.ts";

const rng = new Prng(50);
const key = rng.bytes(32);

/** AES-256-GCM straight from node:crypto, for an independent check of the nonce layout. */
function gcm(k: Uint8Array, counter: number, message: Uint8Array): Uint8Array {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(counter), 4);
  const c = createCipheriv("aes-256-gcm", k, nonce);
  return cat(c.update(message), c.final(), c.getAuthTag());
}

function expectDecryptFailed(fn: () => unknown): void {
  expectError(thrown(fn), WireError, { code: "DECRYPT_FAILED" });
}

describe("Sealer / Opener", () => {
  test("round trip of random messages; both counters advance by one per frame", () => {
    const sealer = new Sealer(key);
    const opener = new Opener(key);
    for (let i = 0; i < 200; i++) {
      const message = rng.bytes(rng.int(1, i < 3 ? MAX_MESSAGE_DATA : 500));
      expect(sealer.counter).toBe(i);
      const payload = sealer.seal(message);
      expect(payload.length).toBe(message.length + TAG_BYTES);
      expect(u8(opener.open(payload))).toEqual(message);
      expect(opener.counter).toBe(i + 1);
    }
  });

  test("the payload is AES-256-GCM with nonce 0x00000000 || u64 counter", () => {
    const message = rng.bytes(33);
    for (const counter of [0, 1, 255, 256, 0x7fffffff, COUNTER_LIMIT - 1]) {
      const expected = gcm(key, counter, message);
      expect(u8(new Sealer(key, counter).seal(message))).toEqual(expected);
      expect(u8(new Opener(key, counter).open(expected))).toEqual(message);
    }
  });

  test("sealFrame is size (u16) || payload, and shares the counter with seal", () => {
    const a = new Sealer(key);
    const b = new Sealer(key);
    const m1 = rng.bytes(10);
    const m2 = rng.bytes(MAX_MESSAGE_DATA);
    expect(a.sealFrame(m1)).toEqual(cat(u16(m1.length + 16), b.seal(m1)));
    expect(a.sealFrame(m2)).toEqual(cat(u16(0xffff), b.seal(m2)));
    expect(a.counter).toBe(2);
  });

  test("sealInto coalesces whole frames into one buffer, in counter order", () => {
    const sealer = new Sealer(key);
    const messages = Array.from({ length: 20 }, () => rng.bytes(rng.int(1, 700)));
    const out = Buffer.alloc(messages.reduce((n, m) => n + frameLength(m), 0));
    let at = 0;
    for (const m of messages) at = sealer.sealInto(m, out, at);
    expect(at).toBe(out.length);
    const opener = new Opener(key);
    const opened: Uint8Array[] = [];
    new FrameReader().push(out, (payload) => {
      opened.push(u8(opener.open(payload)).slice());
      return true;
    });
    expect(opened).toEqual(messages);
  });

  test("a flipped bit anywhere fails to open", () => {
    const payload = new Sealer(key).seal(rng.bytes(24));
    for (let at = 0; at < payload.length; at++) {
      for (const bit of [0, 7])
        expectDecryptFailed(() => new Opener(key).open(flip(payload, at, bit)));
    }
  });

  test("a replayed or reordered frame fails to open", () => {
    const sealer = new Sealer(key);
    const f0 = sealer.seal(rng.bytes(5));
    const f1 = sealer.seal(rng.bytes(5));
    const replay = new Opener(key);
    replay.open(f0);
    expectDecryptFailed(() => replay.open(f0));
    const reorder = new Opener(key);
    expectDecryptFailed(() => reorder.open(f1));
  });

  test("a truncated tag, a bare tag or an empty payload fails to open", () => {
    const payload = new Sealer(key).seal(rng.bytes(40));
    for (let cut = 1; cut <= TAG_BYTES + 5; cut++) {
      expectDecryptFailed(() => new Opener(key).open(payload.subarray(0, payload.length - cut)));
    }
    expectDecryptFailed(() => new Opener(key).open(new Uint8Array(0)));
    expectDecryptFailed(() => new Opener(key).open(payload.subarray(payload.length - TAG_BYTES)));
  });

  test("another key or the other direction's key fails to open", () => {
    const payload = new Sealer(key).seal(rng.bytes(8));
    expectDecryptFailed(() => new Opener(flip(key, 31)).open(payload));
    expectDecryptFailed(() => new Opener(rng.bytes(32)).open(payload));
  });

  test("COUNTER_EXHAUSTED at counter 2^32, in both directions", () => {
    const last = new Sealer(key, COUNTER_LIMIT - 1);
    const payload = last.seal(new Uint8Array([1]));
    expectError(
      thrown(() => last.seal(new Uint8Array([1]))),
      WireError,
      { code: "COUNTER_EXHAUSTED" },
    );
    expectError(
      thrown(() => new Sealer(key, COUNTER_LIMIT).seal(new Uint8Array([1]))),
      WireError,
      { code: "COUNTER_EXHAUSTED" },
    );
    expectError(
      thrown(() => new Opener(key, COUNTER_LIMIT).open(payload)),
      WireError,
      { code: "COUNTER_EXHAUSTED" },
    );
  });

  test("messages of 0 or more than 65519 bytes and keys of the wrong size are refused", () => {
    const sealer = new Sealer(key);
    expect(thrown(() => sealer.seal(new Uint8Array(0)))).toBeInstanceOf(WireError);
    expect(thrown(() => sealer.seal(new Uint8Array(MAX_MESSAGE_DATA + 1)))).toBeInstanceOf(
      WireError,
    );
    // A refused message consumes no counter.
    expect(sealer.counter).toBe(0);
    expect(() => new Sealer(new Uint8Array(31))).toThrow(RangeError);
    expect(() => new Opener(new Uint8Array(33))).toThrow(RangeError);
  });

  test("the key is copied: wiping the caller's bytes leaves the channel working", () => {
    const k = key.slice();
    const sealer = new Sealer(k);
    k.fill(0);
    const payload = sealer.seal(new Uint8Array([42]));
    expect(u8(new Opener(key).open(payload))).toEqual(new Uint8Array([42]));
  });
});
