/**
 * The outbox near the end of the counter space (docs/PROTOCOL.md § Encrypted frames):
 * the last s2c counter, 2^32 − 1, is kept for STOP `rekey required`; nothing is ever
 * sealed at 2^32. End to end this cannot be reached (4 billion frames on one
 * connection), so the Outbox is driven here over a fake socket with a Sealer that
 * starts at 2^32 − 3, and every frame it writes is opened with an independent
 * AES-GCM (test/helpers/schedule.ts) at the counter it must have used.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { Sealer } from "../src/crypto/channel.ts";
import { CONTROL, LIVE, Outbox, type OutboxOwner } from "../src/net/outbox.ts";
import { COUNTER_LIMIT } from "../src/wire/constants.ts";
import { ControlType, encodeControl } from "../src/wire/message.ts";
import { cat } from "./helpers/bytes.ts";
import { Prng } from "./helpers/prng.ts";
import { gcmOpen } from "./helpers/schedule.ts";

const LAST = COUNTER_LIMIT - 1;
const rng = new Prng(90);
const key = rng.bytes(32);
const STOP = encodeControl(ControlType.STOP, "rekey required", 7);

/** A socket that takes at most `accept` bytes per write (all by default), and records them. */
function fakeSocket(accept = Infinity) {
  const written: Uint8Array[] = [];
  const socket = {
    write(bytes: Uint8Array): number {
      const n = Math.min(bytes.length, accept);
      written.push(bytes.slice(0, n));
      return n;
    },
  };
  return { socket: socket as unknown as Socket<unknown>, bytes: () => cat(...written) };
}

/** Splits a byte stream into frame payloads. */
function frames(stream: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < stream.length; ) {
    const size = ((stream[at] as number) << 8) | (stream[at + 1] as number);
    out.push(stream.subarray(at + 2, at + 2 + size));
    at += 2 + size;
  }
  return out;
}

/** An outbox whose sealer starts at `counter`, owned as Connection owns it: exhausted → STOP. */
function outboxAt(counter: number, accept?: number) {
  const fake = fakeSocket(accept);
  const events = { exhausted: 0, idle: 0 };
  const owner: OutboxOwner = {
    outboxIdle: () => events.idle++,
    outboxExhausted: () => {
      if (events.exhausted++ > 0) return; // Connection.stop runs once
      outbox.push(STOP, CONTROL);
      outbox.flush();
    },
  };
  const outbox = new Outbox(fake.socket, new Sealer(key, counter), owner);
  /** Opens every frame written so far at consecutive counters from `counter`. */
  const opened = () => frames(fake.bytes()).map((f, i) => gcmOpen(key, counter + i, f));
  return { outbox, events, opened };
}

const msg = (n: number) => cat(new Uint8Array([0x00]), new Uint8Array(16), rng.bytes(n));

describe("Outbox at the end of the counter space", () => {
  test("at 2^32 − 3: two messages, then STOP takes 2^32 − 1; the third is never sealed", () => {
    const { outbox, events, opened } = outboxAt(LAST - 2);
    const [a, b, c] = [msg(10), msg(20), msg(30)];
    outbox.push(a, LIVE);
    outbox.push(b, CONTROL);
    outbox.push(c, LIVE);
    outbox.flush();
    expect(events.exhausted).toBe(1);
    expect(opened()).toEqual([a, b, STOP]);
    expect(outbox.counter).toBe(COUNTER_LIMIT);
    expect(outbox.idle).toBe(true);
    // Anything queued afterwards stays unsealed: no frame at 2^32, and no exception.
    outbox.push(msg(5), LIVE);
    expect(() => outbox.flush()).not.toThrow();
    expect(opened()).toEqual([a, b, STOP]);
    expect(outbox.counter).toBe(COUNTER_LIMIT);
  });

  test("at 2^32 − 2 with a STOP already queued: the message, then the STOP at the last counter", () => {
    const { outbox, events, opened } = outboxAt(LAST - 1);
    const a = msg(1);
    outbox.push(a, CONTROL);
    outbox.push(STOP, CONTROL);
    outbox.flush();
    expect(events.exhausted).toBe(0);
    expect(opened()).toEqual([a, STOP]);
  });

  test("at 2^32 − 1 only the STOP goes out; what was queued around it is dropped", () => {
    const { outbox, events, opened } = outboxAt(LAST);
    for (const m of [msg(3), msg(4), STOP, msg(5)]) outbox.push(m, CONTROL);
    outbox.flush();
    expect(events.exhausted).toBe(0);
    expect(opened()).toEqual([STOP]);
    expect(outbox.counter).toBe(COUNTER_LIMIT);
  });

  test("at 2^32 − 1 without a STOP: nothing is sealed until the STOP comes", () => {
    const fake = fakeSocket();
    let exhausted = 0;
    const owner = { outboxIdle: () => {}, outboxExhausted: () => exhausted++ };
    const outbox = new Outbox(fake.socket, new Sealer(key, LAST), owner);
    outbox.push(msg(8), LIVE);
    outbox.flush();
    outbox.flush();
    expect(exhausted).toBe(2);
    expect(fake.bytes().length).toBe(0);
    expect(outbox.counter).toBe(LAST);
    // The undelivered live message can still be taken (to be stored for the next login).
    expect(outbox.takeUndelivered().length).toBe(1);
    outbox.push(STOP, CONTROL);
    outbox.flush();
    expect(frames(fake.bytes()).map((f) => gcmOpen(key, LAST, f))).toEqual([STOP]);
  });

  test("a socket taking 7 bytes at a time: drain keeps the counters in order up to STOP", () => {
    const { outbox, events, opened } = outboxAt(LAST - 3, 7);
    const sent = [msg(40), msg(0), msg(100)];
    for (const m of sent) outbox.push(m, LIVE);
    outbox.flush();
    outbox.push(msg(9), LIVE); // queued behind unsent bytes: past the room, never sealed
    for (let i = 0; i < 200 && !outbox.idle; i++) outbox.drain();
    expect(outbox.idle).toBe(true);
    expect(events.exhausted).toBe(1);
    expect(opened()).toEqual([...sent, STOP]);
    expect(events.idle).toBeGreaterThan(0);
  });
});
