/**
 * Enrolment: registers a new client in the store and produces its identity file
 * (what `backbone keygen` does, as a library function).
 */
import { formatIdentity } from "../client/identity.ts";
import { fingerprint } from "../crypto/primitives.ts";
import { generateRsaKeyPair, type RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import { StoreError } from "../errors.ts";
import { checkName, nameKey, newClientId } from "../ids.ts";
import type { ClientRecord, Store } from "../store/store.ts";
import { confusable, nonAscii } from "../text/confusables.ts";

export interface EnrollOptions {
  /** Client name (unique); defaults to the new ID. */
  name?: string;
  /** `host:port` written into the identity for the client to connect to. */
  server: string;
  /** The server's key (pinned in the identity). */
  serverKey: RsaPrivateKey;
  /** Key size for a generated client key (default 3072). */
  bits?: number;
  /** Register this SPKI public key instead of generating a key pair (the private key stays with the client). */
  publicKey?: Uint8Array;
}

export interface Enrolled {
  record: ClientRecord;
  /** The identity file's text; without a private key block when `publicKey` was given. */
  identityText: string;
}

/**
 * Registers a client. Throws `UsageError` `BAD_NAME`, `StoreError` `NAME_TAKEN`,
 * `KeyError` for an unusable public key.
 */
export async function enrollClient(store: Store, opts: EnrollOptions): Promise<Enrolled> {
  const id = newClientId();
  // A look-alike of an existing name is named as such, before any other complaint.
  if (opts.name !== undefined) await refuseLookAlike(store, opts.name.normalize("NFKC"));
  const name = opts.name === undefined ? id : checkName(opts.name);
  if (opts.name !== undefined && (await store.findClient(name))) {
    // Checked before the slow key generation; the store's unique index is the real guard.
    throw new StoreError("NAME_TAKEN", `the name "${name}" is already taken`);
  }
  let publicSpki: Uint8Array;
  let privatePkcs8: Uint8Array | undefined;
  if (opts.publicKey) {
    publicSpki = (await RsaPublicKey.fromSpki(opts.publicKey)).spki;
  } else {
    const pair = await generateRsaKeyPair(opts.bits);
    publicSpki = pair.publicSpki;
    privatePkcs8 = pair.privatePkcs8;
  }
  const record = await store.addClient({
    id,
    name,
    publicKey: publicSpki,
    fingerprint: fingerprint(publicSpki),
  });
  const serverSpki = opts.serverKey.publicKey.spki;
  const identityText = formatIdentity({
    id,
    name,
    server: opts.server,
    serverSpki,
    serverFingerprint: fingerprint(serverSpki),
    clientFingerprint: record.fingerprint,
    ...(privatePkcs8 ? { privatePkcs8 } : {}),
  });
  return { record, identityText };
}

/**
 * Refuses a name that looks like an existing client's (revoked ones included): equal
 * UTS #39 skeletons, as written or lowercased. Throws `StoreError` `NAME_CONFUSABLE`.
 */
export async function refuseLookAlike(store: Store, name: string): Promise<void> {
  for (const other of await store.listClients()) {
    if (other.name === other.id || nameKey(other.name) === nameKey(name)) continue; // taken: said later
    if (!confusable(name, other.name)) continue;
    const odd = nonAscii(name);
    throw new StoreError(
      "NAME_CONFUSABLE",
      `the name "${name}" looks like the existing name "${other.name}"${odd.length ? ` (it has ${odd.join(", ")})` : ""}; choose another`,
    );
  }
}
