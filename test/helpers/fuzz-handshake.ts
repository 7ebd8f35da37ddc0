/**
 * Fuzz cases before authentication (test/hardening/fuzz.test.ts, stages a and b).
 *
 * Stage a sends random bytes before or instead of the response; stage b sends the
 * response mutated (random bytes of a valid length, bit flips, truncations,
 * extensions, splices with another session's response), or whole with trailing junk.
 * The rule checked (docs/PROTOCOL.md § Handshake, step 5): before the server holds
 * keys it closes silently — the challenge is the only thing a connection ever
 * receives — and a response that is not exactly right never yields CONFIG.
 */
import { expect } from "bun:test";
import type { Identity } from "../../src/client/identity.ts";
import type { RsaPublicKey } from "../../src/crypto/rsa.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { idToBytes } from "../../src/ids.ts";
import { MAX_RESPONSE_PAYLOAD } from "../../src/wire/constants.ts";
import { ControlType, decodeMessage, decodeText, encodeControl } from "../../src/wire/message.ts";
import { ascii, cat, u16 } from "./bytes.ts";
import type { FuzzCase } from "./fuzz.ts";
import type { Prng } from "./prng.ts";
import { FramedSocket } from "./raw.ts";

/** What a fuzz case needs to know about the server under test. */
export interface FuzzTarget {
  port: number;
  serverKey: RsaPublicKey;
  /** 2 + 2 + SPKI + challenge_size: all a connection may receive before it authenticates. */
  challengeFrameBytes: number;
  maxMessageSize: number;
  /** One identity per lane (so that no lane replaces another's session). */
  lanes: Identity[];
  canaryA: Identity;
  canaryB: Identity;
  /** Registered, never online: a direct message to it is stored. */
  offline: Identity;
  /** Registered, then revoked: unknown to everyone. */
  revoked: Identity;
}

/** How long to wait for the server to close (its connection_timeout is 1 s). */
export const CLOSE_WAIT_MS = 5000;

/** How the client ends a case: the server closes by itself, or after its timeout, or after our FIN. */
type Ending = "server closes" | "wait for the timeout" | "client FIN";

/** Writes `bytes` whole, a byte at a time, or in random chunks (yielding between writes). */
export async function writeSplit(
  sock: FramedSocket,
  bytes: Uint8Array,
  split: string,
  rng: Prng,
): Promise<void> {
  if (split === "whole" || bytes.length < 2) {
    if (bytes.length > 0) sock.write(bytes);
    return;
  }
  const cuts =
    split === "bytes"
      ? Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)
      : [...new Set(Array.from({ length: rng.int(1, 24) }, () => rng.int(1, bytes.length - 1)))];
  cuts.sort((x, y) => x - y);
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    sock.write(bytes.subarray(at, cut));
    at = cut;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A way to split `length` bytes: a byte at a time only when short enough to stay cheap. */
export function pickSplit(rng: Prng, length: number): string {
  const split = rng.pick(["whole", "whole", "bytes", "chunks"]);
  return split === "bytes" && length > 128 ? "chunks" : split;
}

/** True when the server can refuse `bytes` as they stand (a whole frame, or a bad size). */
function refusedOnArrival(bytes: Uint8Array): boolean {
  if (bytes.length < 2) return false;
  const size = ((bytes[0] as number) << 8) | (bytes[1] as number);
  return size === 0 || size > MAX_RESPONSE_PAYLOAD || bytes.length >= 2 + size;
}

function ending(bytes: Uint8Array, rng: Prng): Ending {
  if (refusedOnArrival(bytes)) return "server closes";
  return rng.chance(0.3) ? "wait for the timeout" : "client FIN";
}

/** Waits for the close; checks that nothing but the challenge ever arrived. */
async function expectSilentClose(sock: FramedSocket, t: FuzzTarget, how: Ending, read: boolean) {
  if (how === "client FIN") sock.shutdown();
  await sock.waitClosed(CLOSE_WAIT_MS);
  if (read) {
    expect(sock.framesReceived).toBe(1);
    expect(sock.bytesReceived).toBe(t.challengeFrameBytes);
  } else {
    // Written before the challenge was read: a reset may drop the challenge itself.
    expect(sock.framesReceived).toBeLessThanOrEqual(1);
    expect(sock.bytesReceived).toBeLessThanOrEqual(t.challengeFrameBytes);
  }
}

/** Sizes at the edges of what the server reads before authentication. */
const EDGE_SIZES = [0, 1, 2, 16, 17, 543, 544, 545, 671, 672, 673, 799, 800, 801, 1055, 1056, 1057];
/** Valid response lengths for a 2048-bit server key (client keys of 2048, 3072, 4096 bits). */
const RESPONSE_SIZES = [544, 672, 800];
const PROBES = [
  "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
  "SSH-2.0-OpenSSH_9.6\r\n",
  "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
  "backbone/1\n",
  '{"hello":"server"}',
  "\x00\x05hello",
  "\x02\x20\x00",
];

function frame(size: number, body: Uint8Array): Uint8Array {
  return cat(u16(size), body);
}

/** Random input for stage a, and what it is. */
function preAuthInput(rng: Prng): { bytes: Uint8Array; what: string } {
  switch (rng.int(0, 8)) {
    case 0: {
      const n = rng.length(3000);
      return { bytes: rng.bytes(n), what: `${n} random bytes` };
    }
    case 1: {
      const size = rng.chance(0.5) ? rng.pick(EDGE_SIZES) : rng.int(1, 65535);
      const have = rng.chance(0.7) ? Math.min(size, 70_000) : rng.int(0, size);
      return { bytes: frame(size, rng.bytes(have)), what: `frame size ${size} with ${have} bytes` };
    }
    case 2:
      return { bytes: rng.bytes(1), what: "one header byte" };
    case 3: {
      const [x, y] = [rng.int(1, 1056), rng.int(1, 1056)];
      return {
        bytes: cat(frame(x, rng.bytes(x)), frame(y, rng.bytes(y))),
        what: `two frames ${x}, ${y}`,
      };
    }
    case 4: {
      const value = rng.pick([0x00, 0xff, 0x04]);
      const n = rng.int(1, 4000);
      return { bytes: new Uint8Array(n).fill(value), what: `${n} × 0x${value.toString(16)}` };
    }
    case 5: {
      const probe = rng.pick(PROBES);
      return { bytes: ascii(probe), what: `probe ${JSON.stringify(probe)}` };
    }
    case 6: {
      const size = rng.pick(RESPONSE_SIZES);
      return { bytes: frame(size, rng.bytes(size)), what: `random ${size}-byte response` };
    }
    case 7:
      return { bytes: frame(65535, rng.bytes(65535)), what: "frame of 65535" };
    default: {
      const size = rng.int(1, 1056);
      return { bytes: frame(size, new Uint8Array(0)), what: `header ${size} alone` };
    }
  }
}

/** Stage a: random bytes before or instead of the response. */
export function preAuthCase(t: FuzzTarget, rng: Prng): FuzzCase {
  const { bytes, what } = preAuthInput(rng);
  const read = rng.chance(0.7); // read the challenge first, or write at once
  const split = pickSplit(rng, bytes.length);
  const how = ending(bytes, rng);
  return {
    what: `${what}; ${read ? "after" : "before"} the challenge; split ${split}; ${how}`,
    async run() {
      await using sock = await FramedSocket.dial(t.port);
      if (read) await sock.nextFrame();
      await writeSplit(sock, bytes, split, rng);
      await expectSilentClose(sock, t, how, read);
    },
  };
}

/** A genuine response to another connection's challenge (that connection is dropped). */
async function otherResponse(t: FuzzTarget, lane: Identity): Promise<Uint8Array> {
  await using sock = await FramedSocket.dial(t.port);
  const hs = new ClientHandshake({
    id: idToBytes(lane.id),
    key: lane.key,
    pinnedServerKey: t.serverKey,
  });
  return hs.respond(await sock.nextFrame());
}

function flipBits(bytes: Uint8Array, rng: Prng, n: number): { out: Uint8Array; at: number[] } {
  const out = bytes.slice();
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const bit = rng.int(0, bytes.length * 8 - 1);
    out[bit >>> 3] = (out[bit >>> 3] as number) ^ (0x80 >>> (bit & 7));
    at.push(bit);
  }
  return { out, at };
}

const MUTATIONS = ["random", "flip", "truncate", "cut", "extend", "splice", "valid", "trailing"];

/**
 * Stage b: the response, mutated. Mutations of a real response close silently; the
 * untouched response (split anyhow) yields CONFIG and a working session; junk after it
 * is read as the first encrypted frame: CONFIG and STOP `protocol error` once it is
 * whole. An incomplete first frame is awaited (it might be SESSION, docs/PROTOCOL.md
 * § SESSION): no CONFIG before it is whole, a silent close when the client goes.
 */
export function responseCase(t: FuzzTarget, lane: Identity, rng: Prng): FuzzCase {
  const mutation = rng.pick(MUTATIONS);
  const c: FuzzCase = {
    what: `response ${mutation}`,
    async run() {
      await using sock = await FramedSocket.dial(t.port);
      const hs = new ClientHandshake({
        id: idToBytes(lane.id),
        key: lane.key,
        pinnedServerKey: t.serverKey,
      });
      const real = await hs.respond(await sock.nextFrame());
      const n = real.length;
      let bytes: Uint8Array;
      let genuine = false;
      let trailing: "frame" | "size 0" | "incomplete" | null = null;
      if (mutation === "random") {
        const size = rng.pick(RESPONSE_SIZES);
        bytes = frame(size, rng.bytes(size));
        c.what += ` ${size}`;
      } else if (mutation === "flip") {
        const { out, at } = flipBits(real, rng, rng.int(1, 8));
        bytes = frame(n, out);
        c.what += ` bits ${at.join(",")}`;
      } else if (mutation === "truncate") {
        const keep = rng.int(0, n - 1);
        bytes = frame(keep, real.subarray(0, keep));
        c.what += ` to ${keep}`;
      } else if (mutation === "cut") {
        const keep = rng.int(0, n - 1);
        bytes = frame(n, real.subarray(0, keep)); // the header promises more than comes
        c.what += ` after ${keep} of ${n}`;
      } else if (mutation === "extend") {
        const more = rng.int(1, 600);
        bytes = frame(n + more, cat(real, rng.bytes(more)));
        c.what += ` by ${more}`;
      } else if (mutation === "splice") {
        const other = await otherResponse(t, lane);
        const at = rng.pick([0, 256, rng.int(1, n - 1)]);
        const spliced = rng.chance(0.5)
          ? cat(real.subarray(0, at), other.subarray(at))
          : cat(other.subarray(0, at), real.subarray(at));
        genuine = Buffer.compare(spliced, real) === 0;
        bytes = frame(n, spliced);
        c.what += ` at ${at}`;
      } else {
        genuine = true;
        bytes = frame(n, real);
        if (mutation === "trailing") {
          trailing = rng.pick(["frame", "size 0", "incomplete"] as const);
          const size = rng.int(1, 1000);
          const junk =
            trailing === "frame"
              ? frame(size, rng.bytes(size))
              : trailing === "size 0"
                ? u16(0)
                : frame(size, rng.bytes(rng.int(0, size - 1))).subarray(0, rng.int(1, size + 1));
          bytes = cat(bytes, junk);
          c.what += ` + ${trailing} (${junk.length} bytes)`;
        }
      }
      const split = pickSplit(rng, bytes.length);
      c.what += `; split ${split}`;
      await writeSplit(sock, bytes, split, rng);
      if (!genuine || trailing === "incomplete") {
        await expectSilentClose(sock, t, ending(bytes, rng), true);
        return;
      }
      // The genuine response: CONFIG, whatever the split.
      const { session } = hs.finish(await sock.nextFrame());
      if (trailing === null) {
        sock.write(session.sealer.sealFrame(encodeControl(ControlType.HEARTBEAT)));
        const answer = decodeMessage(session.opener.open(await sock.nextFrame()));
        expect(answer).toMatchObject({ format: 1, type: ControlType.HEARTBEAT });
        sock.shutdown();
        await sock.waitClosed(CLOSE_WAIT_MS);
        expect(sock.buffered).toBe(0);
        return;
      }
      const stop = decodeMessage(session.opener.open(await sock.nextFrame()));
      expect(stop.format === 1 && stop.type === ControlType.STOP).toBe(true);
      expect(stop.format === 1 && decodeText(stop.body)).toBe("protocol error");
      await sock.waitClosed(CLOSE_WAIT_MS);
      expect(sock.buffered).toBe(0);
    },
  };
  return c;
}
