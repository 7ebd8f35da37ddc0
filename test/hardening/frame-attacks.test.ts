/**
 * Attacks with frames after login (docs/PROTOCOL.md § Encrypted frames, § Messages),
 * extending test/integration/scoping.test.ts: bit flips at every part of a frame,
 * delayed and reflected replays, reordering, truncated tags, frames cut by a close,
 * the full sweep of reserved and S2S byte-0 values, C2C over the size limit, forged
 * senders, frames sent after the server's STOP, and the counter limit (through a test
 * seam: 2^32 frames cannot be sent).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Opener, Sealer } from "../../src/crypto/channel.ts";
import { idKey, idToBytes } from "../../src/ids.ts";
import { COUNTER_LIMIT, MAX_C2C_DATA, MAX_MESSAGE_DATA } from "../../src/wire/constants.ts";
import {
  ControlType,
  decodeMessage,
  decodeText,
  encodeControl,
  encodeStored,
  Format,
} from "../../src/wire/message.ts";
import { cat, u16 } from "../helpers/bytes.ts";
import { type Cluster, inbox, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import {
  BROADCAST_ADDRESS,
  c2c,
  isControl,
  jsonBody,
  type RawSession,
  text,
} from "../helpers/raw.ts";

const log = new MemoryLog();
let c: Cluster;
const fresh = (prefix: string) => c.raw(`${prefix}-${crypto.randomUUID().slice(0, 8)}`);
const discarded = async (raw: RawSession) =>
  (await raw.serverStatus()).messages_discarded as number;

beforeAll(async () => {
  c = await startCluster({}, log);
});
afterAll(async () => {
  await c[Symbol.asyncDispose]();
  expect(log.entries.filter((e) => e.level === "error" || e.event === "socket error")).toEqual([]);
});

/** Expects STOP `protocol error` and the close, and that `bob` got nothing from `raw`. */
async function expectRefused(raw: RawSession, bob: RawSession): Promise<void> {
  expect(await raw.expectStop()).toEqual({ reason: "protocol error", before: [] });
  expect(await bob.heartbeat()).toEqual([]);
}

describe("tampered, replayed, reordered, truncated frames", () => {
  test("a bit flipped in the size, the ciphertext or the tag: STOP, nothing delivered", async () => {
    const bob = await fresh("bob");
    const frameLength = 2 + 17 + 5 + 16;
    const positions = [0, 1, 2, 10, 2 + 21, frameLength - 16, frameLength - 8, frameLength - 1];
    for (const at of positions) {
      for (const bit of [0, 7]) {
        const raw = await fresh("flip");
        expect(await raw.heartbeat()).toEqual([]); // frames before the bad one are handled
        const frame = raw.seal(c2c(0, bob.id, "hello"));
        frame[at] = (frame[at] as number) ^ (1 << bit);
        // A flipped size moves the frame's end: zeros complete whatever size it now says.
        raw.sendRaw(at < 2 ? cat(frame, new Uint8Array(65_537)) : frame);
        await expectRefused(raw, bob);
      }
    }
  });

  test("a frame replayed after later ones, and a server frame reflected back: STOP", async () => {
    const bob = await fresh("bob");
    const raw = await fresh("replay");
    const first = raw.seal(c2c(0, bob.id, "one"));
    raw.sendRaw(first);
    raw.sendC2C(bob.id, "two");
    expect(await raw.heartbeat()).toEqual([]);
    expect((await bob.heartbeat()).map(text)).toEqual(["one", "two"]);
    raw.sendRaw(first); // handled once already, at an earlier counter
    await expectRefused(raw, bob);
    // Reflection: the server's own sealed frames, sent back, open under no c2s key.
    const mirror = await fresh("mirror");
    mirror.sendControl(ControlType.HEARTBEAT);
    const answer = await mirror.sock.nextFrame();
    expect(isControl(decodeMessage(mirror.opener.open(answer)), ControlType.HEARTBEAT)).toBe(true);
    mirror.sendRaw(cat(u16(answer.length), answer));
    await expectRefused(mirror, bob);
  });

  test("two frames swapped: the first to arrive fails, neither is delivered", async () => {
    const bob = await fresh("bob");
    const raw = await fresh("swap");
    const one = raw.seal(c2c(0, bob.id, "one"));
    const two = raw.seal(c2c(0, bob.id, "two"));
    raw.sendRaw(cat(two, one));
    await expectRefused(raw, bob);
  });

  test("a tag cut by 1, 8, 15 or 16 bytes, or a bare tag: STOP", async () => {
    const bob = await fresh("bob");
    for (const cut of [1, 8, 15, 16, "bare"] as const) {
      const raw = await fresh("tag");
      const payload = raw.seal(c2c(0, bob.id, "truncated")).subarray(2);
      const short =
        cut === "bare"
          ? payload.subarray(payload.length - 16)
          : payload.subarray(0, payload.length - cut);
      raw.sendRaw(cat(u16(short.length), short));
      await expectRefused(raw, bob);
    }
  });

  test("a frame cut short by the close: what came before is delivered, no error, no session left", async () => {
    const bob = await c.client(`bob-${crypto.randomUUID().slice(0, 8)}`);
    const got = inbox(bob);
    for (const [i, cut] of [1, 2, 30, 40].entries()) {
      const raw = await fresh("cut");
      const errors = c.server.stats.protocolErrors;
      const whole = raw.seal(c2c(0, bob.id, `whole ${cut}`));
      const next = raw.seal(c2c(0, bob.id, `cut ${cut}`));
      raw.sendRaw(cat(whole, next.subarray(0, cut)));
      await until(() => got.at(-1)?.text === `whole ${cut}`, 3000, "the whole frame");
      // A FIN (end) or a reset (destroy) in the middle of a frame.
      if (i % 2 === 0) raw.sock.end();
      else raw.sock.destroy();
      await raw.sock.closed;
      await until(() => !c.server.router.online.has(idKey(idToBytes(raw.id))), 3000, "logoff");
      expect(c.server.stats.protocolErrors).toBe(errors);
    }
    await bob.ping();
    expect(got.map((m) => m.text)).toEqual(["whole 1", "whole 2", "whole 30", "whole 40"]);
  });
});

describe("scoping sweep", () => {
  test("every reserved and S2S byte 0, at its shortest and longer: discarded, counted, kept", async () => {
    const raw = await fresh("sweep");
    const bob = await fresh("bob");
    const values = [
      ...Array.from({ length: 10 }, (_, i) => 0x06 + i), // 0x03, 0x04: room messages; 0x05: E2E room message
      0x16, // SESSION after the first frame
      ...Array.from({ length: 5 }, (_, i) => 0x1a + i), // 0x15 ACK, 0x17 ROOM, 0x18 KEYS, 0x19 BATCH (test/integration/batch.test.ts)

      ...Array.from({ length: 0xe0 }, (_, i) => 0x20 + i),
    ];
    const before = await discarded(raw);
    for (const b0 of values) {
      raw.send(new Uint8Array([b0]));
      raw.send(cat(new Uint8Array([b0]), idToBytes(bob.id), new TextEncoder().encode("x")));
    }
    // And the defined kinds a client may not send, at their header length.
    raw.send(encodeControl(ControlType.CONFIG));
    raw.send(encodeControl(ControlType.NOTICE));
    raw.send(encodeStored(idToBytes(bob.id), 0, new Uint8Array(0)));
    raw.send(c2c(0x01, bob.id, ""));
    expect(await raw.heartbeat()).toEqual([]);
    expect(await discarded(raw)).toBe(before + values.length * 2 + 4);
    expect(await bob.heartbeat()).toEqual([]);
  });
});

describe("C2C size limit and true senders", () => {
  test("at the default limit: 65498 bytes delivered; 65499..65502 refused too_large before any routing", async () => {
    const raw = await fresh("big");
    const bob = await fresh("bob");
    const offline = await c.enroll(`offline-${crypto.randomUUID().slice(0, 8)}`);
    const sizes = [MAX_C2C_DATA + 1, MAX_MESSAGE_DATA - 17];
    for (const n of sizes) {
      raw.sendC2C(bob.id, new Uint8Array(n)); // online recipient
      raw.sendC2C(offline.id, new Uint8Array(n)); // offline: nothing stored
      raw.sendC2C(crypto.randomUUID(), new Uint8Array(n)); // unknown: too_large comes first
      raw.sendC2C(BROADCAST_ADDRESS, new Uint8Array(n)); // direct to ff…ff: a broadcast
    }
    raw.sendC2C(bob.id, new Uint8Array(MAX_C2C_DATA).fill(7));
    const notices = (await raw.heartbeat()).map((m) => jsonBody(m).status);
    expect(notices).toEqual(
      sizes.flatMap(() => ["too_large", "too_large", "too_large", "too_large"]),
    );
    const m = await bob.nextMessage();
    expect(m.format === Format.C2C && m.data.length).toBe(MAX_C2C_DATA);
    expect(await c.store.pendingCount()).toBe(0);
  });

  test("whatever the raw client writes, recipients see the true sender; forged forms are discarded", async () => {
    const [mallory, bob, victim] = [
      await fresh("mallory"),
      await fresh("bob"),
      await fresh("victim"),
    ];
    const offline = await c.enroll(`offline-${crypto.randomUUID().slice(0, 8)}`);
    const before = await discarded(mallory);
    const forged = cat(
      new Uint8Array([0x00]),
      idToBytes(victim.id),
      new TextEncoder().encode("hi"),
    );
    mallory.sendC2C(bob.id, forged); // a header hidden in the data stays data
    mallory.sendC2C(victim.id, "to the victim, naming it"); // its ID after byte 0: the recipient
    mallory.sendC2C(BROADCAST_ADDRESS, "to all", 0x01);
    mallory.sendC2C(BROADCAST_ADDRESS, "to all, as direct", 0x00);
    mallory.sendC2C(victim.id, "broadcast naming the victim", 0x01); // out of scope
    mallory.send(encodeStored(idToBytes(victim.id), 1, new TextEncoder().encode("stored forgery")));
    mallory.sendC2C(offline.id, "for later");
    expect((await mallory.heartbeat()).map((m) => jsonBody(m).status)).toEqual(["queued"]);
    expect(await discarded(mallory)).toBe(before + 2);
    /** [type, sender is mallory, data] of each C2C before a barrier. */
    const seen = async (r: RawSession) =>
      (await r.heartbeat()).map((m) =>
        m.format === Format.C2C ? [m.type, idEquals(m.address, mallory.id), text(m)] : m,
      );
    expect(await seen(bob)).toEqual([
      [0, true, new TextDecoder().decode(forged)],
      [1, true, "to all"],
      [1, true, "to all, as direct"],
    ]);
    expect(await seen(victim)).toEqual([
      [0, true, "to the victim, naming it"],
      [1, true, "to all"],
      [1, true, "to all, as direct"],
    ]);
    // Stored delivery names the true sender too, and queued_at is the server's clock.
    const later = await c.raw(offline);
    const stored = await later.nextMessage();
    expect(
      stored.format === Format.C2C && [stored.type, idEquals(stored.address, mallory.id)],
    ).toEqual([2, true]);
    expect(
      stored.format === Format.C2C && Math.abs(stored.queuedAt - Date.now() / 1000),
    ).toBeLessThan(600);
  });
});

/** True when 16 address bytes are the ID `id`. */
function idEquals(address: Uint8Array, id: string): boolean {
  return Buffer.from(address).toString("hex") === id.replaceAll("-", "");
}

describe("after its STOP the server acts on nothing more from that connection", () => {
  /** A raw client with a backlog it does not read, so the server's STOP waits to be written. */
  async function stalled() {
    const sender = await c.client(`filler-${crypto.randomUUID().slice(0, 8)}`);
    const raw = await fresh("stalled");
    raw.sock.pause();
    const conn = () => c.server.router.online.get(idKey(idToBytes(raw.id)));
    for (let i = 0; i < 400 && (conn()?.outbox?.pendingBytes ?? 0) < 256 * 1024; i++) {
      for (let k = 0; k < 8; k++) sender.send(raw.id, new Uint8Array(30_000));
      await sender.ping();
    }
    const server = conn();
    expect(server?.outbox?.pendingBytes ?? 0).toBeGreaterThan(0);
    return { raw, server: server as NonNullable<typeof server> };
  }

  test.each(["a malformed message", "a frame that fails to open", "revocation"])(
    "after %s",
    async (what) => {
      const bob = await c.client(`bob-${crypto.randomUUID().slice(0, 8)}`);
      const got = inbox(bob);
      const { raw, server } = await stalled();
      if (what === "a malformed message") raw.send(new Uint8Array([0x10, 0]));
      else if (what === "revocation") await c.server.revoke(raw.id);
      else raw.sendRaw(raw.seal(c2c(0, bob.id, "x")).map((b, i) => (i === 5 ? b ^ 1 : b)));
      await until(() => server.phase !== "open", 3000, "the server to stop it");
      // The opener moved past the bad frame's counter: a frame at the next one would open.
      raw.sendC2C(bob.id, "after the STOP");
      raw.sendControl(ControlType.HEARTBEAT);
      // Read again: the backlog and the STOP drain, then the server closes. Anything it
      // had routed from us would have reached bob before his ping's answer.
      raw.sock.resume();
      const { match } = await raw.readUntil((m) => isControl(m, ControlType.STOP));
      await raw.sock.waitClosed();
      await bob.ping();
      expect(got.filter((m) => m.from === raw.id)).toEqual([]);
      const reason = what === "revocation" ? "revoked" : "protocol error";
      expect(isControl(match, ControlType.STOP) && decodeText(match.body)).toBe(reason);
    },
  );
});

describe("the counter limit (a test seam: the counters the server reads are shifted)", () => {
  /** Shifts `counter` as read on every Opener or Sealer; the nonces used stay real. */
  function shift(cls: typeof Opener | typeof Sealer, by: number): Disposable {
    const base = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(cls.prototype), "counter");
    const get = base?.get as () => number;
    Object.defineProperty(cls.prototype, "counter", {
      configurable: true,
      get(this: Opener) {
        return get.call(this) + by;
      },
    });
    return { [Symbol.dispose]: () => delete (cls.prototype as { counter?: number }).counter };
  }

  test("c2s: having opened the client's frame at 2^32 − 1 the server sends STOP rekey required", async () => {
    await using lone = await startCluster();
    const identity = await lone.enroll("counting");
    const raw = await lone.raw(identity);
    {
      using _ = shift(Opener, COUNTER_LIMIT - 3); // c2s 1 reads as 2^32 − 2 once opened
      expect(await raw.heartbeat()).toEqual([]); // c2s 1: handled
      raw.sendControl(ControlType.HEARTBEAT); // c2s 2, read as 2^32 − 1: the last
      expect(await raw.expectStop()).toEqual({ reason: "rekey required", before: [] });
    }
    const again = await lone.raw(identity); // a new handshake: new keys, counters from 0
    expect(await again.heartbeat()).toEqual([]);
  });

  test("s2c: the server's last counter carries STOP rekey required, nothing else", async () => {
    await using lone = await startCluster();
    const raw = await lone.raw("counting");
    {
      using _ = shift(Sealer, COUNTER_LIMIT - 4); // after CONFIG (s2c 0) the next reads as 2^32 − 3
      expect(await raw.heartbeat()).toEqual([]); // answered at "2^32 − 3"
      expect(await raw.heartbeat()).toEqual([]); // at "2^32 − 2"
      raw.sendControl(ControlType.HEARTBEAT); // no room: only STOP may take "2^32 − 1"
      const stop = await raw.nextMessage();
      expect(isControl(stop, ControlType.STOP) && decodeText(stop.body)).toBe("rekey required");
      await raw.sock.waitClosed();
    }
  });
});
