/**
 * Decryption across this client's identities (docs/E2E.md § Key rollover): a message
 * is tried on the current identity first, then on the identities a rollover replaced
 * (newest first), which keep their prekeys and sessions RETIRED_IDENTITY_SECONDS for
 * messages already on their way — sent before the peer learnt the new key.
 */
import { E2EError } from "./errors.ts";
import { type Decrypted, decryptMessage, type PeerSessions } from "./session.ts";
import type { E2EState } from "./state.ts";

/** A decrypted message and how to record it in the state (inside the same transaction). */
export interface Opened {
  result: Decrypted;
  /** Stores the new sessions and drops the used one-time prekey, on the identity that opened it. */
  apply(): void;
  /** True when a retired identity opened it. */
  retired: boolean;
}

/**
 * Decrypts `data` from `senderId` (in `room`, for a room message) with the current
 * identity, else a retired one.
 * Throws the current identity's `E2EError` when none opens it (`DUPLICATE` when one
 * recognises it as a replay). Changes nothing until `apply` is called.
 */
export function openMessage(
  state: E2EState,
  senderId: string,
  data: Uint8Array,
  room: string | null = null,
): Opened {
  const id = senderId.toLowerCase();
  try {
    const result = decryptMessage(
      state.identity,
      state.preKeys,
      senderId,
      state.peer(id),
      data,
      undefined,
      room,
    );
    return {
      result,
      retired: false,
      apply() {
        state.peers.set(id, result.peer);
        if (result.usedOneTimePreKey !== null)
          state.oneTimePreKeys.delete(result.usedOneTimePreKey);
      },
    };
  } catch (err) {
    if (!(err instanceof E2EError) || err.code === "DUPLICATE") throw err;
    let duplicate: E2EError | null = null;
    for (const r of state.retired) {
      const peer: PeerSessions = r.peers.get(id) ?? { peerId: id, sessions: [] };
      try {
        const result = decryptMessage(
          r.identity,
          { signedPreKeys: r.signedPreKeys, oneTimePreKeys: r.oneTimePreKeys },
          senderId,
          peer,
          data,
          undefined,
          room,
        );
        return {
          result,
          retired: true,
          apply() {
            r.peers.set(id, result.peer);
            if (result.usedOneTimePreKey !== null)
              r.oneTimePreKeys.delete(result.usedOneTimePreKey);
          },
        };
      } catch (e) {
        if (!(e instanceof E2EError)) throw e;
        if (e.code === "DUPLICATE") duplicate = e;
      }
    }
    throw duplicate ?? err;
  }
}
