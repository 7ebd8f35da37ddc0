/**
 * Both parties of the backbone/1 handshake in memory (docs/PROTOCOL.md § Handshake):
 * success, refused clients, and a substituted server key. Malformed and tampered
 * inputs are in handshake-failures.test.ts.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { generateRsaKeyPair, RsaPrivateKey } from "../src/crypto/rsa.ts";
import { HandshakeError, PinningError } from "../src/errors.ts";
import { ClientHandshake } from "../src/handshake/client.ts";
import { AUTH_FAILED, type KeyLookup, ServerHandshake } from "../src/handshake/server.ts";
import { DEFAULT_CHALLENGE_SIZE, ID_BYTES } from "../src/wire/constants.ts";
import { decodeChallenge, encodeChallenge, splitResponse } from "../src/wire/handshake.ts";
import {
  C2CType,
  ControlType,
  decodeMessage,
  decodeText,
  encodeC2C,
  encodeControl,
  Format,
} from "../src/wire/message.ts";
import { asUuidV4, cat, u8 } from "./helpers/bytes.ts";
import { expectError, rejected, thrown } from "./helpers/errors.ts";
import { Prng } from "./helpers/prng.ts";
import { clientSchedule, gcmOpen } from "./helpers/schedule.ts";

const rng = new Prng(70);
let server: RsaPrivateKey;
let attacker: RsaPrivateKey;
let client: RsaPrivateKey;
let otherClient: RsaPrivateKey;
let bigClient: RsaPrivateKey;
const id = asUuidV4(rng.bytes(ID_BYTES));

const load = async (bits: 2048 | 3072) =>
  RsaPrivateKey.fromPkcs8((await generateRsaKeyPair(bits)).privatePkcs8);

beforeAll(async () => {
  [server, attacker, client, otherClient, bigClient] = await Promise.all([
    load(2048),
    load(2048),
    load(2048),
    load(2048),
    load(3072),
  ]);
});

const lookupOf =
  (key: RsaPrivateKey | null): KeyLookup =>
  (clientId) =>
    key && clientId.length === ID_BYTES ? key.publicKey : null;

/** A client handshake with its own e_c and r_c, kept (as copies) for independent checks. */
function newClient(key: RsaPrivateKey, pinned: RsaPrivateKey = server, clientId = id) {
  const eC = rng.bytes(32);
  const rC = rng.bytes(32);
  const hs = new ClientHandshake({
    id: clientId,
    key,
    pinnedServerKey: pinned.publicKey,
    ephemeralSecret: eC.slice(),
    rC: rC.slice(),
  });
  return { hs, eC, rC };
}

/** The STOP text inside a refusal, opened with keys computed independently. */
function stopText(reply: Uint8Array, challenge: Uint8Array, eC: Uint8Array, rC: Uint8Array) {
  const message = decodeMessage(gcmOpen(clientSchedule(challenge, eC, rC).kS2c, 0, reply));
  expect(message.format === Format.CONTROL && message.type).toBe(ControlType.STOP);
  return message.format === Format.CONTROL ? decodeText(message.body) : "";
}

describe("handshake success", () => {
  test("both sides agree; CONFIG and C2C open on the other side in both directions", async () => {
    const srv = new ServerHandshake({ key: server });
    expect(srv.challenge.length).toBe(2 + server.publicKey.spki.length + DEFAULT_CHALLENGE_SIZE);
    expect(decodeChallenge(srv.challenge).serverSpki).toEqual(server.publicKey.spki);
    const { hs } = newClient(client);
    const response = await hs.respond(srv.challenge);
    expect(response.length).toBe(256 + 16 + 256 + 16);
    const accepted = await srv.verify(response, async (cid) => lookupOf(client)(cid));
    expect(accepted.clientId).toEqual(id);
    expect(accepted.clientKey).toBe(client.publicKey);

    const settings = { heartbeat_interval: 5, extra: "ignored" };
    const config = accepted.session.sealer.seal(encodeControl(ControlType.CONFIG, settings, 9));
    const done = hs.finish(config);
    expect(done.config).toEqual(settings);
    expect(done.serverFingerprint).toBe(server.publicKey.fingerprint);

    const peer = rng.bytes(ID_BYTES);
    for (let i = 0; i < 5; i++) {
      const up = encodeC2C(C2CType.DIRECT, peer, rng.bytes(rng.int(0, 300)));
      expect(u8(accepted.session.opener.open(done.session.sealer.seal(up)))).toEqual(up);
      const down = encodeC2C(C2CType.BROADCAST, peer, rng.bytes(rng.int(0, 300)));
      expect(u8(done.session.opener.open(accepted.session.sealer.seal(down)))).toEqual(down);
    }
    // The response was c2s counter 0 and CONFIG s2c counter 0; five frames followed each.
    expect(done.session.sealer.counter).toBe(6);
    expect(accepted.session.sealer.counter).toBe(6);
  });

  test("the smallest challenge (64 bytes) and a 3072-bit client key work", async () => {
    const srv = new ServerHandshake({ key: server, challengeSize: 64 });
    expect(srv.challenge.length).toBe(2 + server.publicKey.spki.length + 64);
    const { hs } = newClient(bigClient);
    const response = await hs.respond(srv.challenge);
    expect(response.length).toBe(256 + 16 + 384 + 16);
    const accepted = await srv.verify(response, lookupOf(bigClient));
    expect(accepted.clientId).toEqual(id);
    const done = hs.finish(accepted.session.sealer.seal(encodeControl(ControlType.CONFIG, {})));
    expect(done.config).toEqual({});
  });

  test("challenge sizes outside 64..frame are refused when the server is built", () => {
    for (const challengeSize of [63, 0, 1.5, 65535]) {
      expect(() => new ServerHandshake({ key: server, challengeSize })).toThrow(RangeError);
    }
  });
});

describe("refused clients", () => {
  /** Runs a handshake that the server refuses; returns the refusal and the client's view. */
  async function refused(key: RsaPrivateKey, lookup: KeyLookup, clientId = id) {
    const srv = new ServerHandshake({ key: server });
    const { hs, eC, rC } = newClient(key, server, clientId);
    const err = await rejected(srv.verify(await hs.respond(srv.challenge), lookup));
    expectError(err, HandshakeError, { stage: "authentication" });
    const reply = (err as HandshakeError).reply;
    expect(reply).toBeInstanceOf(Uint8Array);
    const text = stopText(reply as Uint8Array, srv.challenge, eC, rC);
    const onClient = thrown(() => hs.finish(reply as Uint8Array));
    expectError(onClient, HandshakeError, { stage: "authentication", code: "AUTH_FAILED" });
    return { code: (err as HandshakeError).code, text, message: (err as Error).message };
  }

  test("an unknown client gets STOP authentication failed (UNKNOWN_CLIENT)", async () => {
    const r = await refused(client, lookupOf(null));
    expect(r.code).toBe("UNKNOWN_CLIENT");
    expect(r.text).toBe(AUTH_FAILED);
    expect(AUTH_FAILED).toBe("authentication failed");
  });

  test("a wrong client key gets the same STOP (BAD_SIGNATURE)", async () => {
    const r = await refused(otherClient, lookupOf(client));
    expect(r.code).toBe("BAD_SIGNATURE");
    expect(r.text).toBe(AUTH_FAILED);
  });

  test("a registered key of another size gets the same STOP (BAD_SIGNATURE)", async () => {
    const big = await refused(bigClient, lookupOf(client));
    const small = await refused(client, lookupOf(bigClient));
    expect([big.code, small.code]).toEqual(["BAD_SIGNATURE", "BAD_SIGNATURE"]);
    expect([big.text, small.text]).toEqual([AUTH_FAILED, AUTH_FAILED]);
  });

  test("an ID that is not a UUID (nil, all-ones, random bytes) gets the same STOP", async () => {
    for (const odd of [new Uint8Array(16), new Uint8Array(16).fill(0xff), rng.bytes(16)]) {
      const r = await refused(client, lookupOf(null), odd);
      expect([r.code, r.text]).toEqual(["UNKNOWN_CLIENT", AUTH_FAILED]);
    }
  });

  test("the error carries no peer-chosen detail (the client ID is not echoed)", async () => {
    const r = await refused(client, lookupOf(null));
    const idHex = Buffer.from(id).toString("hex");
    expect(r.message.toLowerCase()).not.toContain(idHex);
  });
});

describe("substituted server key", () => {
  test("a challenge with another server key: PinningError naming both fingerprints", async () => {
    const relay = new ServerHandshake({ key: attacker, challengeSize: 64 });
    const { hs } = newClient(client);
    const err = await rejected(hs.respond(relay.challenge));
    expectError(err, PinningError, {
      stage: "pinning",
      code: "SERVER_KEY_MISMATCH",
      expected: server.publicKey.fingerprint,
      received: attacker.publicKey.fingerprint,
    });
    expect(err).toBeInstanceOf(HandshakeError);
    const message = (err as Error).message;
    expect(message).toContain(server.publicKey.fingerprint);
    expect(message).toContain(attacker.publicKey.fingerprint);
    expectError(
      thrown(() => hs.finish(new Uint8Array(40))),
      HandshakeError,
      { code: "BAD_STATE" },
    );
  });

  test("a relay re-encrypting for the real server is refused (th differs)", async () => {
    // The real server's challenge, with the attacker's key put in place of the server's.
    const real = new ServerHandshake({ key: server });
    const data = decodeChallenge(real.challenge).challengeData;
    const forged = encodeChallenge(attacker.publicKey.spki, data);
    // A client that (wrongly) pins the attacker's key answers the forged challenge.
    const { hs } = newClient(client, attacker);
    const response = await hs.respond(forged);
    // The attacker learns E_c || r_c and re-encrypts them for the real server.
    const { block, sealed } = splitResponse(response, 256);
    const reEncrypted = await server.publicKey.encrypt(await attacker.decrypt(block));
    let looked = false;
    const err = await rejected(
      real.verify(cat(reEncrypted, sealed), (cid) => {
        looked = true;
        return lookupOf(client)(cid);
      }),
    );
    expectError(err, HandshakeError, { stage: "response", code: "RESPONSE_UNREADABLE" });
    expect((err as HandshakeError).reply).toBeUndefined();
    expect(looked).toBe(false);
  });
});
