/**
 * Session reset pieces (docs/E2E.md § Session reset): the request's signature binds the
 * requester, the sender it is addressed to and the digests; the sent log is bounded and
 * gives each message back once.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SENT_KEPT_BYTES, SENT_KEPT_PER_PEER, SENT_KEPT_SECONDS } from "../src/e2e/constants.ts";
import { generateIdentity } from "../src/e2e/keys.ts";
import { decodeResetEnvelope, encodeResetEnvelope, messageDigest } from "../src/e2e/reset.ts";
import { recordSent, takeSent } from "../src/e2e/sent.ts";
import { E2EState } from "../src/e2e/state.ts";
import { ALICE, BOB, MALLORY } from "./helpers/e2e.ts";

const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});
const code = (c: string) => expect.objectContaining({ code: c });

describe("reset requests", () => {
  test("signed for the requester and the addressed sender; tampering refused", () => {
    const bob = generateIdentity(BOB);
    const digests = [messageDigest(Uint8Array.of(1, 2, 3)), messageDigest(Uint8Array.of(4))];
    const env = encodeResetEnvelope(bob, ALICE, digests);
    expect(decodeResetEnvelope(env, BOB, ALICE).digests).toEqual(digests);
    // Addressed to alice: mallory cannot take it as a request to her.
    expect(() => decodeResetEnvelope(env, BOB, MALLORY)).toThrow(code("BAD_SIGNATURE"));
    // Claimed by another sender (the server rewriting the C2C sender): the identity is bob's.
    expect(() => decodeResetEnvelope(env, MALLORY, ALICE)).toThrow(code("BAD_SIGNATURE"));
    // A digest changed: the signature no longer verifies.
    const t = env.slice();
    t[140] = (t[140] as number) ^ 1;
    expect(() => decodeResetEnvelope(t, BOB, ALICE)).toThrow(code("BAD_SIGNATURE"));
    // Cut, or a count that does not match the length.
    expect(() => decodeResetEnvelope(env.subarray(0, env.length - 1), BOB, ALICE)).toThrow(
      code("MALFORMED"),
    );
    const c = env.slice();
    c[133] = 3;
    expect(() => decodeResetEnvelope(c, BOB, ALICE)).toThrow(code("MALFORMED"));
  });
});

describe("the sent log", () => {
  test("bounded per peer, in bytes and in age; each message given back once", () => {
    const dir = mkdtempSync(join(tmpdir(), "backbone-e2e-sent-"));
    made.push(dir);
    let now = 5_000_000;
    const st = E2EState.open(join(dir, "s"), ALICE, { now: () => now });
    const env = (i: number) => Uint8Array.of(0xff, 0xe2, i >> 8, i & 0xff);
    st.transaction(() => {
      for (let i = 0; i < SENT_KEPT_PER_PEER + 10; i++)
        recordSent(st, BOB, new Uint8Array(10), env(i));
    });
    const bobs = st.sent.filter((e) => e.peer === BOB);
    // The newest kept, oldest first.
    expect(bobs).toHaveLength(SENT_KEPT_PER_PEER);
    expect(bobs[0]?.digest).toBe(messageDigest(env(10)));
    // Bytes: a large message pushes the oldest out.
    st.transaction(() => recordSent(st, MALLORY, new Uint8Array(SENT_KEPT_BYTES - 100), env(9999)));
    expect(st.sent.reduce((n, e) => n + e.plaintext.length, 0)).toBeLessThanOrEqual(
      SENT_KEPT_BYTES,
    );
    expect(st.sent.at(-1)?.peer).toBe(MALLORY);
    // Given back once, and kept across a reload until then.
    const d = messageDigest(env(9999));
    st.close();
    const again = E2EState.open(join(dir, "s"), ALICE, { now: () => now });
    expect(again.transaction(() => takeSent(again, MALLORY, [d]))).toHaveLength(1);
    expect(again.transaction(() => takeSent(again, MALLORY, [d]))).toHaveLength(0);
    // Age: older than SENT_KEPT_SECONDS is dropped at the next record.
    now += SENT_KEPT_SECONDS;
    again.transaction(() => recordSent(again, BOB, Uint8Array.of(1), env(1)));
    expect(again.sent).toHaveLength(1);
    again.close();
  });
});
