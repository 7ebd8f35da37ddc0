/** `connectE2E`: the client library's `connect` with the E2E layer in front. */
import { type Client, connect } from "../client/client.ts";
import { loadIdentity } from "../client/identity.ts";
import type { ConnectOptions } from "../client/types.ts";
import { E2EError } from "./errors.ts";
import { E2EManager, type E2EOptions } from "./session-manager.ts";

/**
 * `connect()` with the E2E layer: opens the state of the identity's client (before
 * connecting, so no stored message slips past it), connects, publishes keys.
 * Close both: `await client.close(); e2e.close()`.
 */
export async function connectE2E(
  options: ConnectOptions & { e2e?: E2EOptions; clientId?: string },
): Promise<{ client: Client; e2e: E2EManager }> {
  const identity =
    typeof options.identity === "string" ? await loadIdentity(options.identity) : options.identity;
  const id = identity?.id ?? options.id ?? options.clientId;
  if (!id) throw new E2EError("NO_ID", "connectE2E needs an identity or an id");
  const e2e = E2EManager.open(id, options.e2e);
  try {
    const client = await connect({
      ...options,
      ...(identity ? { identity } : {}),
      incoming: e2e.incoming,
    });
    e2e.attach(client);
    return { client, e2e };
  } catch (err) {
    e2e.close();
    throw err;
  }
}
