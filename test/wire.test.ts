/**
 * Framing (docs/PROTOCOL.md § Framing): encodeFrame and the chunk-agnostic FrameReader,
 * fed whole, one byte at a time and in random chunks.
 */
import { describe, expect, test } from "bun:test";
import { WireError } from "../src/errors.ts";
import { FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD } from "../src/wire/constants.ts";
import { checkFrameSize, encodeFrame, FrameReader } from "../src/wire/frame.ts";
import { cat, u16 } from "./helpers/bytes.ts";
import { expectError, thrown } from "./helpers/errors.ts";
import { Prng } from "./helpers/prng.ts";

/** Random frame payloads: mostly small, some at the edges (1 and 65535 bytes). */
function randomPayloads(rng: Prng, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const r = rng.int(0, 19);
    const size = r === 0 ? 1 : r === 1 ? MAX_FRAME_PAYLOAD : rng.int(1, r < 5 ? 4000 : 300);
    out.push(rng.bytes(size));
  }
  return out;
}

/** Feeds `chunks` to a fresh reader and returns copies of every frame it yields. */
function readAll(chunks: Iterable<Uint8Array>, reader = new FrameReader()): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const chunk of chunks) {
    const rest = reader.push(chunk, (payload) => {
      frames.push(payload.slice());
      return true;
    });
    expect(rest).toBeNull();
  }
  return frames;
}

function* randomChunks(rng: Prng, stream: Uint8Array, maxChunk: number): Generator<Uint8Array> {
  let at = 0;
  while (at < stream.length) {
    const n = rng.int(1, maxChunk);
    yield stream.subarray(at, at + n);
    at += n;
  }
}

function* byteByByte(stream: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < stream.length; i++) yield stream.subarray(i, i + 1);
}

describe("encodeFrame", () => {
  test("size || payload, big-endian, for random payloads (seed 1)", () => {
    const rng = new Prng(1);
    for (const payload of randomPayloads(rng, 200)) {
      const frame = encodeFrame(payload);
      expect(frame.length).toBe(FRAME_HEADER_BYTES + payload.length);
      expect(frame.subarray(0, 2)).toEqual(u16(payload.length));
      expect(frame.subarray(2)).toEqual(payload);
    }
  });

  test("bounds: 1 and 65535 accepted, 0 and 65536 refused", () => {
    expect(encodeFrame(new Uint8Array(1))).toEqual(new Uint8Array([0, 1, 0]));
    expect(encodeFrame(new Uint8Array(MAX_FRAME_PAYLOAD)).subarray(0, 2)).toEqual(
      new Uint8Array([0xff, 0xff]),
    );
    expectError(
      thrown(() => encodeFrame(new Uint8Array(0))),
      WireError,
      { code: "FRAME_EMPTY" },
    );
    expectError(
      thrown(() => encodeFrame(new Uint8Array(MAX_FRAME_PAYLOAD + 1))),
      WireError,
      { code: "FRAME_TOO_LARGE" },
    );
    expectError(
      thrown(() => checkFrameSize(101, 100)),
      WireError,
      { code: "FRAME_TOO_LARGE" },
    );
    expect(() => checkFrameSize(100, 100)).not.toThrow();
  });
});

describe("FrameReader", () => {
  for (const seed of [2, 3, 4]) {
    test(`whole, byte by byte and random chunks yield the same frames (seed ${seed})`, () => {
      const rng = new Prng(seed);
      const payloads = randomPayloads(rng, 60);
      const stream = cat(...payloads.map(encodeFrame));
      expect(readAll([stream])).toEqual(payloads);
      expect(readAll(byteByByte(stream))).toEqual(payloads);
      expect(readAll(randomChunks(rng, stream, 7))).toEqual(payloads);
      expect(readAll(randomChunks(rng, stream, 5000))).toEqual(payloads);
      expect(readAll(randomChunks(rng, stream, 70000))).toEqual(payloads);
    });
  }

  test("buffered counts the bytes of an incomplete frame, 0 on a boundary", () => {
    const reader = new FrameReader();
    const frame = encodeFrame(new Uint8Array([1, 2, 3, 4]));
    const none = () => true;
    expect(reader.buffered).toBe(0);
    reader.push(frame.subarray(0, 1), none);
    expect(reader.buffered).toBe(1);
    reader.push(frame.subarray(1, 4), none);
    expect(reader.buffered).toBe(4);
    reader.push(frame.subarray(4), none);
    expect(reader.buffered).toBe(0);
  });

  test("a frame whole in one chunk is a view of that chunk; a split one is a copy", () => {
    const stream = cat(encodeFrame(new Uint8Array([9, 9])), encodeFrame(new Uint8Array([7, 7])));
    const reader = new FrameReader();
    const seen: Uint8Array[] = [];
    // The second frame's payload is split between the chunks (cut inside it).
    reader.push(stream.subarray(0, 7), (p) => {
      seen.push(p);
      return true;
    });
    reader.push(stream.subarray(7), (p) => {
      seen.push(p);
      return true;
    });
    expect(seen).toEqual([new Uint8Array([9, 9]), new Uint8Array([7, 7])]);
    expect(seen[0]?.buffer).toBe(stream.buffer);
    expect(seen[1]?.buffer).not.toBe(stream.buffer);
  });

  test("size 0 is FRAME_EMPTY, also when the header is split", () => {
    expectError(
      thrown(() => readAll([new Uint8Array([0, 0, 1])])),
      WireError,
      { code: "FRAME_EMPTY" },
    );
    expectError(
      thrown(() => readAll([new Uint8Array([0]), new Uint8Array([0])])),
      WireError,
      { code: "FRAME_EMPTY" },
    );
  });

  test("a size above the reader's max is FRAME_TOO_LARGE, and the reader stays failed", () => {
    const reader = new FrameReader(100);
    const frames: Uint8Array[] = [];
    const onFrame = (p: Uint8Array) => {
      frames.push(p.slice());
      return true;
    };
    reader.push(encodeFrame(new Uint8Array(100)), onFrame);
    expect(frames.length).toBe(1);
    const first = thrown(() => reader.push(encodeFrame(new Uint8Array(101)), onFrame));
    expectError(first, WireError, { code: "FRAME_TOO_LARGE" });
    // A valid frame afterwards is refused with the same error; nothing more is yielded.
    const again = thrown(() => reader.push(encodeFrame(new Uint8Array(1)), onFrame));
    expect(again).toBe(first);
    expect(frames.length).toBe(1);
  });

  test("max can be raised (never above 65535) and lowered", () => {
    const reader = new FrameReader(10);
    reader.max = 1_000_000;
    expect(readAll([encodeFrame(new Uint8Array(MAX_FRAME_PAYLOAD))], reader).length).toBe(1);
    reader.max = 3;
    expectError(
      thrown(() => readAll([encodeFrame(new Uint8Array(4))], reader)),
      WireError,
      { code: "FRAME_TOO_LARGE" },
    );
  });

  test("push returns the unread rest when the callback returns false (seed 5)", () => {
    const rng = new Prng(5);
    const payloads = randomPayloads(rng, 20);
    const stream = cat(...payloads.map(encodeFrame));
    for (const chunkMax of [1, 3, 200, 100000]) {
      // Stop after every frame; feed the rest back: the frames must all come out once.
      const reader = new FrameReader();
      const frames: Uint8Array[] = [];
      const stop = (p: Uint8Array) => {
        frames.push(p.slice());
        return false;
      };
      for (const chunk of randomChunks(rng, stream, chunkMax)) {
        let rest: Uint8Array | null = chunk;
        while (rest) rest = reader.push(rest, stop);
      }
      expect(frames).toEqual(payloads);
      expect(reader.buffered).toBe(0);
    }
  });

  test("the rest returned is exactly the bytes after the frame, and a copy", () => {
    const a = encodeFrame(new Uint8Array([1]));
    const b = encodeFrame(new Uint8Array([2, 2]));
    const stream = cat(a, b, b.subarray(0, 3));
    const reader = new FrameReader();
    const rest = reader.push(stream, () => false);
    expect(rest).toEqual(stream.subarray(a.length));
    stream.fill(0xee);
    expect(rest).toEqual(cat(b, b.subarray(0, 3)));
    // Stopping on the last whole frame of a chunk returns null: nothing is left over.
    expect(new FrameReader().push(a, () => false)).toBeNull();
    // undefined from the callback means "go on".
    const seen: number[] = [];
    expect(
      new FrameReader().push(cat(a, b), (p) => {
        seen.push(p.length);
      }),
    ).toBeNull();
    expect(seen).toEqual([1, 2]);
  });
});
