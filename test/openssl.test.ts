/**
 * Interoperability with OpenSSL (docs/PROTOCOL.md § Keys and primitives): our keys,
 * PSS signatures, OAEP blocks and fingerprints against the `openssl` command line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromPem, toPem } from "../src/crypto/pem.ts";
import { fingerprint, randomBytes } from "../src/crypto/primitives.ts";
import {
  generateRsaKeyPair,
  type RsaKeyPairDer,
  RsaPrivateKey,
  RsaPublicKey,
} from "../src/crypto/rsa.ts";
import { KeyError } from "../src/errors.ts";
import { expectError, rejected, thrown } from "./helpers/errors.ts";

let dir: string;
let pair: RsaKeyPairDer;
let key: RsaPrivateKey;
let privPath: string;
let pubPath: string;

/** Runs openssl; returns its exit code, stdout bytes and stderr text. */
function openssl(args: string[], stdin?: Uint8Array) {
  const r = Bun.spawnSync(["openssl", ...args], {
    stdin: stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode, stdout: new Uint8Array(r.stdout), stderr: r.stderr.toString() };
}

/** Runs openssl and fails the test unless it exits 0. */
function ok(args: string[], stdin?: Uint8Array): Uint8Array {
  const r = openssl(args, stdin);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function file(name: string, data: Uint8Array | string): string {
  const path = join(dir, name);
  writeFileSync(path, data, { mode: 0o600 });
  return path;
}

/** An RSA key made by `openssl genpkey`, as PKCS#8 PEM text. */
function opensslKey(name: string, ...opts: string[]): string {
  const path = join(dir, name);
  const pkeyopts = opts.flatMap((o) => ["-pkeyopt", o]);
  ok(["genpkey", "-algorithm", "RSA", ...pkeyopts, "-out", path]);
  return readFileSync(path, "utf8");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "backbone-openssl-"));
  pair = await generateRsaKeyPair(2048);
  key = await RsaPrivateKey.fromPkcs8(pair.privatePkcs8);
  privPath = file("priv.pem", toPem("PRIVATE KEY", pair.privatePkcs8));
  pubPath = file("pub.pem", toPem("PUBLIC KEY", pair.publicSpki));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("our keys in OpenSSL", () => {
  test("the private and public PEM files load", () => {
    expect(openssl(["pkey", "-in", privPath, "-noout"]).code).toBe(0);
    expect(openssl(["pkey", "-pubin", "-in", pubPath, "-noout"]).code).toBe(0);
    // OpenSSL derives the same public key from our private key.
    const spki = ok(["pkey", "-in", privPath, "-pubout", "-outform", "DER"]);
    expect(spki).toEqual(pair.publicSpki);
    expect(key.publicKey.spki).toEqual(pair.publicSpki);
  });

  test("a garbled PEM file does not load (the check can fail)", () => {
    const bad = file("bad.pem", toPem("PRIVATE KEY", pair.privatePkcs8.subarray(0, 100)));
    expect(openssl(["pkey", "-in", bad, "-noout"]).code).not.toBe(0);
  });

  test("our RSA-PSS signature verifies with openssl dgst (salt 32)", async () => {
    const data = randomBytes(300);
    const sig = await key.sign(data);
    expect(sig.length).toBe(256);
    const args = (dataPath: string) => [
      "dgst",
      "-sha256",
      "-sigopt",
      "rsa_padding_mode:pss",
      "-sigopt",
      "rsa_pss_saltlen:32",
      "-verify",
      pubPath,
      "-signature",
      file("sig.bin", sig),
      dataPath,
    ];
    const good = openssl(args(file("data.bin", data)));
    expect(good.code).toBe(0);
    expect(new TextDecoder().decode(good.stdout)).toContain("Verified OK");
    const other = data.slice();
    other[0] = (other[0] as number) ^ 1;
    expect(openssl(args(file("other.bin", other))).code).not.toBe(0);
  });

  test("an OpenSSL RSA-PSS signature (salt 32) verifies with RsaPublicKey.verify", async () => {
    const data = randomBytes(100);
    const sig = ok([
      "dgst",
      "-sha256",
      "-sign",
      privPath,
      "-sigopt",
      "rsa_padding_mode:pss",
      "-sigopt",
      "rsa_pss_saltlen:32",
      file("data2.bin", data),
    ]);
    expect(await key.publicKey.verify(data, sig)).toBe(true);
    expect(await key.publicKey.verify(data.subarray(1), sig)).toBe(false);
  });

  test("OAEP-SHA256 from openssl pkeyutl decrypts with RsaPrivateKey.decrypt", async () => {
    const data = randomBytes(64);
    const block = ok([
      "pkeyutl",
      "-encrypt",
      "-pubin",
      "-inkey",
      pubPath,
      "-pkeyopt",
      "rsa_padding_mode:oaep",
      "-pkeyopt",
      "rsa_oaep_md:sha256",
      "-pkeyopt",
      "rsa_mgf1_md:sha256",
      "-in",
      file("plain.bin", data),
    ]);
    expect(block.length).toBe(256);
    expect(await key.decrypt(block)).toEqual(data);
  });

  test("our OAEP block decrypts with openssl pkeyutl", async () => {
    const data = randomBytes(64);
    const block = await key.publicKey.encrypt(data);
    const plain = ok([
      "pkeyutl",
      "-decrypt",
      "-inkey",
      privPath,
      "-pkeyopt",
      "rsa_padding_mode:oaep",
      "-pkeyopt",
      "rsa_oaep_md:sha256",
      "-pkeyopt",
      "rsa_mgf1_md:sha256",
      "-in",
      file("block.bin", block),
    ]);
    expect(plain).toEqual(data);
  });

  test("a public key imported for verifying only encrypts all the same (its OAEP key on first use)", async () => {
    // The server imports client keys with "verify" (one WebCrypto key, not two); an
    // encrypt on such a key must still work, and openssl must decrypt it.
    const verifyOnly = await RsaPublicKey.fromSpki(key.publicKey.spki, "verify");
    const data = randomBytes(64);
    const blocks = await Promise.all([verifyOnly.encrypt(data), verifyOnly.encrypt(data)]);
    for (const block of blocks) {
      const plain = ok([
        "pkeyutl",
        "-decrypt",
        "-inkey",
        privPath,
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
        "-in",
        file("block-verify-only.bin", block),
      ]);
      expect(plain).toEqual(data);
    }
    const signature = await key.sign(data);
    expect(await verifyOnly.verify(data, signature)).toBe(true);
  });

  test("the modulus is openssl's, and is held once: a view of the SPKI bytes", async () => {
    for (const k of [key.publicKey, await RsaPublicKey.fromSpki(key.publicKey.spki, "verify")]) {
      const text = new TextDecoder().decode(
        ok(["rsa", "-pubin", "-in", pubPath, "-noout", "-modulus"]),
      );
      expect(Buffer.from(k.modulus).toString("hex").toUpperCase()).toBe(
        text.trim().replace(/^Modulus=/, ""),
      );
      expect(k.modulus.buffer).toBe(k.spki.buffer);
    }
  });

  test("fingerprint equals SHA256: + unpadded base64 of openssl's SPKI digest", () => {
    const der = ok(["pkey", "-pubin", "-in", pubPath, "-outform", "DER"]);
    const digest = ok(["dgst", "-sha256", "-binary"], der);
    const expected = `SHA256:${Buffer.from(digest).toString("base64").replace(/=+$/, "")}`;
    expect(digest.length).toBe(32);
    expect(fingerprint(pair.publicSpki)).toBe(expected);
    expect(key.publicKey.fingerprint).toBe(expected);
    expect(expected).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe("OpenSSL keys in backbone", () => {
  test("a key from openssl genpkey (PKCS#8 PEM) imports", async () => {
    const pem = opensslKey("genpkey.pem", "rsa_keygen_bits:2048");
    const imported = await RsaPrivateKey.fromPkcs8(fromPem(pem, "PRIVATE KEY"));
    expect(imported.publicKey.bits).toBe(2048);
    const spki = ok(["pkey", "-in", join(dir, "genpkey.pem"), "-pubout", "-outform", "DER"]);
    expect(imported.publicKey.spki).toEqual(spki);
    const data = randomBytes(32);
    expect(await imported.publicKey.verify(data, await imported.sign(data))).toBe(true);
  });

  test("a 1024-bit key is refused with KeyError", async () => {
    const pem = opensslKey("small.pem", "rsa_keygen_bits:1024");
    const pkcs8 = fromPem(pem, "PRIVATE KEY");
    expectError(await rejected(RsaPrivateKey.fromPkcs8(pkcs8)), KeyError, { code: "KEY_SIZE" });
    const spki = ok(["pkey", "-in", join(dir, "small.pem"), "-pubout", "-outform", "DER"]);
    expectError(await rejected(RsaPublicKey.fromSpki(spki)), KeyError, { code: "KEY_SIZE" });
    expectError(await rejected(generateRsaKeyPair(1024)), KeyError, { code: "KEY_SIZE" });
  });

  test("a key with e = 3 is refused with KeyError", async () => {
    const pem = opensslKey("e3.pem", "rsa_keygen_bits:2048", "rsa_keygen_pubexp:3");
    expect(
      new TextDecoder().decode(ok(["pkey", "-in", join(dir, "e3.pem"), "-noout", "-text"])),
    ).toContain("publicExponent: 3");
    const err = await rejected(RsaPrivateKey.fromPkcs8(fromPem(pem, "PRIVATE KEY")));
    expectError(err, KeyError, { code: "KEY_INVALID" });
    const spki = ok(["pkey", "-in", join(dir, "e3.pem"), "-pubout", "-outform", "DER"]);
    expectError(await rejected(RsaPublicKey.fromSpki(spki)), KeyError, { code: "KEY_INVALID" });
  });

  test("a PKCS#1 (RSA PRIVATE KEY) file is refused with a conversion hint", () => {
    const pkcs1 = new TextDecoder().decode(ok(["pkey", "-in", privPath, "-traditional"]));
    expect(pkcs1).toContain("-----BEGIN RSA PRIVATE KEY-----");
    const err = thrown(() => fromPem(pkcs1, "PRIVATE KEY"));
    expectError(err, KeyError, { code: "PEM_MISSING" });
    expect((err as Error).message).toContain("openssl pkcs8 -topk8 -nocrypt");
  });
});
