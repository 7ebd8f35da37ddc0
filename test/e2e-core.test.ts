/**
 * The pure E2E core: primitives, keys and signatures, X3DH, safety numbers, envelope
 * and padding. The ratchet's pitfalls are in e2e-ratchet.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  CONTEXT_IDENTITY_DH,
  CONTEXT_ONE_TIME_PREKEY,
  CONTEXT_ROLLOVER,
  CONTEXT_SIGNED_PREKEY,
  MAX_PLAINTEXT,
  PAD_BUCKETS,
} from "../src/e2e/constants.ts";
import { decodeEnvelope, PREKEY_OVERHEAD, pad, paddedSize, unpad } from "../src/e2e/envelope.ts";
import { combineDigits, fingerprintDigits, safetyNumber } from "../src/e2e/fingerprint.ts";
import {
  decodeBundle,
  encodeBundle,
  publicIdentity,
  signedPayload,
  verifyBundle,
  verifyIdentity,
} from "../src/e2e/keys.ts";
import { checkX25519Public, dh, sign, verify, x25519PublicOf } from "../src/e2e/primitives.ts";
import { decryptMessage, encryptMessage, startSession } from "../src/e2e/session.ts";
import { x3dhInitiate, x3dhRespond } from "../src/e2e/x3dh.ts";
import { hex, toHex } from "./helpers/bytes.ts";
import {
  ALICE,
  BOB,
  empty,
  fetchedBundle,
  MALLORY,
  makeParty,
  seededRandom,
} from "./helpers/e2e.ts";
import { LOW_ORDER_POINTS } from "./helpers/x25519.ts";

const enc = new TextEncoder();

describe("primitives", () => {
  test("X25519 through node:crypto agrees with @noble/curves", () => {
    const random = seededRandom("x25519-cross");
    for (let i = 0; i < 20; i++) {
      const a = random(32);
      const b = random(32);
      expect(toHex(x25519PublicOf(a))).toBe(toHex(x25519.getPublicKey(a)));
      expect(toHex(dh(a, x25519PublicOf(b)))).toBe(
        toHex(x25519.getSharedSecret(a, x25519.getPublicKey(b))),
      );
    }
  });

  test("every low-order X25519 point is refused", () => {
    for (const { name, bytes } of LOW_ORDER_POINTS) {
      expect(() => checkX25519Public(bytes), name).toThrow(
        expect.objectContaining({ code: "BAD_KEY" }),
      );
    }
  });

  test("malformed X25519 keys are refused: wrong length, non-canonical (≥ p)", () => {
    const good = x25519PublicOf(seededRandom("k")(32));
    expect(() => checkX25519Public(good)).not.toThrow();
    expect(() => checkX25519Public(good.subarray(0, 31))).toThrow(
      expect.objectContaining({ code: "BAD_KEY" }),
    );
    expect(() => checkX25519Public(new Uint8Array(33))).toThrow(
      expect.objectContaining({ code: "BAD_KEY" }),
    );
    // p + 2 (non-canonical encoding of 2, a valid point otherwise)
    const pPlus2 = hex("efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    expect(() => checkX25519Public(pPlus2)).toThrow(expect.objectContaining({ code: "BAD_KEY" }));
    const high = good.slice();
    high[31] = (high[31] as number) | 0x80;
    expect(() => checkX25519Public(high)).toThrow(expect.objectContaining({ code: "BAD_KEY" }));
  });

  test("a low-order key in a bundle or as the identity is refused", () => {
    const bob = makeParty(BOB);
    const bundle = fetchedBundle(bob);
    for (const { bytes } of LOW_ORDER_POINTS.slice(0, 4)) {
      const b1 = { ...bundle, signedPreKey: { ...bundle.signedPreKey, key: bytes } };
      expect(() => verifyBundle(b1, BOB)).toThrow(expect.objectContaining({ code: "BAD_KEY" }));
      const b2 = { ...bundle, identity: { ...bundle.identity, dhKey: bytes } };
      expect(() => verifyBundle(b2, BOB)).toThrow(expect.objectContaining({ code: "BAD_KEY" }));
    }
    // A small-order Ed25519 signing key (the identity point) is refused too.
    const ed = new Uint8Array(32);
    ed[0] = 1;
    expect(() => verifyIdentity({ ...bundle.identity, signingKey: ed }, BOB)).toThrow(
      expect.objectContaining({ code: "BAD_KEY" }),
    );
  });
});

describe("signatures", () => {
  const contexts = [
    CONTEXT_IDENTITY_DH,
    CONTEXT_SIGNED_PREKEY,
    CONTEXT_ONE_TIME_PREKEY,
    CONTEXT_ROLLOVER,
  ];
  test("a signature from one context verifies in no other", () => {
    const alice = makeParty(ALICE);
    const key = alice.spk.key;
    for (const from of contexts) {
      const sig = sign(alice.identity.signing.secret, signedPayload(from, ALICE, 1, key));
      for (const to of contexts) {
        const ok = verify(alice.identity.signing.public, signedPayload(to, ALICE, 1, key), sig);
        expect(ok, `${from} → ${to}`).toBe(from === to);
      }
    }
  });

  test("a signed prekey passed off as a one-time prekey is refused", () => {
    const bob = makeParty(BOB);
    const bundle = fetchedBundle(bob, false);
    bundle.oneTimePreKeys = [{ ...bundle.signedPreKey }];
    expect(() => verifyBundle(bundle, BOB)).toThrow(
      expect.objectContaining({ code: "BAD_SIGNATURE" }),
    );
  });

  test("unknown key-share: a bundle republished under another ID is refused", () => {
    const bob = makeParty(BOB);
    const bundle = fetchedBundle(bob);
    expect(() => verifyBundle(bundle, BOB)).not.toThrow();
    expect(() => verifyBundle(bundle, MALLORY)).toThrow(
      expect.objectContaining({ code: "BAD_SIGNATURE" }),
    );
    const alice = makeParty(ALICE);
    expect(() => startSession(alice.identity, empty(MALLORY), bundle)).toThrow(
      expect.objectContaining({ code: "BAD_SIGNATURE" }),
    );
  });

  test("a different key ID under the same signature is refused", () => {
    const bob = makeParty(BOB);
    const bundle = fetchedBundle(bob);
    bundle.signedPreKey = { ...bundle.signedPreKey, id: bundle.signedPreKey.id + 1 };
    expect(() => verifyBundle(bundle, BOB)).toThrow(
      expect.objectContaining({ code: "BAD_SIGNATURE" }),
    );
  });

  test("bundle encoding round-trips and refuses bad lengths and KEM prekeys", () => {
    const bob = makeParty(BOB, undefined, 3);
    const bundle = { ...fetchedBundle(bob), oneTimePreKeys: bob.opks };
    const bytes = encodeBundle(bundle);
    expect(bytes.length).toBe(1 + 128 + 100 + 2 + 3 * 100);
    const back = decodeBundle(bytes);
    expect(() => verifyBundle(back, BOB)).not.toThrow();
    expect(toHex(encodeBundle(back))).toBe(toHex(bytes));
    expect(() => decodeBundle(bytes.subarray(0, bytes.length - 1))).toThrow(
      expect.objectContaining({ code: "MALFORMED" }),
    );
    const kem = bytes.slice();
    kem[229] = 1;
    expect(() => decodeBundle(kem)).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
  });
});

describe("X3DH", () => {
  for (const withOpk of [true, false]) {
    test(`both sides derive the same SK (${withOpk ? "with" : "without"} a one-time prekey)`, () => {
      const alice = makeParty(ALICE);
      const bob = makeParty(BOB);
      const bundle = fetchedBundle(bob, withOpk);
      const { sk, init } = x3dhInitiate(alice.identity, BOB, bundle);
      const opk = withOpk ? bob.opks[0] : undefined;
      const sk2 = x3dhRespond(bob.identity, publicIdentity(alice.identity), init, bob.spk, opk);
      expect(toHex(sk2)).toBe(toHex(sk));
      // Without the one-time prekey the responder gets another key.
      if (withOpk) {
        expect(() =>
          x3dhRespond(bob.identity, publicIdentity(alice.identity), init, bob.spk, undefined),
        ).toThrow();
      }
    });
  }
});

describe("safety numbers", () => {
  test("libsignal's vector (fingerprint.rs, iterations 5200)", () => {
    const aliceKey = hex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868");
    const bobKey = hex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b");
    const a = fingerprintDigits(aliceKey, enc.encode("+14152222222"));
    const b = fingerprintDigits(bobKey, enc.encode("+14153333333"));
    expect(combineDigits(a, b)).toBe(
      "300354477692869396892869876765458257569162576843440918079131",
    );
    expect(combineDigits(b, a)).toBe(
      "300354477692869396892869876765458257569162576843440918079131",
    );
  });

  test("60 digits, the same on both sides, changed by either key or ID", () => {
    const alice = makeParty(ALICE, seededRandom("sn-a"));
    const bob = makeParty(BOB, seededRandom("sn-b"));
    const a = publicIdentity(alice.identity);
    const b = publicIdentity(bob.identity);
    const n = safetyNumber(ALICE, a, BOB, b);
    expect(n).toMatch(/^\d{60}$/);
    expect(safetyNumber(BOB, b, ALICE, a)).toBe(n);
    const other = publicIdentity(makeParty(BOB, seededRandom("sn-c")).identity);
    expect(safetyNumber(ALICE, a, BOB, other)).not.toBe(n);
    expect(safetyNumber(ALICE, a, MALLORY, b)).not.toBe(n);
  });
});

describe("envelope and padding", () => {
  test("padding buckets: a plaintext shows only its bucket", () => {
    expect(paddedSize(0)).toBe(64);
    expect(paddedSize(63)).toBe(64);
    expect(paddedSize(64)).toBe(128);
    expect(paddedSize(1000)).toBe(1024);
    expect(paddedSize(MAX_PLAINTEXT)).toBe(65024);
    expect(() => paddedSize(MAX_PLAINTEXT + 1)).toThrow(
      expect.objectContaining({ code: "TOO_LARGE" }),
    );
    for (const len of [0, 1, 63, 64, 500, 4095, 4096, MAX_PLAINTEXT]) {
      const p = new Uint8Array(len).fill(0x80);
      const padded = pad(p);
      expect(PAD_BUCKETS).toContain(padded.length);
      expect(toHex(unpad(padded))).toBe(toHex(p));
    }
    expect(() => unpad(new Uint8Array(64))).toThrow(expect.objectContaining({ code: "MALFORMED" }));
    expect(() => unpad(new Uint8Array(65))).toThrow(expect.objectContaining({ code: "MALFORMED" }));
    // The largest message fits one C2C (MAX_C2C_DATA = 65498) even with the prekey header.
    expect(65024 + PREKEY_OVERHEAD).toBeLessThanOrEqual(65498);
  });

  test("envelope sizes on the wire are bucket + overhead", () => {
    const alice = makeParty(ALICE);
    const bob = makeParty(BOB);
    const peer = startSession(alice.identity, empty(BOB), fetchedBundle(bob));
    const sizes = new Set<number>();
    for (const len of [0, 10, 63]) {
      sizes.add(encryptMessage(alice.identity, peer, new Uint8Array(len)).data.length);
    }
    expect([...sizes]).toEqual([64 + PREKEY_OVERHEAD]);
    expect(encryptMessage(alice.identity, peer, new Uint8Array(64)).data.length).toBe(
      128 + PREKEY_OVERHEAD,
    );
  });

  test("unknown version, type or KEM are refused; a tampered prefix fails", () => {
    const alice = makeParty(ALICE);
    const bob = makeParty(BOB);
    const peer = startSession(alice.identity, empty(BOB), fetchedBundle(bob));
    const { data } = encryptMessage(alice.identity, peer, enc.encode("hi"));
    const v = data.slice();
    v[2] = 2;
    expect(() => decodeEnvelope(v)).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
    const t = data.slice();
    t[3] = 9;
    expect(() => decodeEnvelope(t)).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
    const k = data.slice();
    k[4 + 168] = 1;
    expect(() => decodeEnvelope(k)).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
    expect(() => decodeEnvelope(data.subarray(0, 50))).toThrow(
      expect.objectContaining({ code: "MALFORMED" }),
    );
    // Flip one bit of the ratchet header's pn: authenticated, so decryption fails.
    const h = data.slice();
    h[4 + 169 + 35] = (h[4 + 169 + 35] as number) ^ 1;
    expect(() => decryptMessage(bob.identity, bob.preKeys, ALICE, empty(ALICE), h)).toThrow(
      expect.objectContaining({ code: "DECRYPT_FAILED" }),
    );
    expect(
      new TextDecoder().decode(
        decryptMessage(bob.identity, bob.preKeys, ALICE, empty(ALICE), data).plaintext,
      ),
    ).toBe("hi");
  });
});
