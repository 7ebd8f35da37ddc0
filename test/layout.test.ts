/**
 * The plaintext handshake layouts (docs/PROTOCOL.md § Handshake): the challenge
 * `key_size || server_spki || challenge_data` and the response split.
 */
import { describe, expect, test } from "bun:test";
import { WireError } from "../src/errors.ts";
import {
  ID_BYTES,
  MAX_FRAME_PAYLOAD,
  MAX_RESPONSE_PAYLOAD,
  MIN_CHALLENGE_SIZE,
  SIGNATURE_LENGTHS,
  TAG_BYTES,
} from "../src/wire/constants.ts";
import {
  decodeChallenge,
  encodeChallenge,
  sealedResponseLength,
  splitResponse,
} from "../src/wire/handshake.ts";
import { cat, u16 } from "./helpers/bytes.ts";
import { expectError, thrown } from "./helpers/errors.ts";
import { Prng } from "./helpers/prng.ts";

describe("challenge", () => {
  test("round trip with random key and data lengths (seed 40)", () => {
    const rng = new Prng(40);
    for (let i = 0; i < 200; i++) {
      const spki = rng.bytes(rng.int(1, 600));
      const data = rng.bytes(rng.int(MIN_CHALLENGE_SIZE, i < 3 ? 4000 : 300));
      const payload = encodeChallenge(spki, data);
      expect(payload).toEqual(cat(u16(spki.length), spki, data));
      const c = decodeChallenge(payload);
      expect(c.serverSpki).toEqual(spki);
      expect(c.challengeData).toEqual(data);
      expect(c.serverEphemeral).toEqual(data.subarray(0, 32));
    }
  });

  test("every truncation shorter than 2 + key + 64 is BAD_CHALLENGE (seed 41)", () => {
    const rng = new Prng(41);
    for (let i = 0; i < 10; i++) {
      const spki = rng.bytes(rng.int(1, 300));
      const data = rng.bytes(rng.int(MIN_CHALLENGE_SIZE, 200));
      const payload = encodeChallenge(spki, data);
      const min = 2 + spki.length + MIN_CHALLENGE_SIZE;
      for (let n = 0; n < payload.length; n++) {
        const prefix = payload.subarray(0, n);
        if (n < min) {
          expectError(
            thrown(() => decodeChallenge(prefix)),
            WireError,
            { code: "BAD_CHALLENGE" },
          );
        } else {
          expect(decodeChallenge(prefix).challengeData.length).toBe(n - 2 - spki.length);
        }
      }
    }
  });

  test("an empty key, short data or an oversized challenge is refused", () => {
    const data = new Uint8Array(MIN_CHALLENGE_SIZE);
    expectError(
      thrown(() => decodeChallenge(cat(u16(0), data))),
      WireError,
      { code: "BAD_CHALLENGE" },
    );
    expectError(
      thrown(() => encodeChallenge(new Uint8Array(0), data)),
      WireError,
      { code: "BAD_CHALLENGE" },
    );
    expectError(
      thrown(() => encodeChallenge(new Uint8Array(1), data.subarray(1))),
      WireError,
      { code: "BAD_CHALLENGE" },
    );
    const spki = new Uint8Array(294);
    const fits = new Uint8Array(MAX_FRAME_PAYLOAD - 2 - spki.length);
    expect(encodeChallenge(spki, fits).length).toBe(MAX_FRAME_PAYLOAD);
    expectError(
      thrown(() => encodeChallenge(spki, new Uint8Array(fits.length + 1))),
      WireError,
      { code: "BAD_CHALLENGE" },
    );
  });
});

describe("response", () => {
  test("only modulus + 16 + signature + 16 is a valid length, for every length", () => {
    for (const modulus of [256, 384, 512]) {
      const valid = new Set(SIGNATURE_LENGTHS.map((s) => modulus + ID_BYTES + s + TAG_BYTES));
      const buffer = new Uint8Array(MAX_RESPONSE_PAYLOAD + 2);
      for (let n = 0; n <= MAX_RESPONSE_PAYLOAD + 1; n++) {
        const payload = buffer.subarray(0, n);
        if (valid.has(n)) {
          const parts = splitResponse(payload, modulus);
          expect(parts.block.length).toBe(modulus);
          expect(parts.sealed.length).toBe(sealedResponseLength(parts.signatureBytes));
          expect(SIGNATURE_LENGTHS).toContain(parts.signatureBytes);
        } else {
          expectError(
            thrown(() => splitResponse(payload, modulus)),
            WireError,
            { code: "BAD_RESPONSE" },
          );
        }
      }
    }
  });

  test("the block and the sealed part are the two halves, in order", () => {
    const payload = new Uint8Array(256 + 16 + 384 + 16).map((_, i) => i & 0xff);
    const { block, sealed, signatureBytes } = splitResponse(payload, 256);
    expect(signatureBytes).toBe(384);
    expect(block).toEqual(payload.subarray(0, 256));
    expect(sealed).toEqual(payload.subarray(256));
  });
});
