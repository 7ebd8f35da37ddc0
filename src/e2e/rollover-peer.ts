/**
 * Key rollover between peers (docs/E2E.md § Key rollover): announcing our rollover to
 * each peer once, before the first message of a session started after it, and
 * following a peer's announced rollover in `known_peers`.
 */
import { E2EError } from "./errors.ts";
import { publicIdentity } from "./keys.ts";
import {
  decodeRolloverEnvelope,
  encodeRolloverEnvelope,
  followRollover,
  type RolledOver,
} from "./rollover.ts";
import type { E2EState } from "./state.ts";

/**
 * The rollover envelope to send `peerId` before the next message, or null when there
 * is none to send (no rollover, or already sent since the last one). Marks it sent:
 * call inside the transaction that saves the message's ratchet step.
 */
export function rolloverAnnouncement(state: E2EState, peerId: string): Uint8Array | null {
  const id = peerId.toLowerCase();
  if (state.rollovers.length === 0 || state.rolloverSentTo.includes(id)) return null;
  state.rolloverSentTo.push(id);
  return encodeRolloverEnvelope(publicIdentity(state.identity), state.rollovers);
}

/**
 * Follows a rollover envelope from `senderId` (in a transaction): when its chain leads
 * from the key recorded for the sender to the announced one, `known_peers` records the
 * new key, verified if the old one was. Returns what changed, or null (nothing to
 * follow, a malformed or forged envelope, a replay): such envelopes are dropped quietly.
 */
export function receiveRollover(
  state: E2EState,
  senderId: string,
  data: Uint8Array,
): RolledOver | null {
  let parsed: ReturnType<typeof decodeRolloverEnvelope>;
  try {
    parsed = decodeRolloverEnvelope(data, senderId);
  } catch (err) {
    if (err instanceof E2EError) return null;
    throw err;
  }
  return state.transaction((tx) => {
    const moved = followRollover(
      state.knownPeers,
      senderId,
      parsed.identity,
      parsed.chain,
      state.now(),
    );
    if (!moved) {
      tx.skipWrite();
      return null;
    }
    state.saveKnownPeers();
    return moved;
  });
}
