/** What `connect()` makes of its options: the identity to log in with. */
import { UsageError } from "../errors.ts";
import { type Identity, type IdentityOptions, loadIdentity } from "./identity.ts";
import type { ConnectOptions } from "./types.ts";

/** `connect({ passphrase })` as `loadIdentity` takes it: a string is tried once. */
function passphraseOption(p: ConnectOptions["passphrase"]): IdentityOptions {
  if (p === undefined) return {};
  if (typeof p !== "string") return { passphrase: p };
  let given = false;
  return {
    passphrase: async () => {
      if (given) return undefined;
      given = true;
      return p;
    },
  };
}

/**
 * The identity of `o`: an identity file (`identity` as a path), an identity object, or
 * `id` + `key` + `serverKey` + `server`; `server` overrides the identity's address.
 * Throws `UsageError` `BAD_OPTIONS`, or what `loadIdentity` throws.
 */
export async function resolveIdentity(o: ConnectOptions): Promise<Identity> {
  const base =
    typeof o.identity === "string"
      ? await loadIdentity(o.identity, passphraseOption(o.passphrase))
      : o.identity
        ? { ...o.identity }
        : null;
  if (base) {
    if (o.server) base.server = o.server;
    return base;
  }
  if (!o.id || !o.key || !o.serverKey || !o.server) {
    throw new UsageError(
      "BAD_OPTIONS",
      "connect() needs an identity, or id + key + serverKey + server",
    );
  }
  return {
    id: o.id.toLowerCase(),
    name: o.name ?? o.id,
    server: o.server,
    key: o.key,
    serverKey: o.serverKey,
  };
}
