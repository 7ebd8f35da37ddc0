/**
 * test/vectors/e2e.json checked with code independent of src/e2e: noble's primitives
 * and the formulas of X3DH § 2.2/§ 3.3 and Double Ratchet § 5.2 written out here, and
 * the generator re-run (the file must be reproducible).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gcm } from "@noble/ciphers/aes.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { cat, hex, toHex } from "./helpers/bytes.ts";
import { buildVectors } from "./vectors/generate-e2e.ts";

const V = JSON.parse(readFileSync(join(import.meta.dir, "vectors/e2e.json"), "utf8"));
const utf8 = (s: string) => new TextEncoder().encode(s);
const idBytes = (id: string) => hex(id.replaceAll("-", ""));
const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const payload = (context: string, id: string, keyId: number, key: Uint8Array) =>
  cat(utf8(`backbone-e2e/1 ${context}`), Uint8Array.of(0), idBytes(id), u32(keyId), key);

describe("test/vectors/e2e.json", () => {
  test("is reproduced exactly by the generator", () => {
    expect(JSON.parse(JSON.stringify(buildVectors()))).toEqual(V);
  });

  test("KEYS messages: 0x18 || u32 timestamp || JSON body (docs/PROTOCOL.md § KEYS)", () => {
    const d = V.directory;
    const ts = hex("6955b900"); // 1767225600
    for (const name of [
      "publish_request",
      "publish_reply",
      "fetch_request",
      "fetch_reply",
      "count_request",
      "count_reply",
    ]) {
      const v = d[name];
      expect(toHex(cat(Uint8Array.of(0x18), ts, utf8(JSON.stringify(v.body))))).toBe(v.message);
    }
    expect(d.fetch_request.message).toBe(
      `186955b900${toHex(utf8('{"op":"fetch","client":"bob"}'))}`,
    );
    // docs/PROTOCOL.md § KEYS shows the same bytes.
    const doc = readFileSync(join(import.meta.dir, "../docs/PROTOCOL.md"), "utf8");
    const m = d.fetch_request.message as string;
    expect(doc).toContain(`${m.slice(0, 2)} ${m.slice(2, 10)} ${m.slice(10)}`);
    // The fetched bundle is the published one with one one-time prekey.
    const fetched = Buffer.from(d.fetch_reply.body.bundle, "base64").toString("hex");
    expect(fetched).toBe(V.bob_fetched_bundle);
    const published = Buffer.from(d.publish_request.body.bundle, "base64");
    expect(published.length).toBe(1 + 128 + 100 + 2 + 2 * 100);
    expect(published.subarray(0, 229).toString("hex")).toBe(fetched.slice(0, 458));
  });

  for (const name of ["alice", "bob"]) {
    test(`${name}: public keys and every signature (context || 0x00 || id || key_id || key)`, () => {
      const p = V[name];
      expect(toHex(ed25519.getPublicKey(hex(p.signing_secret)))).toBe(p.signing_public);
      expect(toHex(x25519.getPublicKey(hex(p.dh_secret)))).toBe(p.dh_public);
      const pub = hex(p.signing_public);
      const ok = (sig: string, msg: Uint8Array) =>
        ed25519.verify(hex(sig), msg, pub, { zip215: false });
      expect(ok(p.dh_signature, payload("identity-dh", p.id, 0, hex(p.dh_public)))).toBe(true);
      const spk = p.signed_prekey;
      expect(toHex(x25519.getPublicKey(hex(spk.secret)))).toBe(spk.public);
      expect(ok(spk.signature, payload("signed-prekey", p.id, spk.id, hex(spk.public)))).toBe(true);
      for (const k of p.one_time_prekeys) {
        expect(toHex(x25519.getPublicKey(hex(k.secret)))).toBe(k.public);
        expect(ok(k.signature, payload("one-time-prekey", p.id, k.id, hex(k.public)))).toBe(true);
      }
    });
  }

  test("the safety number, as libsignal's NumericFingerprintGenerator computes it", () => {
    const half = (p: { id: string; signing_public: string; dh_public: string }) => {
      const key = cat(hex(p.signing_public), hex(p.dh_public));
      let h = cat(Uint8Array.of(0, 0), key, utf8(p.id));
      for (let i = 0; i < 5200; i++) h = sha512(cat(h, key));
      let digits = "";
      for (let i = 0; i < 30; i += 5) {
        const n = h.subarray(i, i + 5).reduce((acc, b) => acc * 256 + b, 0);
        digits += String(n % 100000).padStart(5, "0");
      }
      return digits;
    };
    const [a, b] = [half(V.alice), half(V.bob)].sort();
    expect(V.safety_number).toBe(`${a}${b}`);
  });

  test("X3DH SK and the first root and chain keys", () => {
    const { alice, bob, x3dh } = V;
    const draw = (pub: string) =>
      hex(V.random_draws.alice.find((d: string) => toHex(x25519.getPublicKey(hex(d))) === pub));
    const ek = draw(x3dh.alice_ephemeral_public);
    const opk = bob.one_time_prekeys.find((k: { id: number }) => k.id === x3dh.one_time_prekey_id);
    const spk = hex(bob.signed_prekey.public);
    const dhs = [
      x25519.getSharedSecret(hex(alice.dh_secret), spk),
      x25519.getSharedSecret(ek, hex(bob.dh_public)),
      x25519.getSharedSecret(ek, spk),
      x25519.getSharedSecret(ek, hex(opk.public)),
    ];
    const sk = hkdf(
      sha256,
      cat(new Uint8Array(32).fill(0xff), ...dhs),
      new Uint8Array(32),
      utf8("backbone-e2e/1 X3DH X25519 SHA-256"),
      32,
    );
    // Bob's side agrees.
    const bobDhs = [
      x25519.getSharedSecret(hex(bob.signed_prekey.secret), hex(alice.dh_public)),
      x25519.getSharedSecret(hex(bob.dh_secret), x25519.getPublicKey(ek)),
      x25519.getSharedSecret(hex(bob.signed_prekey.secret), x25519.getPublicKey(ek)),
      x25519.getSharedSecret(hex(opk.secret), x25519.getPublicKey(ek)),
    ];
    expect(bobDhs.map(toHex)).toEqual(dhs.map(toHex));
    const ratchet = draw(x3dh.alice_first_ratchet_public);
    const out = hkdf(
      sha256,
      x25519.getSharedSecret(ratchet, spk),
      sk,
      utf8("backbone-e2e/1 ratchet"),
      64,
    );
    expect(toHex(out.subarray(0, 32))).toBe(x3dh.root_key_after_init);
    expect(toHex(out.subarray(32))).toBe(x3dh.sending_chain_key_after_init);
  });

  test("every message: AD, KDF_CK, message keys, AES-256-GCM, padding", () => {
    for (const m of V.messages) {
      const [from, to] = m.from === "alice" ? [V.alice, V.bob] : [V.bob, V.alice];
      const ad = cat(
        utf8("backbone-e2e/1"),
        Uint8Array.of(0),
        idBytes(from.id),
        idBytes(to.id),
        hex(from.signing_public),
        hex(from.dh_public),
        hex(to.signing_public),
        hex(to.dh_public),
      );
      expect(toHex(ad)).toBe(m.associated_data);
      const mk = hmac(sha256, hex(m.chain_key), Uint8Array.of(1));
      expect(toHex(mk)).toBe(m.message_key);
      const keys = hkdf(sha256, mk, new Uint8Array(32), utf8("backbone-e2e/1 message keys"), 44);
      expect(toHex(keys.subarray(0, 32))).toBe(m.aes_key);
      expect(toHex(keys.subarray(32))).toBe(m.nonce);
      const env = hex(m.envelope);
      expect(toHex(env.subarray(0, 3))).toBe("ffe201");
      const prekey = env[3] === 1;
      const headerAt = prekey ? 4 + 169 : 4;
      expect(toHex(env.subarray(headerAt, headerAt + 32))).toBe(m.header.dh);
      const prefix = env.subarray(0, headerAt + 40);
      const padded = gcm(keys.subarray(0, 32), keys.subarray(32), cat(ad, prefix)).decrypt(
        env.subarray(headerAt + 40),
      );
      let end = padded.length - 1;
      while (padded[end] === 0) end--;
      expect(padded[end]).toBe(0x80);
      expect(new TextDecoder().decode(padded.subarray(0, end))).toBe(m.plaintext);
      expect([64, 128, 256]).toContain(padded.length);
    }
  });

  test("rollover: the link, the chain and the envelope (docs/E2E.md § Key rollover)", () => {
    const r = V.rollover;
    const a = V.alice;
    const n = r.new_identity;
    // The new identity is an ordinary one: its DH key signed in context identity-dh.
    expect(toHex(ed25519.getPublicKey(hex(n.signing_secret)))).toBe(n.signing_public);
    expect(toHex(x25519.getPublicKey(hex(n.dh_secret)))).toBe(n.dh_public);
    const oldIk = cat(hex(a.signing_public), hex(a.dh_public));
    const newIk = cat(hex(n.signing_public), hex(n.dh_public));
    const signed = payload("rollover", a.id, 0, cat(oldIk, newIk));
    const sig = hex(r.link_signature);
    // Signed by the OLD signing key (Ed25519 is deterministic: the same bytes again).
    expect(toHex(ed25519.sign(signed, hex(a.signing_secret)))).toBe(r.link_signature);
    expect(ed25519.verify(sig, signed, hex(a.signing_public), { zip215: false })).toBe(true);
    // The same signature in another context or for another ID: no.
    expect(
      ed25519.verify(
        sig,
        payload("identity-dh", a.id, 0, cat(oldIk, newIk)),
        hex(a.signing_public),
      ),
    ).toBe(false);
    expect(
      ed25519.verify(
        sig,
        payload("rollover", V.bob.id, 0, cat(oldIk, newIk)),
        hex(a.signing_public),
      ),
    ).toBe(false);
    expect(r.chain).toBe(toHex(cat(Uint8Array.of(1), oldIk, newIk, sig)));
    expect(r.envelope).toBe(toHex(cat(hex("ffe20103"), newIk, hex(n.dh_signature), hex(r.chain))));
  });

  test("reset request: digest and signed body (docs/E2E.md § Session reset)", () => {
    const v = V.reset;
    const b = V.bob;
    const failed = hex(V.messages[0].envelope);
    expect(v.failed_envelope_digest).toBe(toHex(sha256(failed).subarray(0, 16)));
    const digest = hex(v.failed_envelope_digest);
    const body = cat(idBytes(V.alice.id), Uint8Array.of(0, 1), digest);
    const sig = ed25519.sign(payload("session-reset", b.id, 0, body), hex(b.signing_secret));
    expect(v.request).toBe(
      toHex(
        cat(
          hex("ffe20104"),
          hex(b.signing_public),
          hex(b.dh_public),
          hex(b.dh_signature),
          Uint8Array.of(0, 1),
          digest,
          sig,
        ),
      ),
    );
  });
});
