/**
 * The public shapes of the E2E layer's manager (`E2EManager` in ./session-manager.ts):
 * options, results and events. Kept apart so the manager holds behaviour only.
 */
import type { OpenOptions } from "./state.ts";

export interface E2EOptions extends OpenOptions {
  /** The state directory (default `defaultStateDir(id)`). */
  stateDir?: string;
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
  /** A message went (or came) in plaintext: the peer has no keys, or a known E2E peer sent plaintext. */
  plaintext: [{ id: string; name?: string; direction: "in" | "out"; reason: string }];
  /** An E2E message that could not be decrypted (not a replay): dropped. */
  decryptFailed: [{ from: string; code: string; message: string }];
  /**
   * A member of a room was left out of an end-to-end encrypted room message (it has
   * published no keys): emitted once per member and room.
   */
  roomSkipped: [{ room: string; id: string; name: string; reason: string }];
  /** Publishing keys failed (the layer keeps working with what is published). */
  syncFailed: [{ error: Error }];
}
