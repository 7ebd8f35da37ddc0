/**
 * Checks the E2E manager (./session-manager.ts) makes about a peer before sending:
 * a name resolved against `known_peers` (docs/E2E.md § Trust), `--peer-key` / `--strict`
 * pinning, and the server's name recorded for a peer first seen by ID.
 */
import type { Client } from "../client/client.ts";
import { isUuid } from "../ids.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint } from "./fingerprint.ts";
import type { E2EEvents, SendOptions } from "./manager-types.ts";
import type { PeerSessions } from "./session.ts";
import type { E2EState } from "./state.ts";

/**
 * An ID, or the ID the server gives for a name — checked against the IDs recorded
 * under that name in `known_peers`: another ID is announced (`nameChanged`), and
 * refused (`NAME_CHANGED`) when the recorded client was verified.
 */
export async function resolvePeer(
  client: Client,
  state: E2EState,
  to: string,
  nameChanged: (e: E2EEvents["nameChanged"][0]) => void,
): Promise<string> {
  if (isUuid(to)) return to.toLowerCase();
  const id = await client.resolve(to);
  const others = state.knownPeers.byName(to).filter((p) => p.id !== id);
  for (const p of others) nameChanged({ name: to, previous: p.id, id, blocked: p.verified });
  const verified = others.find((p) => p.verified);
  if (verified) {
    throw new E2EError(
      "NAME_CHANGED",
      `the name "${to}" now belongs to client ${id}, not to ${verified.id} whom you verified under that name; nothing sent (write to the ID to reach the new client)`,
    );
  }
  return id;
}

/** `peerKey` and `strict` (see SendOptions); throws inside the send's transaction. */
export function checkPin(
  id: string,
  label: string,
  peer: PeerSessions,
  opts: SendOptions,
  verified: (id: string, fingerprint: string) => boolean,
): void {
  if (!opts.peerKey && !opts.strict) return;
  const session = peer.sessions.find((x) => x.ratchet.cks);
  const fp = session ? identityFingerprint(session.peerIdentity) : "";
  if (opts.peerKey && fp !== opts.peerKey) {
    throw new E2EError(
      "PEER_KEY_MISMATCH",
      `the identity key of ${label} is ${fp}, not the pinned ${opts.peerKey}; nothing sent`,
    );
  }
  if (opts.strict && !opts.peerKey && !verified(id, fp)) {
    throw new E2EError(
      "UNVERIFIED",
      `${label} is not verified (strict mode; verify it with backbone verify, or pin its key); nothing sent`,
    );
  }
}

/** Records the server's name for a peer first seen by ID only (for `known_peers` readers). */
export async function fillName(client: Client | null, state: E2EState, id: string): Promise<void> {
  if (!client?.connected) return;
  try {
    const [entry] = await client.clientStatus([id]);
    if (!entry || !("name" in entry)) return;
    state.transaction((tx) => {
      const peer = state.knownPeers.get(id);
      if (!peer || peer.name) return tx.skipWrite();
      peer.name = entry.name;
      state.saveKnownPeers();
    });
  } catch {
    // kept without a name; tried again at the next sighting
  }
}
