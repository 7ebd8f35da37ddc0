/**
 * Attacks on authentication, each against a real server on loopback (docs/PROTOCOL.md
 * § Handshake step 5, § Security properties): unknown ID, wrong key, revoked key — all
 * one indistinguishable STOP; a recorded response replayed on a new connection; a man
 * in the middle with its own key (refused by pinning, and by the server when the
 * client is tricked into pinning it); a signature over another challenge or for
 * another ID; a low-order X25519 key inside a genuine OAEP block. The server's RSA
 * work is counted (OAEP decryptions, PSS verifications) to show where each attempt
 * stops. Timing is never asserted.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "../../src/client/client.ts";
import { Opener, Sealer } from "../../src/crypto/channel.ts";
import { concat, x25519Public, x25519Secret, x25519Shared } from "../../src/crypto/primitives.ts";
import { generateRsaKeyPair, RsaPrivateKey, RsaPublicKey } from "../../src/crypto/rsa.ts";
import { HandshakeError, PinningError } from "../../src/errors.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { authMessage, deriveKeys, transcriptHash } from "../../src/handshake/schedule.ts";
import { idToBytes, newClientId } from "../../src/ids.ts";
import { decodeChallenge } from "../../src/wire/handshake.ts";
import { ControlType, decodeMessage, decodeText, type Message } from "../../src/wire/message.ts";
import { type Cluster, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import { expectError, rejected, thrown } from "../helpers/errors.ts";
import { Mitm } from "../helpers/mitm.ts";
import { Prng } from "../helpers/prng.ts";
import { FramedSocket, RawSession } from "../helpers/raw.ts";
import { LOW_ORDER_POINTS } from "../helpers/x25519.ts";

const rng = new Prng(110);
const log = new MemoryLog();
let c: Cluster;
let other2048: RsaPrivateKey;
let other3072: RsaPrivateKey;

beforeAll(async () => {
  c = await startCluster({ handshake_rate: 10_000, handshake_burst: 10_000 }, log);
  const [a, b] = await Promise.all([generateRsaKeyPair(2048), generateRsaKeyPair(3072)]);
  other2048 = await RsaPrivateKey.fromPkcs8(a.privatePkcs8);
  other3072 = await RsaPrivateKey.fromPkcs8(b.privatePkcs8);
});
afterAll(async () => {
  await c[Symbol.asyncDispose]();
});

/** Counts the server's OAEP decryptions and every RSA-PSS verification in this process. */
function countRsa(): { decrypts: number; verifies: number } & Disposable {
  const key = c.server.key;
  const decrypt = key.decrypt;
  const verify = RsaPublicKey.prototype.verify;
  const counts = {
    decrypts: 0,
    verifies: 0,
    [Symbol.dispose]() {
      key.decrypt = decrypt;
      RsaPublicKey.prototype.verify = verify;
    },
  };
  key.decrypt = function (this: RsaPrivateKey, block: Uint8Array) {
    counts.decrypts++;
    return decrypt.call(this, block);
  };
  RsaPublicKey.prototype.verify = function (this: RsaPublicKey, data, signature) {
    counts.verifies++;
    return verify.call(this, data, signature);
  };
  return counts;
}

/** The last "auth failed" the server logged. */
const lastAuthFailure = () => log.find("auth failed").at(-1)?.fields;

/**
 * Dials, reads the challenge, sends `respond(challenge)`; returns the frames that came
 * back before the server closed (or, with `accepted`, the first one: CONFIG leaves it open).
 */
async function attempt(respond: (challenge: Uint8Array) => Promise<Uint8Array>, accepted = false) {
  await using sock = await FramedSocket.dial(c.server.port);
  const challenge = await sock.nextFrame();
  sock.writeFrame(await respond(challenge));
  if (accepted) return { challenge, frames: [await sock.nextFrame()] };
  await sock.waitClosed();
  const frames: Uint8Array[] = [];
  while (sock.buffered > 0) frames.push(await sock.nextFrame());
  return { challenge, frames };
}

/** A genuine client handshake for `identity` (whose key may not be the registered one). */
function handshakeOf(identity: { id: string; key: RsaPrivateKey }, pin = c.server.key.publicKey) {
  return new ClientHandshake({
    id: idToBytes(identity.id),
    key: identity.key,
    pinnedServerKey: pin,
  });
}

describe("refused logins all get the same answer", () => {
  test("unknown ID, wrong key, key of another size, revoked: one STOP each, then the close", async () => {
    const alice = await c.enroll("alice");
    const revoked = await c.enroll("revoked");
    await c.server.revoke(revoked.id);
    const cases: [string, { id: string; key: RsaPrivateKey }, string][] = [
      ["unknown ID", { id: newClientId(), key: alice.key }, "UNKNOWN_CLIENT"],
      ["right ID, wrong key", { id: alice.id, key: other2048 }, "BAD_SIGNATURE"],
      ["right ID, a 3072-bit key", { id: alice.id, key: other3072 }, "BAD_SIGNATURE"],
      ["revoked", revoked, "UNKNOWN_CLIENT"],
    ];
    const sizes = new Set<number>();
    for (const [what, who, code] of cases) {
      using rsa = countRsa();
      const failures = c.server.stats.authFailures;
      const hs = handshakeOf(who);
      const { frames } = await attempt((challenge) => hs.respond(challenge));
      // Exactly one frame after the challenge: STOP sealed at s2c counter 0.
      expect({ what, frames: frames.length }).toEqual({ what, frames: 1 });
      const err = thrown(() => hs.finish(frames[0] as Uint8Array));
      expectError(err, HandshakeError, { stage: "authentication", code: "AUTH_FAILED" });
      expect((err as Error).message).toBe("authentication failed");
      // One OAEP decryption and one PSS verification (a dummy key's when the ID or size is off).
      expect({ what, decrypts: rsa.decrypts, verifies: rsa.verifies }).toEqual({
        what,
        decrypts: 1,
        verifies: 1,
      });
      expect(c.server.stats.authFailures).toBe(failures + 1);
      expect(lastAuthFailure()).toMatchObject({
        stage: "authentication",
        reason: code,
        id: who.id,
      });
      sizes.add((frames[0] as Uint8Array).length);
    }
    expect(sizes.size).toBe(1); // the refusals cannot be told apart by size either
    expect(c.server.router.online.size).toBe(0);
  });

  test("a refused login does not displace the client whose ID it claims", async () => {
    const bob = await c.enroll("bob");
    const session = await c.raw(bob);
    const err = await rejected(RawSession.login(c.server.port, { ...bob, key: other2048 }));
    expectError(err, HandshakeError, { code: "AUTH_FAILED" });
    expect(await session.heartbeat()).toEqual([]);
  });
});

describe("replay", () => {
  test("a recorded response replayed on a new connection fails silently (the AEAD cannot open)", async () => {
    const carol = await c.enroll("carol");
    // The legitimate login, recorded on the way out.
    const genuine = await FramedSocket.dial(c.server.port);
    const hs = handshakeOf(carol);
    const recorded = await hs.respond(await genuine.nextFrame());
    genuine.writeFrame(recorded);
    const { config } = hs.finish(await genuine.nextFrame());
    expect(config.max_message_size).toBeGreaterThan(0);
    // Replayed while the original session is up, and again after it has gone.
    for (const phase of ["while up", "after"]) {
      using rsa = countRsa();
      const { frames } = await attempt(async () => recorded);
      expect({ phase, frames: frames.length }).toEqual({ phase, frames: 0 });
      // The OAEP block is genuine, so it decrypts; the rest is bound to the old challenge.
      expect([rsa.decrypts, rsa.verifies]).toEqual([1, 0]);
      expect(lastAuthFailure()).toMatchObject({ stage: "response", reason: "RESPONSE_UNREADABLE" });
      expect(lastAuthFailure()?.id).toBeUndefined();
      if (phase === "while up") genuine.destroy();
    }
    expect(c.server.stats.authFailures).toBeGreaterThanOrEqual(2);
  });

  test("a signature over an earlier challenge, sent under new keys: STOP, never CONFIG", async () => {
    const dave = await c.enroll("dave");
    const erin = await c.enroll("erin"); // shares dave's key pair (cluster default)
    const server = c.server.key.publicKey;
    // An earlier connection: dave signs its transcript (and never sends it).
    const early = await FramedSocket.dial(c.server.port);
    const oldChallenge = await early.nextFrame();
    const oldTh = transcriptHash(oldChallenge, x25519Public(x25519Secret()));
    const oldSignature = await dave.key.sign(authMessage(oldTh, idToBytes(dave.id)));
    early.destroy();
    /** A response with correct keys for `challenge`, carrying `id || signature`. */
    const forge = (id: string, sign: (th: Uint8Array) => Promise<Uint8Array>) => {
      let opener: Opener | null = null;
      const respond = async (challenge: Uint8Array) => {
        const secret = x25519Secret();
        const eC = x25519Public(secret);
        const rC = rng.bytes(32);
        const th = transcriptHash(challenge, eC);
        const shared = x25519Shared(secret, decodeChallenge(challenge).serverEphemeral);
        const keys = deriveKeys(shared, rC, th);
        opener = new Opener(keys.s2c);
        const sealed = new Sealer(keys.c2s).seal(concat(idToBytes(id), await sign(th)));
        return concat(await server.encrypt(concat(eC, rC)), sealed);
      };
      return {
        respond,
        first: (frame: Uint8Array): Message => decodeMessage((opener as Opener).open(frame)),
      };
    };
    const cases: [string, ReturnType<typeof forge>][] = [
      ["dave's signature over an earlier challenge", forge(dave.id, async () => oldSignature)],
      [
        "dave's signature over this challenge, claiming erin's ID (same key pair)",
        forge(erin.id, (th) => dave.key.sign(authMessage(th, idToBytes(dave.id)))),
      ],
      // The control: the same forgery with a correct signature is accepted.
      [
        "control: dave, correctly signed",
        forge(dave.id, (th) => dave.key.sign(authMessage(th, idToBytes(dave.id)))),
      ],
    ];
    for (const [what, f] of cases) {
      const control = what.startsWith("control");
      const { frames } = await attempt(f.respond, control);
      expect({ what, frames: frames.length }).toEqual({ what, frames: 1 });
      const m = f.first(frames[0] as Uint8Array);
      expect({ what, type: m.type }).toEqual({
        what,
        type: control ? ControlType.CONFIG : ControlType.STOP,
      });
      if (!control) {
        expect(m.format === 1 && decodeText(m.body)).toBe("authentication failed");
        expect(lastAuthFailure()).toMatchObject({
          stage: "authentication",
          reason: "BAD_SIGNATURE",
        });
      }
    }
  });
});

describe("a man in the middle with its own key", () => {
  let attacker: RsaPrivateKey;
  beforeAll(async () => {
    attacker = await RsaPrivateKey.fromPkcs8((await generateRsaKeyPair(2048)).privatePkcs8);
  });

  test("a client pinning the real key refuses it: PinningError naming both fingerprints", async () => {
    const frank = await c.enroll("frank");
    await using relay = await Mitm.start({
      upstreamPort: c.server.port,
      key: attacker,
      serverKey: c.server.key.publicKey,
    });
    const failures = c.server.stats.authFailures;
    const err = await rejected(
      connect({ identity: frank, server: relay.address, reconnect: false }),
    );
    expectError(err, PinningError, {
      stage: "pinning",
      expected: c.server.key.publicKey.fingerprint,
      received: attacker.publicKey.fingerprint,
    });
    expect((err as Error).message).toContain(c.server.key.publicKey.fingerprint);
    expect((err as Error).message).toContain(attacker.publicKey.fingerprint);
    await until(() => relay.records.length === 1, 3000, "the relay's record");
    expect(relay.records[0]).toMatchObject({ clientBytes: 0, relayed: 0 }); // not one byte sent
    expect(relay.records[0]?.clientId).toBeUndefined();
    expect(c.server.stats.authFailures).toBe(failures);
  });

  test("a client tricked into pinning the relay's key is still refused by the server", async () => {
    const grace = await c.enroll("grace");
    const session = await c.raw(grace); // grace is online meanwhile, and stays so
    await using relay = await Mitm.start({
      upstreamPort: c.server.port,
      key: attacker,
      serverKey: c.server.key.publicKey,
    });
    using rsa = countRsa();
    const tricked = { ...grace, serverKey: attacker.publicKey };
    const err = await rejected(RawSession.login(relay.port, tricked));
    // The relay completed the handshake with the client and logged in with its ID and
    // signature; the signature covers the relay's key, so the real server refused.
    expectError(err, HandshakeError, { stage: "authentication", code: "AUTH_FAILED" });
    const record = relay.records[0];
    expect(record?.clientId).toEqual(idToBytes(grace.id));
    expect(record?.upstreamFirst).toBe("STOP authentication failed");
    expect(record?.relayed).toBe(0);
    expect(lastAuthFailure()).toMatchObject({
      stage: "authentication",
      reason: "BAD_SIGNATURE",
      id: grace.id,
    });
    expect([rsa.decrypts, rsa.verifies]).toEqual([1, 1]);
    expect(await session.heartbeat()).toEqual([]); // not displaced
  });
});

describe("low-order X25519 keys", () => {
  test("E_c of small order inside a genuine OAEP block: silent close, no PSS verification", async () => {
    const server = c.server.key.publicKey;
    using rsa = countRsa();
    const before = log.find("auth failed").length;
    for (const point of LOW_ORDER_POINTS) {
      const block = await server.encrypt(concat(point.bytes, rng.bytes(32)));
      const { frames } = await attempt(async () => concat(block, rng.bytes(16 + 256 + 16)));
      expect({ point: point.name, frames: frames.length }).toEqual({
        point: point.name,
        frames: 0,
      });
    }
    const logged = log.find("auth failed").slice(before);
    expect(logged.map((e) => [e.fields.stage, e.fields.reason])).toEqual(
      LOW_ORDER_POINTS.map(() => ["key-exchange", "LOW_ORDER_KEY"]),
    );
    expect(rsa.decrypts).toBe(LOW_ORDER_POINTS.length);
    expect(rsa.verifies).toBe(0);
  });
});

test("after every attack a legitimate client still logs in and is routed", async () => {
  const [x, y] = await Promise.all([c.client("after-x"), c.client("after-y")]);
  const got = new Promise<string>((resolve) =>
    y.on("message", (m) => resolve(new TextDecoder().decode(m.data))),
  );
  x.send(y.id, "still fine");
  expect(await got).toBe("still fine");
  expect(log.entries.filter((e) => e.level === "error" || e.event === "socket error")).toEqual([]);
});
