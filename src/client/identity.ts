/**
 * The identity file: everything a client needs to connect, in one text file that
 * `backbone keygen` writes with mode 0600.
 *
 *   # backbone identity …           (comments)
 *   backbone-identity: 1
 *   id: 0b6e7c1e-…                  client ID (canonical UUID text)
 *   name: alice
 *   server: chat.example.org:7447   host:port to connect to
 *   server-key: SHA256:…            fingerprint of the pinned server key below
 *   key: SHA256:…                   fingerprint of this client's public key
 *   -----BEGIN PUBLIC KEY-----      the server's key (pinned)
 *   -----BEGIN PRIVATE KEY-----     this client's key (PKCS#8 as keygen writes it; an
 *                                   appended one may be PKCS#1 or OpenSSH, encrypted
 *                                   or not); absent until the client appends its own
 *                                   (keygen --public-key)
 */
import { readSecretFile } from "../crypto/keyfile.ts";
import { type PassphraseSource, parsePrivateKey } from "../crypto/keyformats.ts";
import { fromPem, toPem } from "../crypto/pem.ts";
import { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import { KeyError, UsageError } from "../errors.ts";
import { isUuid } from "../ids.ts";
import { parseHostPort } from "./address.ts";

export const IDENTITY_VERSION = 1;

export interface Identity {
  id: string;
  name: string;
  /** `host:port`. */
  server: string;
  /** The pinned server key. */
  serverKey: RsaPublicKey;
  /** This client's private key. */
  key: RsaPrivateKey;
  /** Where it was read from, if from a file. */
  path?: string;
}

export interface IdentityFields {
  id: string;
  name: string;
  server: string;
  serverSpki: Uint8Array;
  serverFingerprint: string;
  clientFingerprint: string;
  /** Omitted when the client keeps its private key to itself (`keygen --public-key`). */
  privatePkcs8?: Uint8Array;
}

/** The text of an identity file. */
export function formatIdentity(f: IdentityFields): string {
  const lines = [
    `# backbone identity for "${f.name}". Keep it private (chmod 600): whoever holds it can log in as ${f.name}.`,
    `backbone-identity: ${IDENTITY_VERSION}`,
    `id: ${f.id}`,
    `name: ${f.name}`,
    `server: ${f.server}`,
    `server-key: ${f.serverFingerprint}`,
    `key: ${f.clientFingerprint}`,
    "# The server's public key, pinned: a server presenting any other key is refused.",
    toPem("PUBLIC KEY", f.serverSpki).trimEnd(),
  ];
  if (f.privatePkcs8) {
    lines.push("# This client's private key.", toPem("PRIVATE KEY", f.privatePkcs8).trimEnd());
  } else {
    lines.push(
      "# No private key yet: append this client's private key (the one whose public half was",
      "# registered; PKCS#8, PKCS#1 or OpenSSH format, may have a passphrase), e.g.",
      "# `cat ~/.ssh/id_rsa >> alice.identity`.",
    );
  }
  return `${lines.join("\n")}\n`;
}

function field(text: string, name: string, where: string): string {
  const m = new RegExp(`^${name}:[ \\t]*(.*?)[ \\t]*$`, "m").exec(text);
  if (!m?.[1]) throw new UsageError("BAD_IDENTITY", `${where}: missing "${name}:" line`);
  return m[1];
}

/** How to unlock an identity whose private key is protected by a passphrase. */
export interface IdentityOptions {
  /** Asked for the passphrase of an encrypted private key (see crypto/keyformats.ts). */
  passphrase?: PassphraseSource;
}

/**
 * Parses an identity file's text. The private key may be PKCS#8, PKCS#1 or OpenSSH,
 * plain or encrypted (crypto/keyformats.ts). Throws `UsageError` `BAD_IDENTITY` or
 * `KeyError` (`KEY_MISSING`, `KEY_MISMATCH`, `KEY_TYPE`, `KEY_PASSPHRASE` …).
 */
export async function parseIdentity(
  text: string,
  where = "identity",
  opts: IdentityOptions = {},
): Promise<Identity> {
  const version = field(text, "backbone-identity", where);
  if (version !== String(IDENTITY_VERSION)) {
    throw new UsageError("BAD_IDENTITY", `${where}: unsupported identity version ${version}`);
  }
  const id = field(text, "id", where).toLowerCase();
  if (!isUuid(id)) throw new UsageError("BAD_IDENTITY", `${where}: "id" is not a UUID`);
  const name = field(text, "name", where);
  const server = field(text, "server", where);
  parseHostPort(server); // validates
  const serverKey = await RsaPublicKey.fromSpki(fromPem(text, "PUBLIC KEY"));
  const pinned = field(text, "server-key", where);
  if (pinned !== serverKey.fingerprint) {
    throw new UsageError(
      "BAD_IDENTITY",
      `${where}: the server key block (${serverKey.fingerprint}) does not match server-key ${pinned}`,
    );
  }
  const pkcs8 = await parsePrivateKey(text, where, opts.passphrase);
  if (!pkcs8) {
    throw new KeyError(
      "KEY_MISSING",
      `${where} has no private key yet: append this client's private key to it (see "backbone help keygen")`,
    );
  }
  const key = await RsaPrivateKey.fromPkcs8(pkcs8);
  const expected = field(text, "key", where);
  if (key.publicKey.fingerprint !== expected) {
    throw new KeyError(
      "KEY_MISMATCH",
      `${where}: the private key (${key.publicKey.fingerprint}) is not the registered one (${expected})`,
    );
  }
  return { id, name, server, serverKey, key };
}

/**
 * Reads an identity file, refusing one that group or others can read (as OpenSSH
 * does with private keys). Throws `KeyError` or `UsageError`.
 */
export async function loadIdentity(path: string, opts: IdentityOptions = {}): Promise<Identity> {
  const identity = await parseIdentity(readSecretFile(path), path, opts);
  identity.path = path;
  return identity;
}
