/**
 * Fuzz cases after authentication (test/hardening/fuzz.test.ts, stages c and d).
 *
 * Stage c writes raw frames into a logged-in session: genuine sealed frames split at
 * any byte, then maybe junk (sizes 0, 1…16, 65535, random payloads, a tampered
 * frame, a cut header or body). Frames before the junk are handled; whole junk ends
 * the session with STOP `protocol error`; a cut frame leaves it waiting.
 *
 * Stage d sends genuine sealed frames whose plaintext is garbage (fuzz-messages.ts),
 * one message at a time, each followed by a HEARTBEAT barrier, and checks the answer
 * against the oracle written from the protocol.
 */
import { expect } from "bun:test";
import type { Identity } from "../../src/client/identity.ts";
import {
  C2CType,
  ControlType,
  decodeJson,
  decodeText,
  encodeControl,
  Format,
  type Message,
} from "../../src/wire/message.ts";
import { cat, u16 } from "./bytes.ts";
import type { FuzzCase } from "./fuzz.ts";
import { CLOSE_WAIT_MS, type FuzzTarget, pickSplit, writeSplit } from "./fuzz-handshake.ts";
import { type Expect, expectFor, garbageMessage } from "./fuzz-messages.ts";
import type { Prng } from "./prng.ts";
import { c2c, RawClosedError, RawSession } from "./raw.ts";

/** The next message for this session itself: broadcasts from other lanes are skipped. */
async function nextOwn(raw: RawSession): Promise<Message> {
  for (;;) {
    const m = await raw.nextMessage();
    if (m.format === Format.C2C && m.type === C2CType.BROADCAST) continue;
    return m;
  }
}

/** Reads STOP `protocol error` (nothing else first), then the close. */
async function expectProtocolError(raw: RawSession): Promise<void> {
  const m = await nextOwn(raw);
  expect(m.format === Format.CONTROL && m.type === ControlType.STOP).toBe(true);
  expect(m.format === Format.CONTROL && decodeText(m.body)).toBe("protocol error");
  await raw.sock.waitClosed(CLOSE_WAIT_MS);
}

/** Waits for the close (after our FIN if `fin`); checks that nothing more arrived. */
async function expectQuietEnd(raw: RawSession, fin: boolean): Promise<void> {
  if (fin) raw.sock.shutdown();
  await raw.sock.waitClosed(CLOSE_WAIT_MS);
  const left: Message[] = [];
  try {
    for (;;) left.push(await nextOwn(raw));
  } catch (err) {
    if (!(err instanceof RawClosedError)) throw err;
  }
  expect(left).toEqual([]);
}

const JUNK = [
  "none",
  "size 0",
  "short",
  "random",
  "max",
  "tampered",
  "cut header",
  "cut body",
] as const;

/** Stage c: raw frames after authentication. */
export function rawFrameCase(t: FuzzTarget, lane: Identity, rng: Prng): FuzzCase {
  const junk = rng.pick(JUNK);
  const c: FuzzCase = {
    what: `junk ${junk}`,
    async run() {
      await using raw = await RawSession.login(t.port, lane);
      // Genuine frames first: HEARTBEATs, C2C to a canary, and (unless whole junk follows,
      // see below) C2C to ourselves, which comes back.
      const complete = junk !== "none" && !junk.startsWith("cut");
      const expected: Uint8Array[] = [];
      const parts: Uint8Array[] = [];
      for (let i = rng.int(0, 4); i > 0; i--) {
        const kind = rng.int(0, complete ? 1 : 2);
        const data = rng.bytes(rng.length(rng.chance(0.9) ? 100 : t.maxMessageSize));
        const m =
          kind === 0
            ? encodeControl(ControlType.HEARTBEAT)
            : c2c(0, kind === 1 ? t.canaryB.id : raw.id, data);
        parts.push(raw.seal(m));
        if (kind !== 1) expected.push(m);
      }
      let tail: Uint8Array;
      const size = rng.int(17, 2000);
      switch (junk) {
        case "none":
          tail = new Uint8Array(0);
          break;
        case "size 0":
          tail = u16(0);
          break;
        case "short": {
          const n = rng.int(1, 16);
          tail = cat(u16(n), rng.bytes(n));
          break;
        }
        case "random":
          tail = cat(u16(size), rng.bytes(size));
          break;
        case "max":
          tail = cat(u16(65535), rng.bytes(65535));
          break;
        case "tampered": {
          const frame = raw.seal(encodeControl(ControlType.HEARTBEAT, rng.bytes(rng.int(0, 40))));
          const at = rng.int(0, frame.length - 1);
          // A flipped size byte changes where the frame ends: zeros then complete it.
          frame[at] = (frame[at] as number) ^ (1 << rng.int(0, 7));
          tail = at < 2 ? cat(frame, new Uint8Array(65_537)) : frame;
          c.what += ` at byte ${at}`;
          break;
        }
        case "cut header":
          tail = rng.bytes(1);
          break;
        default:
          tail = cat(u16(size), rng.bytes(rng.int(0, size - 1)));
      }
      // Genuine frames after whole junk are never handled.
      const after = complete ? [raw.seal(encodeControl(ControlType.HEARTBEAT))] : [];
      const bytes = cat(...parts, tail, ...after);
      const split = pickSplit(rng, bytes.length);
      c.what += `; ${expected.length} genuine frames first; split ${split}`;
      await writeSplit(raw.sock, bytes, split, rng);
      if (complete) {
        // Weakness (reported): replies queued in the same tick as the STOP are dropped
        // (Outbox.takeUndelivered keeps only live C2C), so only a prefix of the HEARTBEAT
        // answers may arrive before STOP `protocol error`. (A C2C to ourselves would be
        // stored for the next login instead, hence none is sent here.)
        let m = await nextOwn(raw);
        while (!(m.format === Format.CONTROL && m.type === ControlType.STOP)) {
          expect(m).toMatchObject({ format: 1, type: ControlType.HEARTBEAT });
          expect(expected.shift()).toBeDefined();
          m = await nextOwn(raw);
        }
        expect(decodeText(m.body)).toBe("protocol error");
        await raw.sock.waitClosed(CLOSE_WAIT_MS);
        return;
      }
      for (const m of expected) {
        const got = await nextOwn(raw);
        if (m[0] === 0x10) expect(got).toMatchObject({ format: 1, type: ControlType.HEARTBEAT });
        else
          expect(got).toEqual({
            format: 0,
            type: 0,
            address: m.subarray(1, 17),
            queuedAt: 0,
            data: m.subarray(17),
          });
      }
      if (junk === "none") await expectBarrier(raw, []);
      await expectQuietEnd(raw, true);
    },
  };
  return c;
}

/**
 * Sends a HEARTBEAT and reads up to its answer; checks the messages before it against
 * `before` (an earlier HEARTBEAT's answer counts among them).
 */
async function expectBarrier(raw: RawSession, before: Expect[]): Promise<void> {
  raw.sendControl(ControlType.HEARTBEAT);
  const beats = before.filter((e) => e.kind === "reply" && e.type === ControlType.HEARTBEAT).length;
  const got: Message[] = [];
  for (let seen = 0; seen <= beats; ) {
    const m = await nextOwn(raw);
    if (m.format === Format.CONTROL && m.type === ControlType.HEARTBEAT) seen++;
    if (seen <= beats) got.push(m);
  }
  expect(got.length).toBe(before.length);
  for (const [i, e] of before.entries()) checkOne(got[i] as Message, e, raw);
}

function checkOne(m: Message, e: Expect, raw: RawSession): void {
  if (e.kind === "self") {
    expect(m).toMatchObject({ format: 0, type: 0, data: e.data });
    expect(m.format === Format.C2C && Buffer.from(m.address).toString("hex")).toBe(
      raw.id.replaceAll("-", ""),
    );
    return;
  }
  if (m.format !== Format.CONTROL)
    throw new Error(`expected ${e.kind}, got format ${m.format} type ${m.type}`);
  if (e.kind === "notice") {
    expect(m.type).toBe(ControlType.NOTICE);
    expect(decodeJson(m.body)).toMatchObject({ address: e.address, status: e.status });
  } else if (e.kind === "reply") {
    expect(m.type as number).toBe(e.type);
    if (e.type === ControlType.SERVER_STATUS)
      expect(decodeJson(m.body)).toMatchObject({ protocol: "backbone/1" });
    if (e.body !== undefined) expect(decodeJson(m.body)).toEqual(e.body as Record<string, unknown>);
  }
}

/**
 * Stage d: sealed garbage. The first message of case i < 256 has byte 0 = i, so that
 * every run tries every byte 0; the others are random, biased to the defined types.
 */
export function garbageCase(t: FuzzTarget, lane: Identity, rng: Prng, index: number): FuzzCase {
  const count = rng.int(1, 8);
  const sweep = index < 256;
  const c: FuzzCase = {
    what: `${count} messages`,
    async run() {
      await using raw = await RawSession.login(t.port, lane);
      for (let k = 0; k < count; k++) {
        const m = garbageMessage(rng, t, lane, sweep && k === 0 ? index : undefined);
        const e = expectFor(m, t, lane);
        c.what += `; #${k} 0x${(m[0] as number).toString(16).padStart(2, "0")} × ${m.length} → ${e.kind}`;
        if (e.kind === "notice") c.what += ` ${e.status}`;
        raw.send(m);
        if (e.kind === "malformed") return await expectProtocolError(raw);
        if (e.kind === "closes") return await expectQuietEnd(raw, false);
        await expectBarrier(raw, e.kind === "nothing" ? [] : [e]);
      }
      await expectQuietEnd(raw, true); // our FIN: the server closes too, and says nothing more
    },
  };
  return c;
}
