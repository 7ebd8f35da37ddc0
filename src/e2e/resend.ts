/**
 * The sender's side of a session reset (docs/E2E.md § Session reset): after a verified
 * reset request, start a new session with the requester from its published bundle and
 * send again, once and in order, the messages it named that the sent log still holds.
 */
import type { Client } from "../client/client.ts";
import { type FetchedBundle, fetchBundle } from "./directory.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint } from "./fingerprint.ts";
import { identityKeyBytes, type PublicIdentity } from "./keys.ts";
import type { ResetRequest } from "./reset.ts";
import { rolloverAnnouncement } from "./rollover-peer.ts";
import { takeSent } from "./sent.ts";
import { encryptMessage, startSession } from "./session.ts";
import type { E2EState } from "./state.ts";

/** What `resendAfterReset` needs of the E2E layer. */
export interface ResendContext {
  state: E2EState;
  client: Client;
  /** Records the fetched key (rollover, trust on first use, key-change rules); in a transaction. */
  adopt(fetched: FetchedBundle): void;
}

/** The outcome, as the `resent` event reports it. */
export interface Resent {
  id: string;
  count: number;
  /** Why nothing was sent (a verified peer's changed key), else null. */
  refused: string | null;
}

const keyHex = (i: PublicIdentity) => Buffer.from(identityKeyBytes(i)).toString("hex");

/**
 * Handles `request` from peer `id` (lowercase). Returns null when there was nothing to
 * do: none of the named messages is in the log (a replayed or stale request), or the
 * directory's bundle is not the identity that signed the request (stale, or a lying
 * directory). Throws `E2EError` from the directory, or what `Client.send` throws.
 */
export async function resendAfterReset(
  ctx: ResendContext,
  id: string,
  request: ResetRequest,
): Promise<Resent | null> {
  const { state, client } = ctx;
  const wanted = state.transaction((tx) => {
    tx.skipWrite();
    return state.sent.filter((e) => e.peer === id && request.digests.includes(e.digest));
  });
  if (wanted.length === 0) return null;
  const fetched = await fetchBundle((req) => client.keyDirectory(req), id);
  if (!fetched || keyHex(fetched.bundle.identity) !== keyHex(request.identity)) return null;
  const refused = state.transaction((): string | null => {
    ctx.adopt(fetched);
    try {
      state.knownPeers.checkSend(id);
    } catch (err) {
      if (err instanceof E2EError) return err.message;
      throw err;
    }
    state.peers.set(id, startSession(state.identity, state.peer(id), fetched.bundle));
    return null;
  });
  if (refused) return { id, count: 0, refused };
  // A message sent with --strict or --peer-key goes again only to a verified key (one a
  // signed rollover led to counts): never to a key nobody checked.
  const peer = state.knownPeers.get(id);
  const fp = identityFingerprint(fetched.bundle.identity);
  const verified = Boolean(peer?.verified && !peer.pending && peer.fingerprint === fp);
  const held = verified ? [] : wanted.filter((e) => e.strict);
  let count = 0;
  for (const entry of wanted) {
    if (held.includes(entry)) continue;
    // One transaction per message, saved before it leaves; taken from the log, so sent
    // again at most once (and not logged again: two clients that can never decrypt each
    // other do not loop).
    const out = state.transaction((tx) => {
      if (takeSent(state, id, [entry.digest]).length === 0) {
        tx.skipWrite();
        return null;
      }
      const r = encryptMessage(state.identity, state.peer(id), entry.plaintext);
      state.peers.set(id, r.peer);
      return { data: r.data, rollover: rolloverAnnouncement(state, id) };
    });
    if (!out) continue;
    if (out.rollover) client.send(id, out.rollover);
    client.send(id, out.data);
    count++;
  }
  const why =
    held.length > 0
      ? `${held.length} sent in strict mode (or pinned) not sent again: the new key ${fp} is not verified`
      : null;
  return { id, count, refused: why };
}
