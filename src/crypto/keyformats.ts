/**
 * RSA keys in the formats people already have, turned into what backbone uses
 * (SPKI DER public keys, PKCS#8 DER private keys):
 *
 *   public   SPKI PEM `PUBLIC KEY` (RFC 5280), PKCS#1 PEM `RSA PUBLIC KEY` (RFC 8017),
 *            an OpenSSH line `ssh-rsa AAAA… comment` (RFC 4253 § 6.6, as in .pub files
 *            and authorized_keys, options allowed before it), RFC 4716 `---- BEGIN SSH2
 *            PUBLIC KEY ----`
 *   private  PKCS#8 PEM `PRIVATE KEY` (RFC 5208), PKCS#1 PEM `RSA PRIVATE KEY`,
 *            encrypted PKCS#8 `ENCRYPTED PRIVATE KEY` (RFC 5958, PBES2), legacy
 *            OpenSSL-encrypted PKCS#1 (`Proc-Type: 4,ENCRYPTED`, what `ssh-keygen -m PEM`
 *            writes with a passphrase), OpenSSH `OPENSSH PRIVATE KEY`
 *            (PROTOCOL.key of OpenSSH; encrypted with bcrypt-pbkdf + aes256-ctr and the
 *            other ciphers OpenSSH uses)
 *
 * PEM goes through node:crypto (BoringSSL under Bun); the OpenSSH formats through the
 * key parser of `ssh2` (mscdex/ssh2, lib/protocol/keyParser.js), which yields PEM again.
 * Ed25519, ECDSA and DSA keys are refused with one line saying that RSA is required
 * and how to make an RSA key.
 */
/// <reference path="./ssh2-keyparser.d.ts" />
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { parseKey as parseSshKey } from "ssh2/lib/protocol/keyParser.js";
import { KeyError } from "../errors.ts";

/** Asks for the passphrase of an encrypted key; `undefined` when it cannot be asked. */
export type PassphraseSource = (prompt: string) => Promise<string | undefined>;

/** The command that makes an RSA key backbone accepts, for error messages. */
export const MAKE_RSA_KEY = "ssh-keygen -t rsa -b 3072 -f alice";

const PRIVATE_PEM =
  /-----BEGIN (PRIVATE KEY|RSA PRIVATE KEY|ENCRYPTED PRIVATE KEY|OPENSSH PRIVATE KEY|EC PRIVATE KEY|DSA PRIVATE KEY)-----[\s\S]*?-----END \1-----/;
const PUBLIC_PEM = /-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY)-----[\s\S]*?-----END \1-----/;
const RFC4716 = /---- BEGIN SSH2 PUBLIC KEY ----[\s\S]*?---- END SSH2 PUBLIC KEY ----/;
/** An OpenSSH public key line: key type, base64 blob, optional comment (options before it allowed). */
const SSH_LINE =
  /(?:^|\s)((?:ssh-rsa|ssh-dss|ssh-ed25519|ssh-ed448|ecdsa-sha2-nistp\d+|sk-\S+@openssh\.com)\s+[A-Za-z0-9+/]+={0,2})(?:[ \t]+([^\r\n]*))?/m;

function refuseType(type: string | undefined, where: string): never {
  const name = keyTypeName(type);
  throw new KeyError(
    "KEY_TYPE",
    `${where} is ${name ? `an ${name}` : "not an RSA"} key: backbone requires RSA (make one with: ${MAKE_RSA_KEY})`,
  );
}

function keyTypeName(type: string | undefined): string | undefined {
  if (!type) return undefined;
  if (/ed25519/i.test(type)) return "Ed25519";
  if (/ed448/i.test(type)) return "Ed448";
  if (/ec|ecdsa/i.test(type)) return "ECDSA";
  if (/dss|dsa/i.test(type)) return "DSA";
  return undefined;
}

function spkiOf(key: KeyObject, where: string): Uint8Array {
  if (key.asymmetricKeyType !== "rsa") refuseType(key.asymmetricKeyType, where);
  return new Uint8Array(key.export({ type: "spki", format: "der" }));
}

/** True when `text` holds a private key block of any kind this module knows. */
export function hasPrivateKey(text: string): boolean {
  return PRIVATE_PEM.test(text);
}

/**
 * The RSA public key in `text` as SPKI DER. `where` names the source in errors.
 * Throws `KeyError` `KEY_TYPE` for a non-RSA key, `KEY_PRIVATE` for a private key
 * (the public half is wanted), `KEY_INVALID` for a damaged one, `PEM_MISSING` when
 * there is no key at all.
 */
export function parsePublicKey(text: string, where: string): Uint8Array {
  const pem = PUBLIC_PEM.exec(text)?.[0];
  if (pem) {
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (cause) {
      throw new KeyError("KEY_INVALID", `${where}: damaged public key`, { cause });
    }
    return spkiOf(key, where);
  }
  const ssh = RFC4716.exec(text)?.[0] ?? SSH_LINE.exec(text);
  if (ssh !== undefined && ssh !== null) {
    const input = typeof ssh === "string" ? ssh : `${ssh[1]} ${ssh[2] ?? ""}`.trim();
    const parsed = parseSshKey(input);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) {
      throw new KeyError("KEY_INVALID", `${where}: damaged OpenSSH public key`);
    }
    if (key.type !== "ssh-rsa") refuseType(key.type, where);
    return spkiOf(createPublicKey(key.getPublicPEM() as string), where);
  }
  const priv = PRIVATE_PEM.exec(text)?.[1];
  if (priv) {
    throw new KeyError(
      "KEY_PRIVATE",
      `${where} holds a private key (${priv}): give its public half instead (the .pub file, or: ssh-keygen -y -f KEY > KEY.pub)`,
    );
  }
  throw new KeyError(
    "PEM_MISSING",
    `${where}: no public key found (expected "ssh-rsa AAAA…", or a PEM "PUBLIC KEY" or "RSA PUBLIC KEY" block)`,
  );
}

/**
 * The RSA private key in `text` as PKCS#8 DER, or `null` when `text` has no private
 * key block. An encrypted key asks `passphrase` (up to `tries` times while it answers);
 * `where` names the source in errors. Throws `KeyError`: `KEY_TYPE` (not RSA),
 * `KEY_ENCRYPTED` (encrypted and no passphrase could be had), `KEY_PASSPHRASE` (a
 * wrong one, `tries` times), `KEY_INVALID` (damaged).
 */
export async function parsePrivateKey(
  text: string,
  where: string,
  passphrase?: PassphraseSource,
  tries = 3,
): Promise<Uint8Array | null> {
  const m = PRIVATE_PEM.exec(text);
  if (!m) return null;
  const [block, label] = m as unknown as [string, string];
  if (label === "EC PRIVATE KEY") refuseType("ecdsa", where);
  if (label === "DSA PRIVATE KEY") refuseType("dsa", where);
  const openssh = label === "OPENSSH PRIVATE KEY";

  let attempt = 0;
  let given: string | undefined;
  for (;;) {
    const result = openssh ? fromOpenSsh(block, given, where) : fromPem(block, given, where);
    if (result !== "needs-passphrase" && result !== "wrong-passphrase") return result;
    if (result === "wrong-passphrase" && attempt >= tries) {
      throw new KeyError("KEY_PASSPHRASE", `${where}: wrong passphrase for the private key`);
    }
    const prompt = `${attempt === 0 ? "" : "wrong passphrase. "}passphrase for ${where}: `;
    given = passphrase ? await passphrase(prompt) : undefined;
    if (given === undefined) {
      if (result === "wrong-passphrase") {
        throw new KeyError("KEY_PASSPHRASE", `${where}: wrong passphrase for the private key`);
      }
      throw new KeyError("KEY_ENCRYPTED", `${where}: the private key is protected by a passphrase`);
    }
    attempt++;
  }
}

type Outcome = Uint8Array | "needs-passphrase" | "wrong-passphrase";

function fromPem(block: string, passphrase: string | undefined, where: string): Outcome {
  let key: KeyObject;
  try {
    // An empty passphrase makes node:crypto refuse encrypted keys instead of prompting.
    key = createPrivateKey({ key: block, format: "pem", passphrase: passphrase ?? "" });
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? "";
    const encrypted = /ENCRYPTED/.test(block);
    if (encrypted && passphrase === undefined) return "needs-passphrase";
    if (encrypted && /BAD_DECRYPT|DECRYPT|PASSPHRASE|BAD_PASSWORD/i.test(`${code} ${cause}`)) {
      return "wrong-passphrase";
    }
    if (encrypted) return "wrong-passphrase";
    throw new KeyError("KEY_INVALID", `${where}: damaged private key`, { cause });
  }
  if (key.asymmetricKeyType !== "rsa") refuseType(key.asymmetricKeyType, where);
  return new Uint8Array(key.export({ type: "pkcs8", format: "der" }));
}

function fromOpenSsh(block: string, passphrase: string | undefined, where: string): Outcome {
  const parsed = parseSshKey(block, passphrase);
  if (parsed instanceof Error) {
    if (/no passphrase given/i.test(parsed.message)) return "needs-passphrase";
    if (/bad passphrase|integrity check/i.test(parsed.message)) return "wrong-passphrase";
    throw new KeyError("KEY_INVALID", `${where}: damaged OpenSSH private key (${parsed.message})`);
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) throw new KeyError("KEY_INVALID", `${where}: empty OpenSSH private key`);
  if (key.type !== "ssh-rsa") refuseType(key.type, where);
  const pem = key.getPrivatePEM();
  if (!pem) throw new KeyError("KEY_INVALID", `${where}: damaged OpenSSH private key`);
  const obj = createPrivateKey(pem);
  return new Uint8Array(obj.export({ type: "pkcs8", format: "der" }));
}
