/**
 * The receive path of the E2E layer (docs/E2E.md): the `incoming` hook of the manager
 * (./session-manager.ts) decrypts envelopes and saves each message in the state's
 * inbox before it is shown and acknowledged; shown messages leave the inbox once their
 * listeners have run, so a crash in between loses nothing (`replay` shows them after
 * the restart). A live message another process of this client decrypted first is
 * shown here too, once.
 */
import type { Client } from "../client/client.ts";
import type { IncomingMessage } from "../client/types.ts";
import { roomKey } from "../rooms/names.ts";
import { isEnvelope } from "./envelope.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint } from "./fingerprint.ts";
import { inboxMessage, liveDigest, rememberLive, wrap } from "./incoming.ts";
import { type E2EHost, isVerified, observePeer } from "./peer-keys.ts";
import { isResetEnvelope, RESETTABLE } from "./reset.ts";
import { type Opened, openMessage } from "./retired.ts";
import { isRolloverEnvelope } from "./rollover.ts";
import { receiveRollover } from "./rollover-peer.ts";
import type { InboxEntry, RecentLive } from "./state.ts";

/** Fault injection for the crash tests (test/integration/e2e-crash.test.ts) only. */
const CRASH_AT = process.env.BACKBONE_E2E_TEST_CRASH_AT ?? "";
function crashPoint(name: string): void {
  if (CRASH_AT === name) process.kill(process.pid, "SIGKILL");
}

/** What the receive path needs of the manager's session resets (reset.ts). */
export interface ResetHooks {
  /** A peer's reset request (reset.ts), answered in the background. */
  onResetRequest(from: string, data: Uint8Array): void;
  /**
   * Asks `from` to start a new session and send `data` again (it could not be
   * decrypted); false when no request will be made (ResetRequester.add).
   */
  requestReset(from: string, data: Uint8Array): boolean;
}

/**
 * What the receive path needs of the room layer (rooms.ts): whether a room message's
 * sender is a member this client knows of, and, when not, the announcement of it
 * (`roomMember`) that must come before its message is shown.
 */
export interface RoomMembership {
  knows(room: string, from: string): boolean;
  /** Reads the member list again and announces `from` (and any other member not known). */
  senderSeen(room: string, from: string): Promise<void>;
}

export class E2EReceiver {
  readonly #host: E2EHost;
  readonly #resets: ResetHooks;
  /** When this process opened the state (unix s): see RecentLive. */
  readonly #openedAt: number;
  /** Digests of live messages this process has shown (each once, see RecentLive). */
  #shownLive = new Set<string>();
  /** Keys of inbox entries shown, to remove at the next clearing. */
  #delivered = new Set<string>();
  #clearScheduled = false;
  /**
   * Set while messages saved before a crash wait to be shown: until `replay` shows
   * them, new messages join them in the inbox (saved, acknowledged, not yet shown), so
   * everything is shown once and in order.
   */
  #replaying: boolean;
  readonly #rooms: RoomMembership | null;
  /**
   * Room messages from senders not known as members (room key + sender → announcement
   * under way): while any is under way, messages are saved and held, then shown in order
   * once the sender has been announced — never a message before its sender.
   */
  readonly #holding = new Set<string>();

  constructor(host: E2EHost, resets: ResetHooks, rooms: RoomMembership | null = null) {
    this.#host = host;
    this.#resets = resets;
    this.#rooms = rooms;
    this.#openedAt = host.state.now();
    this.#replaying = host.state.inbox.length > 0;
  }

  /** See `E2EManager.incoming`. */
  readonly incoming = (m: IncomingMessage): IncomingMessage | null => {
    const host = this.#host;
    const state = host.state;
    const from = m.from;
    // Broadcasts are never end-to-end encrypted (there is no group protocol): shown as
    // they are, marked e2e: false, and without a downgrade warning.
    if (m.kind === "broadcast") return wrap(m, m.data, false, false);
    // A signed rollover: public keys only, never shown; replays change nothing.
    if (m.kind !== "room" && isRolloverEnvelope(m.data)) {
      const moved = receiveRollover(state, from, m.data);
      if (moved) host.emit("keyRolledOver", moved);
      return null;
    }
    // A peer could not decrypt messages of ours: answered in the background, never shown.
    if (m.kind !== "room" && isResetEnvelope(m.data)) {
      this.#resets.onResetRequest(from, m.data);
      return null;
    }
    // A room message from a sender this client was never told joined: announced first.
    const unknown =
      m.kind === "room" &&
      m.room !== null &&
      this.#rooms !== null &&
      !this.#rooms.knows(m.room, from);
    if (!isEnvelope(m.data)) {
      if (state.knownPeers.get(from)) {
        host.emit("plaintext", {
          id: from,
          ...(state.knownPeers.get(from)?.name
            ? { name: state.knownPeers.get(from)?.name as string }
            : {}),
          direction: "in",
          reason: "a peer with E2E keys sent plaintext",
        });
      }
      if (this.#replaying || this.#holding.size > 0 || unknown) {
        state.transaction(() => {
          state.inbox.push(this.#entry(m, m.data, false, false));
        });
        if (unknown) this.#hold(m.room as string, from);
        return null;
      }
      return wrap(m, m.data, false, false);
    }
    // A room message opens only as a message of the room it came in (the AD binds it).
    const room = m.kind === "room" ? m.room : null;
    // A live message goes to every session of this client: the first process to decrypt
    // it uses up the ratchet step and leaves the plaintext for the others, briefly.
    const live = m.kind === "direct" || (room !== null && !m.stored);
    const digest = live ? liveDigest(m.data) : "";
    const where = room === null ? undefined : roomKey(room); // RecentLive.room
    let shared: RecentLive | null = null;
    // One transaction: the ratchet step, the used prekey and the message are saved
    // together, before the message is shown and before it is acknowledged.
    const entry = state.transaction((tx): InboxEntry | null => {
      let opened: Opened;
      try {
        // The current identity, else one a rollover replaced (retired.ts).
        opened = openMessage(state, from, m.data, room);
      } catch (err) {
        if (!(err instanceof E2EError)) throw err;
        tx.skipWrite();
        if (err.code === "DUPLICATE" && live) {
          // Only a message decrypted while this process ran: a ciphertext replayed to a
          // process started later is a replay there, not a message it missed.
          shared =
            state.recentLive.find(
              (r) =>
                r.digest === digest &&
                r.sender === from &&
                r.room === where &&
                r.at >= this.#openedAt,
            ) ?? null;
          return null;
        }
        if (err.code !== "DUPLICATE") {
          // Direct messages only: room messages are not in the sent log (docs/E2E.md § Session reset).
          const retry =
            room === null && RESETTABLE.has(err.code) && this.#resets.requestReset(from, m.data);
          host.emit("decryptFailed", { from, code: err.code, message: err.message, retry });
        }
        return null; // a replay, or a message that cannot be opened: never shown
      }
      crashPoint("after-decrypt");
      const r = opened.result;
      const fp = identityFingerprint(r.senderIdentity);
      observePeer(host, from, undefined, fp);
      opened.apply();
      const e = this.#entry(m, r.plaintext, true, isVerified(state, from, fp));
      state.inbox.push(e);
      if (live) {
        rememberLive(state, {
          digest,
          sender: from,
          ...(where !== undefined ? { room: where } : {}),
          at: state.now(),
          plaintext: r.plaintext,
          verified: e.verified,
        });
      }
      return e;
    });
    if (!entry) {
      if (unknown && shared) this.#hold(m.room as string, from); // announced, shown by the other process
      // Shown by another process of this client: shown here too, once.
      const got = shared as RecentLive | null;
      if (!got || this.#shownLive.has(digest)) return null;
      this.#shownLive.add(digest);
      return wrap(m, got.plaintext, true, got.verified);
    }
    if (live) this.#shownLive.add(digest);
    crashPoint("after-persist");
    if (unknown) this.#hold(m.room as string, from);
    if (this.#replaying || this.#holding.size > 0) return null; // shown in order by replay / #flush
    this.#scheduleClear(entry.key);
    return wrap(m, entry.plaintext, true, entry.verified);
  };

  /**
   * On the next turn of the event loop (after the application added its listeners),
   * emits on `client` the messages that were decrypted and saved but not yet shown
   * (before a crash, or while replaying), in order, each once.
   */
  replay(client: Client): void {
    setTimeout(() => {
      this.#replaying = false;
      this.#flush(client);
    }, 0);
  }

  /** Announces `from` in `room` (RoomMembership.senderSeen), then shows what was held. */
  #hold(room: string, from: string): void {
    const rooms = this.#rooms;
    const key = `${roomKey(room)}\n${from.toLowerCase()}`;
    if (!rooms || this.#holding.has(key)) return;
    this.#holding.add(key);
    void rooms
      .senderSeen(room, from)
      .catch(() => {}) // announced or not, the message is shown (and saved until then)
      .finally(() => {
        this.#holding.delete(key);
        const client = this.#host.client;
        if (client) this.#flush(client);
      });
  }

  /** Emits on `client`, in order, the saved messages not yet shown (none while holding). */
  #flush(client: Client): void {
    if (this.#replaying || this.#holding.size > 0) return;
    const state = this.#host.state;
    const pending = state.transaction((tx) => {
      tx.skipWrite();
      return state.inbox.filter((e) => !this.#delivered.has(e.key));
    });
    for (const entry of pending) {
      client.emit("message", inboxMessage(entry));
      this.#scheduleClear(entry.key);
    }
  }

  #entry(m: IncomingMessage, plaintext: Uint8Array, e2e: boolean, verified: boolean): InboxEntry {
    return {
      key: Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex"),
      sender: m.from,
      at: this.#host.state.now(),
      queuedAt: m.queuedAt ? Math.floor(m.queuedAt.getTime() / 1000) : null,
      plaintext,
      e2e,
      verified,
      ...(m.room !== null ? { room: m.room } : {}),
    };
  }

  /** Removes shown messages from the inbox once their listeners have run (one save per batch). */
  #scheduleClear(key: string): void {
    this.#delivered.add(key);
    if (this.#clearScheduled) return;
    this.#clearScheduled = true;
    queueMicrotask(() => {
      this.#clearScheduled = false;
      const done = new Set(this.#delivered);
      this.#delivered.clear();
      const state = this.#host.state;
      try {
        state.transaction(() => {
          state.inbox = state.inbox.filter((e) => !done.has(e.key));
        });
      } catch {
        // Kept in the inbox: shown again after a restart rather than lost.
      }
    });
  }
}
