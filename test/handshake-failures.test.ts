/**
 * The handshake fails closed (docs/PROTOCOL.md § Handshake, steps 2 and 5): malformed,
 * tampered and low-order inputs each become one HandshakeError with a stage label, no
 * STOP before authentication, no keys left, and the caller's secrets wiped.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { generateRsaKeyPair, RsaPrivateKey } from "../src/crypto/rsa.ts";
import { HandshakeError } from "../src/errors.ts";
import { ClientHandshake } from "../src/handshake/client.ts";
import { type KeyLookup, ServerHandshake } from "../src/handshake/server.ts";
import { ID_BYTES } from "../src/wire/constants.ts";
import { encodeChallenge } from "../src/wire/handshake.ts";
import { asUuidV4, cat, flip } from "./helpers/bytes.ts";
import { expectError, rejected, thrown } from "./helpers/errors.ts";
import { Prng } from "./helpers/prng.ts";
import { LOW_ORDER_POINTS } from "./helpers/x25519.ts";

const rng = new Prng(80);
const id = asUuidV4(rng.bytes(ID_BYTES));
let server: RsaPrivateKey;
let client: RsaPrivateKey;
let lookup: KeyLookup;

beforeAll(async () => {
  const [s, c] = await Promise.all([generateRsaKeyPair(2048), generateRsaKeyPair(2048)]);
  server = await RsaPrivateKey.fromPkcs8(s.privatePkcs8);
  client = await RsaPrivateKey.fromPkcs8(c.privatePkcs8);
  lookup = () => client.publicKey;
});

const isZero = (b: Uint8Array) => b.every((x) => x === 0);

/** Fixed server randomness, so that several ServerHandshakes issue the same challenge. */
const fixedServer = { secret: rng.bytes(32), random: rng.bytes(96) };

/** A server handshake (challenge_data 128 bytes) whose ephemeral secret we can inspect. */
function newServer(fixed = false) {
  const secret = fixed ? fixedServer.secret.slice() : rng.bytes(32);
  const hs = new ServerHandshake({
    key: server,
    challengeSize: 128,
    ephemeralSecret: secret,
    ...(fixed ? { challengeRandom: fixedServer.random } : {}),
  });
  return { hs, secret };
}

/** A client handshake whose e_c and r_c we can inspect afterwards. */
function newClient() {
  const eC = rng.bytes(32);
  const rC = rng.bytes(32);
  const hs = new ClientHandshake({
    id,
    key: client,
    pinnedServerKey: server.publicKey,
    ephemeralSecret: eC,
    rC,
  });
  return { hs, eC, rC };
}

/** Expects a (fixed) server to refuse `response` silently, having kept nothing. */
async function expectSilentRefusal(response: Uint8Array, stages: string[], code?: string) {
  const { hs, secret } = newServer(true);
  let looked = false;
  const err = await rejected(
    hs.verify(response, (cid) => {
      looked = true;
      return lookup(cid);
    }),
  );
  expect(err).toBeInstanceOf(HandshakeError);
  expect(stages).toContain((err as HandshakeError).stage);
  if (code) expect((err as HandshakeError).code).toBe(code);
  expect((err as HandshakeError).reply).toBeUndefined();
  expect(looked).toBe(false);
  expect(isZero(secret)).toBe(true);
  expectError(await rejected(hs.verify(response, lookup)), HandshakeError, { code: "BAD_STATE" });
}

/** Expects a failed client: its secrets wiped, and no way to finish. */
function expectFailedClient(c: ReturnType<typeof newClient>) {
  expect(isZero(c.eC)).toBe(true);
  expect(isZero(c.rC)).toBe(true);
  expectError(
    thrown(() => c.hs.finish(new Uint8Array(64))),
    HandshakeError,
    { stage: "config", code: "BAD_STATE" },
  );
}

/** A valid response to the fixed server's challenge. */
async function fixedResponse(): Promise<Uint8Array> {
  const c = newClient();
  const response = await c.hs.respond(newServer(true).hs.challenge);
  // Success wipes the caller's secrets too.
  expect(isZero(c.eC) && isZero(c.rC)).toBe(true);
  return response;
}

describe("tampered response", () => {
  test("the untampered response is accepted (control)", async () => {
    const accepted = await newServer(true).hs.verify(await fixedResponse(), lookup);
    expect(accepted.clientId).toEqual(id);
  });

  test("a flipped bit in the OAEP block, the sealed ID/signature or the tag fails", async () => {
    const response = await fixedResponse();
    const n = response.length;
    const positions = [0, 1, 128, 255, 256, 256 + 15, 256 + 16, 256 + 200, n - 17, n - 16, n - 1];
    for (const at of positions) {
      await expectSilentRefusal(flip(response, at, at % 8), ["response", "key-exchange"]);
    }
  });

  test("a response to a tampered challenge fails (the transcript binds it)", async () => {
    const challenge = newServer(true).hs.challenge;
    const keySize = 2 + server.publicKey.spki.length;
    for (const at of [keySize + 5, keySize + 40, challenge.length - 1]) {
      const c = newClient();
      const response = await c.hs.respond(flip(challenge, at));
      await expectSilentRefusal(response, ["response"], "RESPONSE_UNREADABLE");
    }
  });
});

describe("malformed response", () => {
  test("a wrong length is BAD_RESPONSE before any RSA work", async () => {
    const response = await fixedResponse();
    for (const bad of [
      new Uint8Array(0),
      response.subarray(0, response.length - 1),
      cat(response, new Uint8Array(1)),
      response.subarray(0, 256),
      cat(response, new Uint8Array(127)),
    ]) {
      await expectSilentRefusal(bad, ["response"], "BAD_RESPONSE");
    }
  });

  test("an OAEP block at or above the modulus is BAD_RESPONSE", async () => {
    const response = await fixedResponse();
    const modulus = server.publicKey.modulus;
    for (const block of [modulus, new Uint8Array(256).fill(0xff)]) {
      await expectSilentRefusal(cat(block, response.subarray(256)), ["response"], "BAD_RESPONSE");
    }
    // Just below the modulus passes that check and fails OAEP instead.
    const below = modulus.slice();
    below[255] = (below[255] as number) - 1;
    await expectSilentRefusal(cat(below, response.subarray(256)), ["key-exchange"], "OAEP_FAILED");
  });

  test("an OAEP plaintext that is not 64 bytes fails at key-exchange", async () => {
    const sealed = rng.bytes(16 + 256 + 16);
    for (const length of [0, 63, 65]) {
      const block = await server.publicKey.encrypt(rng.bytes(length));
      await expectSilentRefusal(cat(block, sealed), ["key-exchange"], "OAEP_FAILED");
    }
  });
});

describe("low-order X25519 keys", () => {
  for (const point of LOW_ORDER_POINTS) {
    test(`as E_s: the client refuses at key-exchange (${point.name})`, async () => {
      const data = cat(point.bytes, rng.bytes(64));
      const challenge = encodeChallenge(server.publicKey.spki, data);
      const c = newClient();
      const err = await rejected(c.hs.respond(challenge));
      expectError(err, HandshakeError, { stage: "key-exchange", code: "LOW_ORDER_KEY" });
      expectFailedClient(c);
    });

    test(`as E_c: the server refuses at key-exchange (${point.name})`, async () => {
      const block = await server.publicKey.encrypt(cat(point.bytes, rng.bytes(32)));
      await expectSilentRefusal(
        cat(block, rng.bytes(16 + 256 + 16)),
        ["key-exchange"],
        "LOW_ORDER_KEY",
      );
    });
  }
});

describe("client failures", () => {
  test("a challenge shorter than 2 + key + 64 fails at stage challenge", async () => {
    const full = newServer().hs.challenge;
    const min = 2 + server.publicKey.spki.length + 64;
    for (const length of [0, 1, 2, 100, min - 1]) {
      const c = newClient();
      const err = await rejected(c.hs.respond(full.subarray(0, length)));
      expectError(err, HandshakeError, { stage: "challenge", code: "BAD_CHALLENGE" });
      expectFailedClient(c);
    }
  });

  test("a challenge with another server key fails at pinning and keeps nothing", async () => {
    const data = rng.bytes(64);
    for (const spki of [rng.bytes(server.publicKey.spki.length), flip(server.publicKey.spki, 40)]) {
      const c = newClient();
      const err = await rejected(c.hs.respond(encodeChallenge(spki, data)));
      expectError(err, HandshakeError, { stage: "pinning", code: "SERVER_KEY_MISMATCH" });
      expectFailedClient(c);
    }
  });

  test("a challenge cannot be answered twice; finish needs a response", async () => {
    const c = newClient();
    expectError(
      thrown(() => c.hs.finish(new Uint8Array(64))),
      HandshakeError,
      { code: "BAD_STATE" },
    );
    const challenge = newServer().hs.challenge;
    await c.hs.respond(challenge);
    expectError(await rejected(c.hs.respond(challenge)), HandshakeError, { code: "BAD_STATE" });
  });

  test("a first frame that does not open, or is not CONFIG, fails at stage config", async () => {
    const cases: [string, (s: Awaited<ReturnType<ServerHandshake["verify"]>>) => Uint8Array][] = [
      ["CONFIG_UNREADABLE", () => rng.bytes(60)],
      ["CONFIG_UNREADABLE", (s) => flip(s.session.sealer.seal(cfg()), 0)],
      ["BAD_CONFIG", (s) => s.session.sealer.seal(new Uint8Array([0x10, 0, 0, 0, 0]))],
      [
        "BAD_CONFIG",
        (s) =>
          s.session.sealer.seal(
            cat(new Uint8Array([0x11, 0, 0, 0, 0]), new Uint8Array([0x5b, 0x5d])),
          ),
      ],
      ["BAD_CONFIG", (s) => s.session.sealer.seal(new Uint8Array([0x35]))],
    ];
    for (const [code, frame] of cases) {
      const { hs: srv } = newServer();
      const c = newClient();
      const accepted = await srv.verify(await c.hs.respond(srv.challenge), lookup);
      expectError(
        thrown(() => c.hs.finish(frame(accepted))),
        HandshakeError,
        { stage: "config", code },
      );
      expectFailedClient(c);
    }
  });

  test("dispose drops the server's secret and the client's session", async () => {
    const { hs: srv, secret } = newServer();
    const c = newClient();
    await c.hs.respond(srv.challenge);
    srv.dispose();
    expect(isZero(secret)).toBe(true);
    c.hs.dispose();
    expectFailedClient(c);
  });
});

/** A CONFIG message with an empty JSON object. */
function cfg(): Uint8Array {
  return cat(new Uint8Array([0x11, 0, 0, 0, 1]), new TextEncoder().encode("{}"));
}
