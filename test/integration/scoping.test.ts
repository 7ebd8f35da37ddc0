/**
 * Scoping and protocol errors (docs/PROTOCOL.md § Scoping, § Encrypted frames):
 * out-of-scope messages are discarded and counted while the connection stays up;
 * malformed messages, size-0 frames, tampered and replayed frames end that connection
 * (STOP `protocol error`, then the close) and no other.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { idToBytes } from "../../src/ids.ts";
import { ControlType, encodeControl, encodeS2S, encodeStored } from "../../src/wire/message.ts";
import { encodeRoomMessage } from "../../src/wire/room.ts";
import { flip } from "../helpers/bytes.ts";
import { type Cluster, inbox, startCluster, until } from "../helpers/cluster.ts";
import { c2c, isControl, type RawSession } from "../helpers/raw.ts";

let c: Cluster;
let bobId: string;

beforeAll(async () => {
  c = await startCluster();
  bobId = (await c.client("bob")).id;
});
afterAll(async () => {
  await c[Symbol.asyncDispose]();
});

const discarded = async (raw: RawSession) =>
  (await raw.serverStatus()).messages_discarded as number;

/** Out of scope for a client to send: each is discarded, counted, and not answered. */
const outOfScope: [string, () => Uint8Array][] = [
  ["S2S STOP (0x20) on a socket", () => encodeS2S(0, new TextEncoder().encode("pwned"))],
  ["S2S, one byte (0x2f)", () => new Uint8Array([0x2f])],
  ["reserved format 3 (0x30)", () => new Uint8Array([0x30, 1, 2, 3])],
  ["reserved format, one byte (0x35)", () => new Uint8Array([0x35])],
  ["reserved format 15 (0xff)", () => new Uint8Array(40).fill(0xff)],
  ["reserved C2C type 6 (0x06)", () => c2c(0x06, bobId, "x")],
  [
    "stored room message (0x04) from a client",
    () => encodeRoomMessage(idToBytes(bobId), "ops", new Uint8Array(3), 1),
  ],
  ["reserved C2C type 15, one byte (0x0f)", () => new Uint8Array([0x0f])],
  ["reserved control type 5 (0x15)", () => encodeControl(5 as ControlType, "?")],
  ["reserved control type 14, one byte (0x1e)", () => new Uint8Array([0x1e])],
  ["CONFIG from a client", () => encodeControl(ControlType.CONFIG, { heartbeat_interval: 1 })],
  ["NOTICE from a client", () => encodeControl(ControlType.NOTICE, { status: "queued" })],
  ["stored C2C (0x02) from a client", () => encodeStored(idToBytes(bobId), 1, new Uint8Array(3))],
  ["broadcast (0x01) to a client's address", () => c2c(0x01, bobId, "x")],
];

describe("scoping: discarded, counted, connection kept", () => {
  test.each(outOfScope)("%s", async (_what, message) => {
    const raw = await c.raw(`raw-${crypto.randomUUID().slice(0, 8)}`);
    const bob = await c.raw(await c.enroll(`bob-${crypto.randomUUID().slice(0, 8)}`));
    const before = await discarded(raw);
    raw.send(message());
    // The HEARTBEAT round trip proves the connection survived and nothing was sent back.
    expect(await raw.heartbeat()).toEqual([]);
    expect(await discarded(raw)).toBe(before + 1);
    expect(await bob.heartbeat()).toEqual([]); // and nothing reached anyone
    expect(raw.sock.isClosed).toBe(false);
  });

  test("a burst of every kind at once: one count each, then business as usual", async () => {
    const raw = await c.raw("burst");
    const listener = await c.client("listener");
    const got = inbox(listener);
    const before = await discarded(raw);
    for (const [, message] of outOfScope) raw.send(message());
    raw.sendC2C(listener.id, "still here");
    expect(await raw.heartbeat()).toEqual([]);
    expect(await discarded(raw)).toBe(before + outOfScope.length);
    await until(() => got.length === 1, 3000, "the message after the junk");
    expect(got[0]?.text).toBe("still here");
  });
});

/** Malformed input: STOP `protocol error`, then the close. */
const malformed: [string, (raw: RawSession) => void][] = [
  // Type 5 (end-to-end encrypted room message) shorter than it announces.
  [
    "a type 5 message with no entry (count missing)",
    (r) => r.send(new Uint8Array([0x05, 1, 2, 3, 4, 5, 6, 7, 8, 3, 0x6f, 0x70, 0x73])),
  ],
  ["a HEARTBEAT of 3 bytes (control < 5)", (r) => r.send(new Uint8Array([0x10, 0, 0]))],
  ["a STOP of 1 byte", (r) => r.send(new Uint8Array([0x1f]))],
  ["a SERVER_STATUS of 4 bytes", (r) => r.send(new Uint8Array([0x12, 0, 0, 0]))],
  ["a direct C2C of 16 bytes (< 17)", (r) => r.send(new Uint8Array(16))],
  ["a broadcast of 1 byte", (r) => r.send(new Uint8Array([0x01]))],
  ["a stored C2C of 5 bytes (< 21)", (r) => r.send(new Uint8Array([0x02, 0, 0, 0, 0]))],
  [
    "a room message of 17 bytes (no room_len)",
    (r) => r.send(new Uint8Array([0x03, ...new Uint8Array(16)])),
  ],
  [
    "a room message whose room_len passes the end",
    (r) => r.send(new Uint8Array([0x03, ...new Uint8Array(16), 5, 0x6f, 0x70])),
  ],
  [
    "a room message with room_len 0",
    (r) => r.send(new Uint8Array([0x03, ...new Uint8Array(16), 0])),
  ],
  ["a frame of size 0", (r) => r.sendRaw(new Uint8Array([0, 0]))],
  [
    "a payload too short for a tag",
    (r) => r.sendRaw(new Uint8Array([0, 10, ...new Uint8Array(10)])),
  ],
  ["a tampered frame (one bit flipped)", (r) => r.sendRaw(flip(r.seal(c2c(0, bobId, "hi")), 9, 3))],
  [
    "a tampered tag",
    (r) => {
      const frame = r.seal(encodeControl(ControlType.HEARTBEAT));
      r.sendRaw(flip(frame, frame.length - 1));
    },
  ],
  [
    "a frame sealed with a skipped counter",
    (r) => {
      r.seal(encodeControl(ControlType.HEARTBEAT)); // counter 1 used, never sent
      r.send(encodeControl(ControlType.HEARTBEAT));
    },
  ],
];

describe("protocol errors close only that connection", () => {
  test.each(malformed)("%s", async (_what, misbehave) => {
    const raw = await c.raw(`bad-${crypto.randomUUID().slice(0, 8)}`);
    const bystander = await c.raw(`ok-${crypto.randomUUID().slice(0, 8)}`);
    const errors = c.server.stats.protocolErrors;
    misbehave(raw);
    expect(await raw.expectStop()).toEqual({ reason: "protocol error", before: [] });
    expect(raw.sock.isClosed).toBe(true);
    expect(c.server.stats.protocolErrors).toBe(errors + 1);
    expect(await bystander.heartbeat()).toEqual([]);
  });

  test("a replayed frame: the first copy is handled, the second ends the connection", async () => {
    const raw = await c.raw("replayer");
    const bob = await c.client("bob2");
    const got = inbox(bob);
    const frame = raw.seal(c2c(0, bob.id, "once"));
    raw.sendRaw(frame);
    raw.sendRaw(frame);
    expect(await raw.expectStop()).toEqual({ reason: "protocol error", before: [] });
    await bob.ping();
    expect(got.map((m) => m.text)).toEqual(["once"]);
    // Everyone else carries on.
    const other = await c.raw("after-replay");
    other.sendC2C(bob.id, "business as usual");
    await until(() => got.length === 2, 3000, "the next message");
    expect(got[1]?.text).toBe("business as usual");
  });

  test("a frame replayed from another session fails too", async () => {
    const identity = await c.enroll("twice");
    const first = await c.raw(identity);
    const frame = first.seal(encodeControl(ControlType.HEARTBEAT));
    first.sendRaw(frame);
    expect(isControl(await first.nextMessage(), ControlType.HEARTBEAT)).toBe(true);
    first.sock.destroy();
    const second = await c.raw(identity); // same ID, new keys
    second.sendRaw(frame); // c2s counter 1 under the old key
    expect((await second.expectStop()).reason).toBe("protocol error");
  });
});
