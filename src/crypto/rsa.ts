/**
 * RSA identity keys (docs/PROTOCOL.md § Keys and primitives): generation, PEM, and
 * the four operations — RSA-PSS (SHA-256, MGF1-SHA-256, salt 32) to authenticate a
 * client, RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) to carry key material to the
 * server. All run through WebCrypto (BoringSSL: constant-time, blinded, off the
 * event loop). A key's DER is imported once per algorithm, since WebCrypto keys are
 * bound to one algorithm.
 */
import { KeyError } from "../errors.ts";
import { DEFAULT_RSA_BITS, RSA_BITS, type RsaBits } from "../wire/constants.ts";
import { fingerprint } from "./primitives.ts";

const PSS = { name: "RSA-PSS", hash: "SHA-256" } as const;
const OAEP = { name: "RSA-OAEP", hash: "SHA-256" } as const;
const PSS_SALT_BYTES = 32;
const PUBLIC_EXPONENT = new Uint8Array([1, 0, 1]);

const subtle = crypto.subtle;

type JsonWebKey = import("node:crypto").webcrypto.JsonWebKey;

/** WebCrypto's types want ArrayBuffer-backed views; ours never use SharedArrayBuffer. */
function bs(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}

/** A freshly generated key pair as DER: PKCS#8 private, SPKI public. */
export interface RsaKeyPairDer {
  privatePkcs8: Uint8Array;
  publicSpki: Uint8Array;
}

/** Generates an RSA key pair (e = 65537) of 2048, 3072 (default) or 4096 bits. */
export async function generateRsaKeyPair(bits: number = DEFAULT_RSA_BITS): Promise<RsaKeyPairDer> {
  checkBits(bits);
  const pair = await subtle.generateKey(
    { ...PSS, modulusLength: bits, publicExponent: PUBLIC_EXPONENT },
    true,
    ["sign", "verify"],
  );
  const [pkcs8, spki] = await Promise.all([
    subtle.exportKey("pkcs8", pair.privateKey),
    subtle.exportKey("spki", pair.publicKey),
  ]);
  return { privatePkcs8: new Uint8Array(pkcs8), publicSpki: new Uint8Array(spki) };
}

function checkBits(bits: number): asserts bits is RsaBits {
  if (!(RSA_BITS as readonly number[]).includes(bits)) {
    throw new KeyError(
      "KEY_SIZE",
      `RSA key size must be one of ${RSA_BITS.join(", ")} bits, not ${bits}`,
    );
  }
}

function base64urlToBytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64url"));
}

/** An RSA public key ready to verify PSS signatures and encrypt with OAEP. */
export class RsaPublicKey {
  /** SubjectPublicKeyInfo DER, as sent on the wire. */
  readonly spki: Uint8Array;
  /** Modulus, big-endian, exactly `modulusBytes` long. */
  readonly modulus: Uint8Array;
  readonly bits: RsaBits;
  readonly fingerprint: string;
  readonly #verifyKey: CryptoKey;
  /** Imported on first use when the key was imported for verifying only. */
  #encryptKey: CryptoKey | Promise<CryptoKey> | null;

  private constructor(
    spki: Uint8Array,
    modulus: Uint8Array,
    verify: CryptoKey,
    encrypt: CryptoKey | null,
  ) {
    this.spki = spki;
    this.modulus = modulus;
    this.bits = (modulus.length * 8) as RsaBits;
    this.fingerprint = fingerprint(spki);
    this.#verifyKey = verify;
    this.#encryptKey = encrypt;
  }

  /** Modulus length in bytes: the length of every signature and OAEP block. */
  get modulusBytes(): number {
    return this.modulus.length;
  }

  /**
   * Imports an SPKI DER key. Throws `KeyError` (`KEY_INVALID`, `KEY_SIZE`) unless it is
   * RSA with e = 65537 and a 2048-, 3072- or 4096-bit modulus. `uses`: "verify" imports
   * it for PSS verification only — the OAEP key is then imported on the first
   * `encrypt` — which is what the server keeps for each client: one WebCrypto key
   * instead of two (≈ 1 KiB less per cached client key, docs/BENCHMARKS.md § Memory).
   */
  static async fromSpki(
    spki: Uint8Array,
    uses: "verify" | "verify+encrypt" = "verify+encrypt",
  ): Promise<RsaPublicKey> {
    const der = new Uint8Array(spki);
    let verify: CryptoKey;
    let encrypt: CryptoKey | null = null;
    let jwk: JsonWebKey;
    try {
      if (uses === "verify") verify = await subtle.importKey("spki", der, PSS, true, ["verify"]);
      else
        [verify, encrypt] = await Promise.all([
          subtle.importKey("spki", der, PSS, true, ["verify"]),
          subtle.importKey("spki", der, OAEP, false, ["encrypt"]),
        ]);
      jwk = await subtle.exportKey("jwk", verify);
    } catch (cause) {
      throw new KeyError("KEY_INVALID", "not an RSA public key (SPKI DER expected)", { cause });
    }
    return new RsaPublicKey(der, inDer(der, checkJwk(jwk)), verify, encrypt);
  }

  /** Verifies an RSA-PSS signature (salt 32) over `data`. Never throws for a bad signature. */
  async verify(data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (signature.length !== this.modulusBytes) return false;
    try {
      return await subtle.verify(
        { name: "RSA-PSS", saltLength: PSS_SALT_BYTES },
        this.#verifyKey,
        bs(signature),
        bs(data),
      );
    } catch {
      return false;
    }
  }

  /** RSA-OAEP encryption of `data` (empty label): one block of `modulusBytes`. */
  async encrypt(data: Uint8Array): Promise<Uint8Array> {
    this.#encryptKey ??= subtle
      .importKey("spki", bs(this.spki), OAEP, false, ["encrypt"])
      .catch((cause) => {
        throw new KeyError("KEY_INVALID", "RSA key cannot be used for OAEP encryption", { cause });
      });
    const key = await this.#encryptKey;
    this.#encryptKey = key;
    return new Uint8Array(await subtle.encrypt({ name: "RSA-OAEP" }, key, bs(data)));
  }

  /** True when `block` read as a big-endian integer is below the modulus. */
  isBelowModulus(block: Uint8Array): boolean {
    if (block.length !== this.modulus.length) return false;
    for (let i = 0; i < block.length; i++) {
      const a = block[i] as number;
      const b = this.modulus[i] as number;
      if (a !== b) return a < b;
    }
    return false;
  }
}

/**
 * `modulus` as a view of the same bytes inside `der` when they are there — an SPKI DER
 * of an RSA key with e = 65537 ends with the modulus followed by `02 03 01 00 01`
 * (INTEGER 65537) — so that a kept key holds its modulus once (256–512 bytes less per
 * key the server caches for a client; docs/BENCHMARKS.md § Memory); else `modulus`.
 */
function inDer(der: Uint8Array, modulus: Uint8Array): Uint8Array {
  const end = der.length - 5;
  const start = end - modulus.length;
  if (start < 0) return modulus;
  const view = der.subarray(start, end);
  for (let i = 0; i < modulus.length; i++) if (view[i] !== modulus[i]) return modulus;
  return view;
}

function checkJwk(jwk: JsonWebKey): Uint8Array {
  if (jwk.kty !== "RSA" || !jwk.n || jwk.e !== "AQAB") {
    throw new KeyError("KEY_INVALID", "RSA key must use the public exponent 65537");
  }
  const modulus = base64urlToBytes(jwk.n);
  const bits = modulus.length * 8;
  if (!(RSA_BITS as readonly number[]).includes(bits) || ((modulus[0] as number) & 0x80) === 0) {
    throw new KeyError("KEY_SIZE", `RSA key size must be one of ${RSA_BITS.join(", ")} bits`);
  }
  return modulus;
}

/** An RSA private key ready to sign with PSS and decrypt OAEP, with its public half. */
export class RsaPrivateKey {
  /** PKCS#8 DER of the private key. */
  readonly pkcs8: Uint8Array;
  readonly publicKey: RsaPublicKey;
  readonly #signKey: CryptoKey;
  readonly #decryptKey: CryptoKey;

  private constructor(
    pkcs8: Uint8Array,
    publicKey: RsaPublicKey,
    sign: CryptoKey,
    decrypt: CryptoKey,
  ) {
    this.pkcs8 = pkcs8;
    this.publicKey = publicKey;
    this.#signKey = sign;
    this.#decryptKey = decrypt;
  }

  /** Imports a PKCS#8 DER key; throws `KeyError` as `RsaPublicKey.fromSpki` does. */
  static async fromPkcs8(pkcs8: Uint8Array): Promise<RsaPrivateKey> {
    const der = new Uint8Array(pkcs8);
    let sign: CryptoKey;
    let decrypt: CryptoKey;
    let jwk: JsonWebKey;
    try {
      [sign, decrypt] = await Promise.all([
        subtle.importKey("pkcs8", der, PSS, true, ["sign"]),
        subtle.importKey("pkcs8", der, OAEP, false, ["decrypt"]),
      ]);
      jwk = await subtle.exportKey("jwk", sign);
    } catch (cause) {
      throw new KeyError("KEY_INVALID", "not an RSA private key (PKCS#8 DER expected)", { cause });
    }
    checkJwk(jwk);
    const publicJwk: JsonWebKey = { kty: "RSA", n: jwk.n, e: jwk.e, ext: true };
    const pub = await subtle.importKey("jwk", publicJwk, PSS, true, ["verify"]);
    const spki = new Uint8Array(await subtle.exportKey("spki", pub));
    return new RsaPrivateKey(der, await RsaPublicKey.fromSpki(spki), sign, decrypt);
  }

  /** RSA-PSS signature (SHA-256, MGF1-SHA-256, salt 32) over `data`. */
  async sign(data: Uint8Array): Promise<Uint8Array> {
    const sig = await subtle.sign(
      { name: "RSA-PSS", saltLength: PSS_SALT_BYTES },
      this.#signKey,
      bs(data),
    );
    return new Uint8Array(sig);
  }

  /** RSA-OAEP decryption; throws (any error) when the block does not decrypt. */
  async decrypt(block: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await subtle.decrypt({ name: "RSA-OAEP" }, this.#decryptKey, bs(block)));
  }
}
