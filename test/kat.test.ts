/**
 * Known-answer tests of the primitives (docs/PROTOCOL.md § Keys and primitives):
 * RFC 5869 HKDF-SHA256 test cases 1–3 and RFC 7748 X25519 (§ 5.2 and § 6.1).
 */
import { describe, expect, test } from "bun:test";
import { hkdfSha256, sha256, x25519Public, x25519Shared } from "../src/crypto/primitives.ts";
import { HandshakeError } from "../src/errors.ts";
import { ascii, hex, toHex } from "./helpers/bytes.ts";
import { expectError, thrown } from "./helpers/errors.ts";
import { LOW_ORDER_POINTS } from "./helpers/x25519.ts";

const range = (from: number, to: number) => new Uint8Array(to - from).map((_, i) => from + i);

describe("HKDF-SHA256 (RFC 5869, appendix A)", () => {
  test("test case 1: basic", () => {
    const okm = hkdfSha256(
      hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
      hex("000102030405060708090a0b0c"),
      hex("f0f1f2f3f4f5f6f7f8f9"),
      42,
    );
    expect(toHex(okm)).toBe(
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );
  });

  test("test case 2: longer inputs and outputs", () => {
    const okm = hkdfSha256(range(0x00, 0x50), range(0x60, 0xb0), range(0xb0, 0x100), 82);
    expect(toHex(okm)).toBe(
      "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c" +
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71" +
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    );
  });

  test("test case 3: zero-length salt and info", () => {
    const okm = hkdfSha256(
      hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
      new Uint8Array(0),
      new Uint8Array(0),
      42,
    );
    expect(toHex(okm)).toBe(
      "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    );
  });
});

describe("SHA-256 (FIPS 180-2)", () => {
  test('"abc" and the concatenation of parts', () => {
    const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    expect(toHex(sha256(ascii("abc")))).toBe(abc);
    expect(toHex(sha256(ascii("a"), new Uint8Array(0), ascii("bc")))).toBe(abc);
  });
});

describe("X25519 (RFC 7748)", () => {
  test("§ 5.2 scalar multiplication, first vector", () => {
    const out = x25519Shared(
      hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
      hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
    );
    expect(toHex(out)).toBe("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
  });

  test("§ 5.2 scalar multiplication, second vector (u with bit 255 set)", () => {
    const out = x25519Shared(
      hex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
      hex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
    );
    expect(toHex(out)).toBe("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
  });

  test("§ 5.2 iterated: 1 and 1000 iterations from k = u = 9", () => {
    let k: Uint8Array = new Uint8Array(32);
    k[0] = 9;
    let u: Uint8Array = k.slice();
    for (let i = 1; i <= 1000; i++) {
      const next = x25519Shared(k, u);
      u = k;
      k = next;
      if (i === 1) {
        expect(toHex(k)).toBe("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
      }
    }
    expect(toHex(k)).toBe("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
  });

  test("§ 6.1 Diffie-Hellman: Alice and Bob", () => {
    const a = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const b = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    const alicePublic = x25519Public(a);
    const bobPublic = x25519Public(b);
    expect(toHex(alicePublic)).toBe(
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    expect(toHex(bobPublic)).toBe(
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    );
    const k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    expect(toHex(x25519Shared(a, bobPublic))).toBe(k);
    expect(toHex(x25519Shared(b, alicePublic))).toBe(k);
  });

  test("low-order and malformed peer keys are refused at stage key-exchange", () => {
    const secret = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    for (const point of LOW_ORDER_POINTS) {
      expectError(
        thrown(() => x25519Shared(secret, point.bytes)),
        HandshakeError,
        { stage: "key-exchange", code: "LOW_ORDER_KEY" },
      );
    }
    for (const length of [0, 31, 33]) {
      expectError(
        thrown(() => x25519Shared(secret, new Uint8Array(length))),
        HandshakeError,
        { stage: "key-exchange", code: "BAD_EPHEMERAL" },
      );
    }
  });
});
