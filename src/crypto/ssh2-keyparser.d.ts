/**
 * Types for the part of `ssh2` used by ./keyformats.ts: its key parser
 * (lib/protocol/keyParser.js), which ssh2's own types do not describe as a module.
 */
declare module "ssh2/lib/protocol/keyParser.js" {
  /** A parsed key; `type` is the SSH name (`ssh-rsa`, `ssh-ed25519`, `ecdsa-sha2-nistp256` …). */
  export interface ParsedKey {
    type: string;
    comment: string;
    /** PEM: PKCS#1 `RSA PRIVATE KEY` for RSA; null for a public key. */
    getPrivatePEM(): string | null;
    /** PEM: SPKI `PUBLIC KEY`. */
    getPublicPEM(): string | null;
  }
  /**
   * Parses an OpenSSH, RFC 4716, PPK or PEM key. Returns (never throws) an Error for an
   * unsupported, damaged or encrypted key without the right passphrase.
   */
  export function parseKey(
    data: string | Buffer,
    passphrase?: string,
  ): ParsedKey | ParsedKey[] | Error;
}
