/**
 * The public shapes of the E2E layer's manager (`E2EManager` in ./session-manager.ts):
 * options, results and events. Kept apart so the manager holds behaviour only.
 */
import type { OpenOptions } from "./state.ts";

export interface E2EOptions extends OpenOptions {
  /** The state directory (default `defaultStateDir(id)`). */
  stateDir?: string;
  /**
   * Replace a bundle of another E2E identity that the directory holds for this client
   * (another device, an earlier install). Without it that is refused: `syncFailed` with
   * `IDENTITY_ELSEWHERE`, and `send` throws it (docs/E2E.md § One identity, one device).
   */
  takeover?: boolean;
}

export interface SendResult {
  /** The recipient's ID. */
  to: string;
  /** True when the message went end-to-end encrypted. */
  e2e: boolean;
}

/** Options of `E2EManager.send`. */
export interface SendOptions {
  /** Refuse (`NO_KEYS`) instead of sending plaintext to a peer without keys. */
  requireE2E?: boolean;
  /** Shown in warnings and errors when `to` is an ID. */
  name?: string;
  /**
   * `SHA256:…` the peer's identity key must have (pinned up front, as a program would):
   * anything else is refused (`PEER_KEY_MISMATCH`), and so is a peer without keys.
   */
  peerKey?: string;
  /** Only end-to-end encrypted, and only to a verified (or pinned) peer (`UNVERIFIED`, `NO_KEYS`). */
  strict?: boolean;
}

/** What `lookupPeer` tells about a peer. */
export interface PeerInfo {
  id: string;
  name: string;
  /** `SHA256:…` of the identity key the sessions use. */
  fingerprint: string;
  verified: boolean;
  /** A changed key waiting to be accepted (verified peers only). */
  pending: string | null;
  /** 60 digits, the same on both sides. */
  safetyNumber: string;
}

export interface E2EEvents {
  /** A peer's identity key differs from the one recorded; `blocked` for a verified peer. */
  keyChanged: [{ id: string; previous: string; fingerprint: string; blocked: boolean }];
  /**
   * A name now resolves to another client ID than the one recorded for it (a new client
   * took the name, or the server lies); `blocked` when the recorded one was verified.
   */
  nameChanged: [{ name: string; previous: string; id: string; blocked: boolean }];
  /** A peer's identity key was recorded for the first time (trust on first use). */
  newPeer: [{ id: string; fingerprint: string }];
  /**
   * A peer replaced its identity key by a signed rollover from the key recorded for it
   * (docs/E2E.md § Key rollover): recorded quietly; `verified` when it was and stays so.
   */
  keyRolledOver: [{ id: string; previous: string; fingerprint: string; verified: boolean }];
  /** A message went (or came) in plaintext: the peer has no keys, or a known E2E peer sent plaintext. */
  plaintext: [{ id: string; name?: string; direction: "in" | "out"; reason: string }];
  /** An E2E message that could not be decrypted (not a replay): dropped. */
  decryptFailed: [
    {
      from: string;
      code: string;
      message: string;
      /** The sender is asked to start a new session and send it again (docs/E2E.md § Session reset). */
      retry: boolean;
    },
  ];
  /**
   * A peer could not decrypt messages of ours (it re-installed, or lost the session):
   * `count` of them were sent again on a new session; `refused` says why the others
   * were not (its key changed and it was verified: accept the new key first; or they
   * were sent with `strict`/`peerKey` and the new key is not verified).
   */
  resent: [{ id: string; count: number; refused: string | null }];
  /**
   * A member of a room was left out of an end-to-end encrypted room message (it has
   * published no keys): emitted once per member and room.
   */
  roomSkipped: [{ room: string; id: string; name: string; reason: string }];
  /**
   * A member of a room this client was never told had joined (a join event that did not
   * come — lost, or hidden by a hostile server): found in a member list read again, or
   * as the sender of a room message. Emitted once per member before anything of theirs
   * is shown (docs/E2E.md § Rooms, "Members never seen joining").
   */
  roomMember: [
    {
      room: string;
      member: { id: string; name: string };
      /** `SHA256:…` of its identity key, null when it has published none. */
      fingerprint: string | null;
      verified: boolean;
    },
  ];
  /** Publishing keys, or answering a peer's reset request, failed (the layer keeps working). */
  syncFailed: [{ error: Error }];
}
