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
import { lookupPeer, sendDirect } from "./direct.ts";
import { syncKeys } from "./directory.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint, safetyNumber } from "./fingerprint.ts";
import { publicIdentity } from "./keys.ts";
import type { E2EEvents, E2EOptions, PeerInfo, SendOptions, SendResult } from "./manager-types.ts";
import { adoptFetched, type E2EHost, isVerified, observePeer } from "./peer-keys.ts";
import { E2EReceiver } from "./receive.ts";
import { resendAfterReset } from "./resend.ts";
import { decodeResetEnvelope, type ResetRequest, ResetRequester } from "./reset.ts";
import { RoomE2E, type RoomMemberKey, type RoomSendOptions, type RoomSendResult } from "./rooms.ts";
import { defaultStateDir, E2EState } from "./state.ts";

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

const encoder = new TextEncoder();

export class E2EManager extends EventEmitter<E2EEvents> {
  readonly state: E2EState;
  #client: Client | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  /** Resolves at `attach`. */
  readonly #attached = Promise.withResolvers<void>();
  /** Asks senders to send again what could not be decrypted (reset.ts). */
  readonly #resets = new ResetRequester(
    (to, data) => this.#requireClient().send(to, data),
    () => this.#attached.promise.then(() => this.keysSynced),
    () => this.state.identity,
  );
  /** The manager as the parts of the layer see it (peer-keys.ts). */
  readonly #host: E2EHost;
  /** Decrypts and saves incoming messages, and shows again what a crash left unshown (receive.ts). */
  readonly #receiver: E2EReceiver;
  /** End-to-end encrypted room messages (rooms.ts). */
  readonly #rooms: RoomE2E;

  /** Set when the directory holds another E2E identity of ours (see E2EOptions.takeover). */
  #elsewhere: E2EError | null = null;
  readonly #takeover: boolean;

  private constructor(state: E2EState, takeover = false) {
    super();
    this.state = state;
    this.#takeover = takeover;
    const manager = this;
    this.#host = {
      state,
      get client() {
        return manager.#client;
      },
      emit: (event, ...args) =>
        (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args),
    };
    this.#rooms = new RoomE2E({
      state,
      client: () => this.#requireClient(),
      observe: (id, name, fp) => void observePeer(this.#host, id, name, fp),
      verified: (id, fp) => isVerified(state, id, fp),
      emit: this.#host.emit,
      serial: (task) => this.#serial(task),
    });
    this.#receiver = new E2EReceiver(
      this.#host,
      {
        onResetRequest: (from, data) => this.#onResetRequest(from, data),
        requestReset: (from, data) => this.#resets.add(from, data),
      },
      {
        // Before `attach` (or a layer used without a client) there is no member list to
        // hold a sender against: as when no list has been read, the server's is the baseline.
        knows: (room, from) => this.#client === null || this.#rooms.knows(room, from),
        senderSeen: (room, from) =>
          this.#attached.promise.then(() => this.#serial(() => this.#rooms.senderSeen(room, from))),
      },
    );
    this.incoming = this.#receiver.incoming;
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
  readonly incoming: (m: IncomingMessage) => IncomingMessage | null;

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
    client.on("room", (e) => this.#rooms.onEvent(e.room, e.event, e.member.id));
    this.keysSynced = this.syncKeys();
    this.#receiver.replay(client);
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
    return sendDirect(this.#host, client, to, data, opts);
  }

  /**
   * Sends `data` to the room `room` (`#ops` or `ops`; this client must be a member):
   * end-to-end encrypted to every other member with keys, as one C2C type 5 message
   * (docs/E2E.md § Rooms). A member without keys is skipped (`roomSkipped`, once per
   * member); when no member has keys the message goes in plaintext (`plaintext`).
   * `requireE2E` / `strict` refuse instead (`NO_KEYS`, `UNVERIFIED`; `strict` also for
   * an unverified member). The state is saved before the message leaves. Throws
   * `E2EError` (`KEY_CHANGED` for a verified member whose key changed,
   * `IDENTITY_ELSEWHERE` as `send`, …), `RoomError`
   * (`not_member`, `not_found`), or what `Client.send` throws.
   */
  sendRoom(
    room: string,
    data: string | Uint8Array,
    opts: RoomSendOptions = {},
  ): Promise<RoomSendResult> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    return this.#serial(async () => {
      // As for a direct message: two identities of ours taking turns, refused until resolved.
      if (this.#elsewhere) throw this.#elsewhere;
      return this.#rooms.send(room, bytes, opts);
    });
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
    return this.#serial(async () => lookupPeer(this.#host, this.#requireClient(), query));
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
          adopt: (fetched) => adoptFetched(this.#host, fetched),
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
