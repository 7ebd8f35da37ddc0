/**
 * The E2E layer of the client library (docs/E2E.md): encrypts direct messages to peers
 * that published keys, decrypts incoming ones, and marks every incoming message
 * `e2e: true|false` and `verified`. It plugs into `connect()` through the `incoming`
 * option, so it sees every message before the application does and before a stored
 * one is acknowledged to the server.
 *
 * @example (connectE2E is in ./connect.ts)
 * const { client, e2e } = await connectE2E({ identity: "alice.identity" });
 * await e2e.send("bob", "hello");            // encrypted when bob has keys
 * await e2e.sendRoom("#ops", "deploy at 4"); // encrypted to each member (./rooms.ts)
 * client.on("message", (m) => console.log(m.e2e, m.verified, m.data));
 */
import { EventEmitter } from "node:events";
import type { Client } from "../client/client.ts";
import type { IncomingMessage } from "../client/types.ts";
import { ConnectionError } from "../errors.ts";
import { isUuid } from "../ids.ts";
import { roomKey } from "../rooms/names.ts";
import { type FetchedBundle, fetchBundle, syncKeys } from "./directory.ts";
import { isEnvelope } from "./envelope.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint, safetyNumber } from "./fingerprint.ts";
import { inboxMessage, liveDigest, rememberLive, wrap } from "./incoming.ts";
import { publicIdentity } from "./keys.ts";
import type { Observation } from "./known-peers.ts";
import type { E2EEvents, E2EOptions, PeerInfo, SendOptions, SendResult } from "./manager-types.ts";
import { checkPin, fillName, resolvePeer } from "./peer-checks.ts";
import { resendAfterReset } from "./resend.ts";
import {
  decodeResetEnvelope,
  isResetEnvelope,
  RESETTABLE,
  type ResetRequest,
  ResetRequester,
} from "./reset.ts";
import { type Opened, openMessage } from "./retired.ts";
import { followRollover, isRolloverEnvelope } from "./rollover.ts";
import { receiveRollover, rolloverAnnouncement } from "./rollover-peer.ts";
import { RoomE2E, type RoomMemberKey, type RoomSendOptions, type RoomSendResult } from "./rooms.ts";
import { recordSent } from "./sent.ts";
import { encryptMessage, startSession } from "./session.ts";
import { defaultStateDir, E2EState, type InboxEntry, type RecentLive } from "./state.ts";

export type {
  E2EEvents,
  E2EOptions,
  PeerInfo,
  RoomMemberKey,
  RoomSendOptions,
  RoomSendResult,
  SendOptions,
  SendResult,
};

/** Fault injection for the crash tests (test/integration/e2e-crash.test.ts) only. */
const CRASH_AT = process.env.BACKBONE_E2E_TEST_CRASH_AT ?? "";
function crashPoint(name: string): void {
  if (CRASH_AT === name) process.kill(process.pid, "SIGKILL");
}

const encoder = new TextEncoder();

export class E2EManager extends EventEmitter<E2EEvents> {
  readonly state: E2EState;
  #client: Client | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #clearScheduled = false;
  /** When this process opened the state (unix s): see RecentLive. */
  readonly #openedAt: number;
  /** Resolves at `attach`. */
  readonly #attached = Promise.withResolvers<void>();
  /** Asks senders to send again what could not be decrypted (reset.ts). */
  readonly #resets = new ResetRequester(
    (to, data) => this.#requireClient().send(to, data),
    () => this.#attached.promise.then(() => this.keysSynced),
    () => this.state.identity,
  );
  /** Digests of live messages this process has shown (each once, see RecentLive). */
  #shownLive = new Set<string>();
  /** Keys of inbox entries shown, to remove at the next clearing. */
  #delivered = new Set<string>();

  /**
   * Set while messages saved before a crash wait to be shown: until `attach` shows
   * them, new messages join them in the inbox (saved, acknowledged, not yet shown), so
   * everything is shown once and in order.
   */
  #replaying: boolean;
  /** End-to-end encrypted room messages (rooms.ts). */
  readonly #rooms: RoomE2E;

  /** Set when the directory holds another E2E identity of ours (see E2EOptions.takeover). */
  #elsewhere: E2EError | null = null;
  readonly #takeover: boolean;

  private constructor(state: E2EState, takeover = false) {
    super();
    this.state = state;
    this.#takeover = takeover;
    this.#rooms = new RoomE2E({
      state,
      client: () => this.#requireClient(),
      observe: (id, name, fp) => void this.#observe(id, name, fp),
      verified: (id, fp) => this.#verified(id, fp),
      emit: (event, ...args) =>
        (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args),
      serial: (task) => this.#serial(task),
    });
    this.#openedAt = state.now();
    this.#replaying = state.inbox.length > 0;
  }

  /** Opens (creating when absent) the state of `clientId`. Throws `E2EError` (see `E2EState.open`). */
  static open(clientId: string, options: E2EOptions = {}): E2EManager {
    const dir = options.stateDir ?? defaultStateDir(clientId);
    return new E2EManager(E2EState.open(dir, clientId, options), options.takeover);
  }

  /** This client's ID. */
  get id(): string {
    return this.state.identity.clientId;
  }

  /** The client this layer is attached to (null before `attach`). */
  get client(): Client | null {
    return this.#client;
  }

  /** `SHA256:…` of this client's identity key. */
  get fingerprint(): string {
    return identityFingerprint(publicIdentity(this.state.identity));
  }

  /**
   * The `incoming` hook for `connect()`: decrypts E2E envelopes (persisting the state
   * and the message before returning, so before the server gets an ACK), drops replays,
   * marks every message `e2e` and `verified`.
   */
  readonly incoming = (m: IncomingMessage): IncomingMessage | null => {
    const from = m.from;
    // Broadcasts are never end-to-end encrypted (there is no group protocol): shown as
    // they are, marked e2e: false, and without a downgrade warning.
    if (m.kind === "broadcast") return wrap(m, m.data, false, false);
    // A signed rollover: public keys only, never shown; replays change nothing.
    if (m.kind !== "room" && isRolloverEnvelope(m.data)) {
      const moved = receiveRollover(this.state, from, m.data);
      if (moved) this.emit("keyRolledOver", moved);
      return null;
    }
    // A peer could not decrypt messages of ours: answered in the background, never shown.
    if (m.kind !== "room" && isResetEnvelope(m.data)) {
      this.#onResetRequest(from, m.data);
      return null;
    }
    if (!isEnvelope(m.data)) {
      if (this.state.knownPeers.get(from)) {
        this.emit("plaintext", {
          id: from,
          ...(this.state.knownPeers.get(from)?.name
            ? { name: this.state.knownPeers.get(from)?.name as string }
            : {}),
          direction: "in",
          reason: "a peer with E2E keys sent plaintext",
        });
      }
      if (this.#replaying) {
        this.state.transaction(() => {
          this.state.inbox.push(this.#entry(m, m.data, false, false));
        });
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
    const entry = this.state.transaction((tx): InboxEntry | null => {
      let opened: Opened;
      try {
        // The current identity, else one a rollover replaced (retired.ts).
        opened = openMessage(this.state, from, m.data, room);
      } catch (err) {
        if (!(err instanceof E2EError)) throw err;
        tx.skipWrite();
        if (err.code === "DUPLICATE" && live) {
          // Only a message decrypted while this process ran: a ciphertext replayed to a
          // process started later is a replay there, not a message it missed.
          shared =
            this.state.recentLive.find(
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
          const retry = room === null && RESETTABLE.has(err.code) && this.#resets.add(from, m.data);
          this.emit("decryptFailed", { from, code: err.code, message: err.message, retry });
        }
        return null; // a replay, or a message that cannot be opened: never shown
      }
      crashPoint("after-decrypt");
      const r = opened.result;
      const fp = identityFingerprint(r.senderIdentity);
      this.#observe(from, undefined, fp);
      opened.apply();
      const e = this.#entry(m, r.plaintext, true, this.#verified(from, fp));
      this.state.inbox.push(e);
      if (live) {
        rememberLive(this.state, {
          digest,
          sender: from,
          ...(where !== undefined ? { room: where } : {}),
          at: this.state.now(),
          plaintext: r.plaintext,
          verified: e.verified,
        });
      }
      return e;
    });
    if (!entry) {
      // Shown by another process of this client: shown here too, once.
      const got = shared as RecentLive | null;
      if (!got || this.#shownLive.has(digest)) return null;
      this.#shownLive.add(digest);
      return wrap(m, got.plaintext, true, got.verified);
    }
    if (live) this.#shownLive.add(digest);
    crashPoint("after-persist");
    if (this.#replaying) return null; // shown in order by attach
    this.#scheduleClear(entry.key);
    return wrap(m, entry.plaintext, true, entry.verified);
  };

  #entry(m: IncomingMessage, plaintext: Uint8Array, e2e: boolean, verified: boolean): InboxEntry {
    return {
      key: Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex"),
      sender: m.from,
      at: this.state.now(),
      queuedAt: m.queuedAt ? Math.floor(m.queuedAt.getTime() / 1000) : null,
      plaintext,
      e2e,
      verified,
      ...(m.room !== null ? { room: m.room } : {}),
    };
  }

  /**
   * Binds the manager to its connected client and returns at once (like `connect`, so
   * the application can add its listeners before anything is delivered): publishes
   * keys in the background (again when the server says they run low, and after each
   * reconnect; `keysSynced` resolves after the first attempt), and on the next turn of
   * the event loop delivers messages that were decrypted and saved but not yet shown
   * before a crash.
   */
  attach(client: Client): void {
    this.#client = client;
    this.#attached.resolve();
    client.on("notice", (n) => {
      if (n.status === "prekeys_low") void this.syncKeys();
      this.#rooms.onNotice(n);
    });
    client.on("connect", () => {
      this.#rooms.forget(); // membership may have changed while away
      void this.syncKeys();
    });
    client.on("room", (e) => this.#rooms.forget(e.room));
    this.keysSynced = this.syncKeys();
    setTimeout(() => {
      const pending = this.state.transaction((tx) => {
        tx.skipWrite();
        return this.state.inbox.filter((e) => !this.#delivered.has(e.key));
      });
      this.#replaying = false;
      for (const entry of pending) {
        client.emit("message", inboxMessage(entry));
        this.#scheduleClear(entry.key);
      }
    }, 0);
  }

  /** The `IDENTITY_ELSEWHERE` error of the last key publication, or null. */
  get identityElsewhere(): E2EError | null {
    return this.#elsewhere;
  }

  /** Resolves after the first key publication attempt following `attach`. */
  keysSynced: Promise<void> = Promise.resolve();

  /** Publishes what the directory lacks; failures are reported as `syncFailed`. */
  async syncKeys(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    try {
      await this.#serial(() =>
        syncKeys((req) => client.keyDirectory(req), this.state, { takeover: this.#takeover }),
      );
      this.#elsewhere = null;
    } catch (err) {
      if (err instanceof E2EError && err.code === "IDENTITY_ELSEWHERE") this.#elsewhere = err;
      // A connection that dropped or closed: tried again at the next connect.
      if (err instanceof ConnectionError) return;
      this.emit("syncFailed", { error: err as Error });
    }
  }

  /**
   * Sends `data` to `to` (an ID or a name): end-to-end encrypted when the peer has
   * published keys, else plaintext (with a `plaintext` event) unless `requireE2E`.
   * The state is saved before the message leaves. Messages are sent in call order.
   * Throws `E2EError` (`KEY_CHANGED` for a verified peer whose key changed, `NO_KEYS`
   * with `requireE2E`, `strict` or `peerKey`, `PEER_KEY_MISMATCH`, `UNVERIFIED`,
   * directory errors), or what `Client.send` throws.
   */
  send(to: string, data: string | Uint8Array, opts: SendOptions = {}): Promise<SendResult> {
    return this.#serial(() =>
      this.#send(to, typeof data === "string" ? encoder.encode(data) : data, opts),
    );
  }

  async #send(to: string, data: Uint8Array, opts: SendOptions): Promise<SendResult> {
    const client = this.#requireClient();
    // Our peers would see two identities of ours taking turns: refused until resolved.
    if (this.#elsewhere) throw this.#elsewhere;
    const id = await resolvePeer(client, this.state, to, (e) => this.emit("nameChanged", e));
    const label = opts.name ?? (isUuid(to) ? undefined : to);
    const hasSession = this.state.transaction((tx) => {
      tx.skipWrite();
      this.state.knownPeers.checkSend(id, label);
      return this.state.peer(id).sessions.some((x) => x.ratchet.cks);
    });
    const fetched = hasSession ? null : await fetchBundle((req) => client.keyDirectory(req), id);
    if (!hasSession && !fetched) {
      if (opts.requireE2E || opts.strict || opts.peerKey) {
        throw new E2EError("NO_KEYS", `${label ?? to} has published no E2E keys`);
      }
      const name = opts.name ?? (isUuid(to) ? this.state.knownPeers.get(id)?.name : to);
      this.emit("plaintext", {
        id,
        ...(name ? { name } : {}),
        direction: "out",
        reason: "the peer has published no E2E keys",
      });
      client.send(id, data);
      return { to: id, e2e: false };
    }
    // Encrypted and saved in one transaction, before the message leaves.
    const envelope = this.state.transaction(() => {
      let peer = this.state.peer(id);
      if (fetched && !peer.sessions.some((x) => x.ratchet.cks)) {
        this.#followFetched(fetched);
        this.#observe(id, fetched.name, identityFingerprint(fetched.bundle.identity));
        this.state.knownPeers.checkSend(id, label);
        peer = startSession(this.state.identity, peer, fetched.bundle);
      }
      checkPin(id, label ?? to, peer, opts, (i, fp) => this.#verified(i, fp));
      const r = encryptMessage(this.state.identity, peer, data);
      this.state.peers.set(id, r.peer);
      // For a re-send after a session reset (pinned sends only ever to a verified key).
      recordSent(this.state, id, data, r.data, Boolean(opts.strict || opts.peerKey));
      return { data: r.data, rollover: rolloverAnnouncement(this.state, id) };
    });
    // After a rollover, the signed chain goes first to each peer, once.
    if (envelope.rollover) client.send(id, envelope.rollover);
    client.send(id, envelope.data);
    return { to: id, e2e: true };
  }

  /**
   * Sends `data` to the room `room` (`#ops` or `ops`; this client must be a member):
   * end-to-end encrypted to every other member with keys, as one C2C type 5 message
   * (docs/E2E.md § Rooms). A member without keys is skipped (`roomSkipped`, once per
   * member); when no member has keys the message goes in plaintext (`plaintext`).
   * `requireE2E` / `strict` refuse instead (`NO_KEYS`, `UNVERIFIED`; `strict` also for
   * an unverified member). The state is saved before the message leaves. Throws
   * `E2EError` (`KEY_CHANGED` for a verified member whose key changed, …), `RoomError`
   * (`not_member`, `not_found`), or what `Client.send` throws.
   */
  sendRoom(
    room: string,
    data: string | Uint8Array,
    opts: RoomSendOptions = {},
  ): Promise<RoomSendResult> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    return this.#serial(() => this.#rooms.send(room, bytes, opts));
  }

  /**
   * The other members of `room` with their identity key fingerprints and whether they
   * are verified (`fingerprint` null: no keys). Fetches keys it lacks (starting sessions).
   */
  roomMembers(room: string): Promise<{ room: string; members: RoomMemberKey[] }> {
    return this.#serial(() => this.#rooms.members(room));
  }

  /** Resolves once every send started so far (re-sends to members who joined too) is done. */
  idle(): Promise<void> {
    return this.#serial(async () => {});
  }

  /**
   * One member's key as `roomMembers` gives it (for a membership event); `fetch` false:
   * only what `known_peers` recorded, nothing asked of the directory (a member who left).
   */
  memberKey(
    id: string,
    name?: string,
    fetch = true,
  ): Promise<{ fingerprint: string | null; verified: boolean }> {
    return this.#serial(() => this.#rooms.memberKey(id.toLowerCase(), name, fetch));
  }

  /**
   * A peer's identity as this client knows it — from a session, else fetched from the
   * directory (then a session is started with it, so the fetched one-time prekey is not
   * wasted) — with its fingerprint, verification state and the safety number. Throws
   * `E2EError` (`NO_KEYS` when the peer has published none, `KEY_CHANGED`, directory errors).
   */
  lookupPeer(query: string): Promise<PeerInfo> {
    return this.#serial(async () => {
      const client = this.#requireClient();
      const id = await resolvePeer(client, this.state, query, (e) => this.emit("nameChanged", e));
      const known = this.state.transaction((tx) => {
        tx.skipWrite();
        return this.state.peer(id).sessions[0] !== undefined;
      });
      let name: string | undefined;
      const fetched = known ? null : await fetchBundle((req) => client.keyDirectory(req), id);
      if (!known && !fetched) throw new E2EError("NO_KEYS", `${query} has published no E2E keys`);
      const peer = this.state.transaction((tx) => {
        const current = this.state.peer(id);
        if (current.sessions[0] || !fetched) {
          tx.skipWrite();
          return current;
        }
        // Start a session with it, so the fetched one-time prekey is not wasted.
        name = fetched.name;
        this.#followFetched(fetched);
        this.#observe(id, name, identityFingerprint(fetched.bundle.identity));
        const started = startSession(this.state.identity, current, fetched.bundle);
        this.state.peers.set(id, started);
        return started;
      });
      const identity = (peer.sessions[0] as NonNullable<(typeof peer.sessions)[0]>).peerIdentity;
      const fingerprint = identityFingerprint(identity);
      const record = this.state.knownPeers.get(id);
      return {
        id,
        name: name ?? record?.name ?? "",
        fingerprint,
        verified: this.#verified(id, fingerprint),
        pending: record?.pending ?? null,
        safetyNumber: safetyNumber(this.id, publicIdentity(this.state.identity), id, identity),
      };
    });
  }

  /** The 60-digit safety number with `peerId` (docs/E2E.md § Trust); null before any contact. */
  safetyNumber(peerId: string): string | null {
    const id = peerId.toLowerCase();
    const session = this.state.transaction((tx) => {
      tx.skipWrite();
      return this.state.peer(id).sessions[0];
    });
    if (!session) return null;
    return safetyNumber(this.id, publicIdentity(this.state.identity), id, session.peerIdentity);
  }

  /** Marks `peerId` verified (its current key, as compared). Throws `E2EError`. */
  verify(peerId: string, fingerprint: string): void {
    this.state.transaction(() => {
      this.state.knownPeers.verify(peerId, fingerprint);
      this.state.saveKnownPeers();
    });
  }

  /**
   * Replaces this client's E2E identity by a new one signed by the old (docs/E2E.md
   * § Key rollover) and, when attached, publishes it (`keysSynced` resolves after).
   * Peers that knew the old key follow it without the key-change warning, and keep
   * their verification. Returns both fingerprints.
   */
  rotateIdentity(): { previous: string; fingerprint: string } {
    const previous = this.fingerprint;
    this.state.transaction(() => this.state.rotateIdentity());
    if (this.#client) this.keysSynced = this.syncKeys();
    return { previous, fingerprint: this.fingerprint };
  }

  /** Accepts a changed key of `peerId` (it becomes unverified). */
  acceptKey(peerId: string): void {
    this.state.transaction(() => {
      this.state.knownPeers.accept(peerId, this.state.now());
      this.state.saveKnownPeers();
    });
  }

  /** Releases the state's lock if a transaction still held it (it is held per transaction only). */
  close(): void {
    this.state.close();
  }

  /** A verified reset request from `from`: re-sends what it names, in the background. */
  #onResetRequest(from: string, data: Uint8Array): void {
    let request: ResetRequest;
    try {
      request = decodeResetEnvelope(data, from, this.id);
    } catch (err) {
      if (err instanceof E2EError) return; // forged, damaged or not for us: dropped
      throw err;
    }
    // Requests can come with the stored messages, before `attach`: handled after it.
    const resend = () =>
      resendAfterReset(
        {
          state: this.state,
          client: this.#requireClient(),
          adopt: (fetched) => {
            this.#followFetched(fetched);
            this.#observe(fetched.id, fetched.name, identityFingerprint(fetched.bundle.identity));
          },
        },
        from.toLowerCase(),
        request,
      );
    void this.#attached.promise
      .then(() => this.#serial(resend))
      .then(
        (r) => r && this.emit("resent", r),
        (error) => {
          // A dropped connection: the peer's next failure asks again.
          if (!(error instanceof ConnectionError))
            this.emit("syncFailed", { error: error as Error });
        },
      );
  }

  /** Follows the rollover chain a fetched bundle came with (before observing its key). */
  #followFetched(fetched: FetchedBundle): void {
    const moved = followRollover(
      this.state.knownPeers,
      fetched.id,
      fetched.bundle.identity,
      fetched.rollover,
      this.state.now(),
    );
    if (!moved) return;
    this.state.saveKnownPeers();
    this.emit("keyRolledOver", moved);
  }

  #observe(id: string, name: string | undefined, fp: string): Observation {
    const o = this.state.knownPeers.observe(id, name, fp, this.state.now());
    if (!o.peer.name) void fillName(this.#client, this.state, id);
    if (o.status !== "same" || name) this.state.saveKnownPeers();
    if (o.status === "new") this.emit("newPeer", { id, fingerprint: fp });
    if (o.status === "changed") {
      this.emit("keyChanged", { id, previous: o.previous, fingerprint: fp, blocked: o.blocked });
    }
    return o;
  }

  #verified(id: string, fp: string): boolean {
    const p = this.state.knownPeers.get(id);
    return Boolean(p?.verified && !p.pending && p.fingerprint === fp);
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
      try {
        this.state.transaction(() => {
          this.state.inbox = this.state.inbox.filter((e) => !done.has(e.key));
        });
      } catch {
        // Kept in the inbox: shown again after a restart rather than lost.
      }
    });
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => {});
    return run;
  }

  #requireClient(): Client {
    if (!this.#client)
      throw new E2EError("NOT_ATTACHED", "the E2E layer is not attached to a client");
    return this.#client;
  }
}
