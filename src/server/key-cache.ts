/**
 * Parsed client public keys, by client ID, kept so that a refused login costs the
 * same whatever the ID (docs/SECURITY.md § Timing; PROTOCOL.md § Handshake, step 5).
 *
 * Importing an SPKI key (a WebCrypto import for PSS and a JWK export) and its first use
 * cost tens to hundreds of µs: if only registered IDs paid them, the time to STOP
 * `authentication failed` would tell a registered ID from an unknown one. So every ID
 * is treated the same way:
 * - the first lookup of any ID imports a key never imported before — the client's own
 *   when it is registered or revoked, a stand-in with a random modulus of the
 *   signature's size when it is unknown — and the signature is checked against it
 *   (a revoked or unknown ID's key comes back as a `StandIn`);
 * - later lookups of the same ID import nothing, whether it is known or not.
 * Entries are checked against the registry record on every lookup (fingerprint,
 * revocation), so a registry change needs no wholesale clearing: a changed entry is
 * imported again, once, at the same cost. The least recently used go first beyond
 * `capacity`.
 */
import { RsaPublicKey } from "../crypto/rsa.ts";
import { standInSpki } from "../handshake/dummy-keys.ts";
import { StandIn } from "../handshake/server.ts";
import type { ClientRecord } from "../store/store.ts";

interface Entry {
  /** The record's fingerprint ("" for an unknown ID). */
  fingerprint: string;
  /** A live client's key, or the stand-in of a revoked or unknown one. */
  key: RsaPublicKey | StandIn;
}

export class ClientKeyCache {
  readonly capacity: number;
  readonly #entries = new Map<string, Entry>();

  /** @param capacity most IDs remembered (default 10,000). */
  constructor(capacity = 10_000) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The public key of `record` when it is a live (not revoked) client, else a
   * `StandIn`. `id` is the ID looked up (text); `record` what the registry holds for
   * it (or `null`); `signatureBytes` the size of the signature to verify (the size of
   * an unknown ID's stand-in).
   */
  async resolve(
    id: string,
    record: ClientRecord | null,
    signatureBytes: number,
  ): Promise<RsaPublicKey | StandIn> {
    const live = record !== null && record.revokedAt === null;
    const fingerprint = record?.fingerprint ?? "";
    const entry = this.#entries.get(id);
    if (entry && entry.fingerprint === fingerprint && !(entry.key instanceof StandIn) === live) {
      this.#entries.delete(id); // most recently used last
      this.#entries.set(id, entry);
      return entry.key;
    }
    // The same work for every kind of ID: one import of a key never seen before.
    const imported = await RsaPublicKey.fromSpki(
      record?.publicKey ?? standInSpki(signatureBytes),
      "verify", // the server only verifies client keys: one WebCrypto key, not two
    );
    const key = live ? imported : new StandIn(imported);
    this.#entries.delete(id);
    this.#entries.set(id, { fingerprint, key });
    while (this.#entries.size > this.capacity) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
    return key;
  }
}
