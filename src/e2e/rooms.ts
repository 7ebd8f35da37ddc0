/**
 * End-to-end encrypted room messages (docs/E2E.md § Rooms): a room message is encrypted
 * to each member over the pairwise sessions (the X3DH / Double Ratchet sessions of
 * direct messages), with the room bound into the associated data, and goes to the
 * server as ONE C2C type 5 frame (docs/PROTOCOL.md § End-to-end encrypted room
 * messages); the server hands each member only its own ciphertext.
 *
 * Policy (what a member without keys gets): a member that has published no E2E keys is
 * **skipped** — it cannot read an E2E message, and sending the others' message to the
 * server in plaintext for its sake would hand the server what E2E exists to hide — and
 * the sender is warned once per member and room (`roomSkipped`). Only when *no* other
 * member has keys does the message go as a plaintext room message (with the
 * `plaintext` warning), as a direct message to a peer without keys does. `requireE2E`
 * and `strict` refuse instead, and `strict` also refuses a room with an unverified
 * member.
 *
 * Members joining between the sender's member list and the server's fan-out get no
 * ciphertext: the server says so (NOTICE `recipients`) and this layer encrypts the
 * message for them and sends it again (the message is kept 60 s for that).
 */
import type { Client } from "../client/client.ts";
import type { Notice } from "../client/types.ts";
import { roomKey } from "../rooms/names.ts";
import { MAX_MESSAGE_DATA } from "../wire/constants.ts";
import { roomHeaderBytes } from "../wire/room.ts";
import type { RoomCiphertext } from "../wire/room-e2e.ts";
import { ENTRY_OVERHEAD, roomE2EHeaderBytes, splitEntries } from "../wire/room-e2e.ts";
import { type FetchedBundle, fetchBundle } from "./directory.ts";
import { PREKEY_OVERHEAD, paddedSize } from "./envelope.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint } from "./fingerprint.ts";
import type { E2EEvents } from "./manager-types.ts";
import { followRollover } from "./rollover.ts";
import { rolloverAnnouncement } from "./rollover-peer.ts";
import { RoomPresenceTracker } from "./room-presence.ts";
import { encryptMessage, startSession } from "./session.ts";
import type { E2EState } from "./state.ts";

/** Options of `E2EManager.sendRoom`. */
export interface RoomSendOptions {
  /** Refuse (`NO_KEYS`) rather than skip a member without keys or send plaintext. */
  requireE2E?: boolean;
  /** Only when every other member has keys and is verified (`NO_KEYS`, `UNVERIFIED`). */
  strict?: boolean;
}

/** What `E2EManager.sendRoom` did. */
export interface RoomSendResult {
  /** The room's name as the server has it. */
  room: string;
  /** True when the message went end-to-end encrypted (to `members`). */
  e2e: boolean;
  /** IDs of the members it was encrypted to. */
  members: string[];
  /** IDs of members skipped because they have published no keys. */
  skipped: string[];
}

/** A member of a room as the E2E layer sees it. */
export interface RoomMemberKey {
  id: string;
  name: string;
  /** `SHA256:…` of its identity key, null when it has published none. */
  fingerprint: string | null;
  verified: boolean;
}

/** What the room layer needs of the manager. */
export interface RoomHost {
  readonly state: E2EState;
  client(): Client;
  /** Records a peer's key in `known_peers` (new, changed: events). */
  observe(id: string, name: string | undefined, fingerprint: string): void;
  verified(id: string, fingerprint: string): boolean;
  emit<K extends keyof E2EEvents>(event: K, ...args: E2EEvents[K]): boolean;
  /** Runs `task` after every earlier send (one at a time). */
  serial<T>(task: () => Promise<T>): Promise<T>;
}

/** A message kept for a re-send to members the server says it lacked. */
interface Sent {
  room: string;
  data: Uint8Array;
  covered: Set<string>;
  at: number;
  /** The send's terms, kept for the re-send (`strict`: verified members only). */
  opts: RoomSendOptions;
}

const KEEP_MS = 60_000;
/** How long a member found without keys is taken to have none (ms). */
const KEYLESS_MS = 60_000;
/** Waits of 1.1 s for the directory's fetch budget, per member, before giving up. */
const FETCH_RETRIES = 30;
const KEEP_MAX = 256;

/**
 * Throws `E2EError` `TOO_LARGE` when a message of `length` bytes, encrypted (its padding
 * bucket plus the prekey form's overhead, the worst case), would not fit the server's
 * `max_message_size`, a type 5 message, or the stored room message a member gets.
 */
function checkSize(client: Client, room: string, length: number): void {
  const roomBytes = new TextEncoder().encode(room).length;
  const ciphertext = paddedSize(length) + PREKEY_OVERHEAD;
  const limit = Math.min(
    client.settings.max_message_size,
    MAX_MESSAGE_DATA - roomE2EHeaderBytes(roomBytes) - ENTRY_OVERHEAD,
    MAX_MESSAGE_DATA - roomHeaderBytes(true, roomBytes),
  );
  if (ciphertext > limit)
    throw new E2EError(
      "TOO_LARGE",
      `an end-to-end encrypted message to #${room} of ${length} bytes would be ${ciphertext} bytes encrypted, over the limit of ${limit}`,
    );
}

export class RoomE2E {
  readonly #host: RoomHost;
  /** Room key → its other members (refreshed on membership events and reconnects). */
  readonly #members = new Map<string, { room: string; members: { id: string; name: string }[] }>();
  /** Members found without keys → when (ms); asked again after KEYLESS_MS. */
  readonly #keyless = new Map<string, number>();
  /** Member IDs already warned about per room key (once, not per message). */
  readonly #warned = new Map<string, Set<string>>();
  readonly #sent = new Map<string, Sent>();
  /** Members this client knows of, and the announcement of the others (room-presence.ts). */
  readonly #presence: RoomPresenceTracker;

  constructor(host: RoomHost) {
    this.#host = host;
    this.#presence = new RoomPresenceTracker({
      state: host.state,
      clientId: () => host.client().id,
      load: (room) => this.#load(room),
      memberKey: (id, name) => this.memberKey(id, name),
      verified: host.verified,
      emit: host.emit,
    });
  }

  /** Membership changed (or may have): the member list is read again at the next send. */
  forget(room?: string): void {
    if (room === undefined) this.#members.clear();
    else this.#members.delete(roomKey(room));
  }

  /** A membership event (client `room` event): the known members follow it. */
  onEvent(room: string, event: string, id: string): void {
    this.forget(room);
    this.#presence.onEvent(room, event, id);
  }

  /** See RoomPresenceTracker.knows. */
  knows(room: string, from: string): boolean {
    return this.#presence.knows(room, from);
  }

  /** See RoomPresenceTracker.senderSeen: the member list is read again first. */
  senderSeen(room: string, from: string): Promise<void> {
    this.forget(room);
    return this.#presence.senderSeen(room, from);
  }

  /** The other members of `room`, each with its key as this client knows it. */
  async members(room: string): Promise<{ room: string; members: RoomMemberKey[] }> {
    const got = await this.#load(room);
    const out: RoomMemberKey[] = [];
    for (const m of got.members) out.push({ ...m, ...(await this.memberKey(m.id, m.name)) });
    return { room: got.room, members: out };
  }

  /**
   * The identity key of `id` as this client knows it — from a session, else fetched
   * (and a session started, so the one-time prekey is not wasted); null without keys.
   * `fetch` false: only what `known_peers` recorded (for a member who left).
   */
  async memberKey(
    id: string,
    name?: string,
    fetch = true,
  ): Promise<{ fingerprint: string | null; verified: boolean }> {
    const fp = fetch
      ? await this.#ensureSession(id, name)
      : (this.#host.state.knownPeers.get(id)?.fingerprint ?? null);
    return { fingerprint: fp, verified: fp !== null && this.#host.verified(id, fp) };
  }

  /** See `E2EManager.sendRoom`. */
  async send(room: string, data: Uint8Array, opts: RoomSendOptions): Promise<RoomSendResult> {
    const host = this.#host;
    const client = host.client();
    const got = await this.#load(room);
    const name = got.room;
    checkSize(client, name, data.length);
    const keyed: RoomMemberKey[] = [];
    const keyless: { id: string; name: string }[] = [];
    for (const m of got.members) {
      host.state.knownPeers.checkSend(m.id, m.name); // KEY_CHANGED for a verified member
      const fp = await this.#ensureSession(m.id, m.name);
      if (fp === null) keyless.push(m);
      else keyed.push({ ...m, fingerprint: fp, verified: host.verified(m.id, fp) });
    }
    if (keyless.length > 0 && (opts.requireE2E || opts.strict)) {
      const who = keyless.map((m) => m.name || m.id).join(", ");
      throw new E2EError("NO_KEYS", `#${name}: ${who} published no E2E keys; nothing sent`);
    }
    if (opts.strict) {
      const unverified = keyed.filter((m) => !m.verified);
      if (unverified.length > 0) {
        const who = unverified.map((m) => m.name || m.id).join(", ");
        throw new E2EError(
          "UNVERIFIED",
          `#${name}: ${who} not verified (strict mode; verify with backbone verify ${unverified[0]?.name || unverified[0]?.id}${unverified.length > 1 ? " and each of the others" : ""}); nothing sent`,
        );
      }
    }
    if (keyed.length === 0 && keyless.length > 0) {
      // Nobody to encrypt to: plaintext, as to a direct peer without keys.
      this.#warnOnce(name, "*plaintext*", () =>
        host.emit("plaintext", {
          id: `#${name}`,
          name: `#${name}`,
          direction: "out",
          reason: "no member of the room has published E2E keys",
        }),
      );
      client.send(`#${name}`, data);
      return { room: name, e2e: false, members: [], skipped: [] };
    }
    for (const m of keyless) {
      this.#warnOnce(name, m.id, () =>
        host.emit("roomSkipped", {
          room: name,
          id: m.id,
          name: m.name,
          reason: "it has published no E2E keys",
        }),
      );
    }
    const messageId = crypto.getRandomValues(new Uint8Array(8));
    const ids = keyed.map((m) => m.id);
    this.#encryptAndSend(messageId, name, ids, data);
    this.#remember(Buffer.from(messageId).toString("hex"), {
      room: name,
      data,
      covered: new Set([...ids, ...keyless.map((m) => m.id)]),
      at: Date.now(),
      opts,
    });
    return { room: name, e2e: true, members: ids, skipped: keyless.map((m) => m.id) };
  }

  /**
   * The server's NOTICE `recipients`: members the message lacked (joined meanwhile) get
   * it now, encrypted for them, on the send's terms (`strict`: only if verified) and
   * only if the member list, read again, has them (a NOTICE alone never adds a
   * recipient); entries it dropped (members who left) mean the member list is stale.
   */
  onNotice(n: Notice): void {
    const body = n as Notice & { message?: unknown; missing?: unknown; not_members?: unknown };
    if (n.status !== "recipients" || typeof body.message !== "string") return;
    const sent = this.#sent.get(body.message);
    const listed = Array.isArray(body.missing) ? body.missing : [];
    const missing = listed
      .filter((id): id is string => typeof id === "string")
      .map((id) => id.toLowerCase())
      .filter((id) => !sent?.covered.has(id));
    // Members it did not know of, or entries for clients no longer members: the member
    // list is stale. (Members it skipped for want of keys are reported every time.)
    const dropped = Array.isArray(body.not_members) && body.not_members.length > 0;
    if (missing.length > 0 || dropped || !sent) this.forget(n.address);
    if (!sent || missing.length === 0) return;
    for (const id of missing) sent.covered.add(id);
    void this.#host
      .serial(async () => {
        const ids: string[] = [];
        const now = new Map((await this.#load(sent.room)).members.map((m) => [m.id, m.name]));
        const skip = (id: string, name: string, reason: string) =>
          this.#host.emit("roomSkipped", { room: sent.room, id, name, reason });
        for (const id of missing) {
          const name = now.get(id);
          if (name === undefined) {
            skip(id, "", "the server said it lacked the message, but it is not a member");
            continue;
          }
          this.#host.state.knownPeers.checkSend(id, name);
          const fp = await this.#ensureSession(id, name);
          if (fp === null)
            this.#warnOnce(sent.room, id, () => skip(id, name, "it has published no E2E keys"));
          else if (sent.opts.strict && !this.#host.verified(id, fp))
            skip(id, name, "it joined unverified (strict mode); verify with backbone verify");
          else ids.push(id);
        }
        if (ids.length > 0)
          this.#encryptAndSend(
            Buffer.from(body.message as string, "hex"),
            sent.room,
            ids,
            sent.data,
          );
      })
      .catch((error: Error) =>
        this.#host.emit("roomSkipped", {
          room: sent.room,
          id: missing.join(","),
          name: "",
          reason: `could not send to a member who joined: ${error.message}`,
        }),
      );
  }

  /** Encrypts `data` to `ids` in one transaction (saved before it leaves), sends it. */
  #encryptAndSend(messageId: Uint8Array, room: string, ids: string[], data: Uint8Array): void {
    const { state } = this.#host;
    const announce: [string, Uint8Array][] = [];
    const entries = state.transaction(() => {
      const out: RoomCiphertext[] = [];
      for (const id of ids) {
        const r = encryptMessage(state.identity, state.peer(id), data, room);
        state.peers.set(id, r.peer);
        out.push({ member: id, ciphertext: r.data });
        // After our key rollover, each member gets the signed chain first, once.
        const rollover = rolloverAnnouncement(state, id);
        if (rollover) announce.push([id, rollover]);
      }
      return out;
    });
    const client = this.#host.client();
    for (const [id, rollover] of announce) client.send(id, rollover);
    for (const group of splitEntries(room, entries)) client.sendRoomE2E(messageId, room, group);
  }

  /** A session with `id` (fetching its bundle the first time); its fingerprint, or null without keys. */
  async #ensureSession(id: string, name?: string): Promise<string | null> {
    const { state } = this.#host;
    const current = () =>
      state.transaction((tx) => {
        tx.skipWrite();
        return state.peer(id).sessions.find((s) => s.ratchet.cks) ?? null;
      });
    const have = current();
    if (have) return identityFingerprint(have.peerIdentity);
    if (Date.now() - (this.#keyless.get(id) ?? Number.NEGATIVE_INFINITY) < KEYLESS_MS) return null;
    const fetched = await this.#fetch(id);
    if (!fetched) {
      this.#keyless.set(id, Date.now());
      return null;
    }
    this.#keyless.delete(id);
    const fp = identityFingerprint(fetched.bundle.identity);
    state.transaction((tx) => {
      const peer = state.peer(id);
      if (peer.sessions.some((s) => s.ratchet.cks)) return tx.skipWrite();
      // A signed rollover from the key we knew keeps it verified (docs/E2E.md § Key rollover).
      const moved = followRollover(
        state.knownPeers,
        id,
        fetched.bundle.identity,
        fetched.rollover,
        state.now(),
      );
      if (moved) {
        state.saveKnownPeers();
        this.#host.emit("keyRolledOver", moved);
      }
      this.#host.observe(id, fetched.name || name, fp);
      state.knownPeers.checkSend(id, name);
      state.peers.set(id, startSession(state.identity, peer, fetched.bundle));
    });
    const now = current();
    return now ? identityFingerprint(now.peerIdentity) : fp;
  }

  /**
   * The bundle of `id`, or null without keys. The directory allows each client
   * KEY_FETCH_RATE fetches a second after a burst (src/server/keys.ts): a room with many
   * members this client never talked to waits for it rather than leave them out.
   */
  async #fetch(id: string): Promise<FetchedBundle | null> {
    const client = this.#host.client();
    for (let attempt = 0; ; attempt++) {
      try {
        return await fetchBundle((req) => client.keyDirectory(req), id);
      } catch (err) {
        if (!(err instanceof E2EError) || err.code !== "DIRECTORY_RATE_LIMITED") throw err;
        if (attempt >= FETCH_RETRIES) throw err;
        await Bun.sleep(1100);
      }
    }
  }

  async #load(room: string): Promise<{ room: string; members: { id: string; name: string }[] }> {
    const key = roomKey(room);
    const cached = this.#members.get(key);
    if (cached) return cached;
    const client = this.#host.client();
    const got = await client.rooms.members(room);
    const entry = {
      room: got.room,
      members: got.members
        .filter((m) => m.state === "member" && m.id !== client.id)
        .map((m) => ({ id: m.id.toLowerCase(), name: m.name })),
    };
    this.#members.set(key, entry);
    await this.#presence.listRead(entry.room, entry.members);
    return entry;
  }

  #warnOnce(room: string, id: string, warn: () => void): void {
    const key = roomKey(room);
    let set = this.#warned.get(key);
    if (!set) {
      set = new Set();
      this.#warned.set(key, set);
    }
    if (set.has(id)) return;
    set.add(id);
    warn();
  }

  #remember(id: string, sent: Sent): void {
    const now = Date.now();
    for (const [k, s] of this.#sent) if (now - s.at > KEEP_MS) this.#sent.delete(k);
    if (this.#sent.size >= KEEP_MAX) {
      const oldest = this.#sent.keys().next().value;
      if (oldest !== undefined) this.#sent.delete(oldest);
    }
    this.#sent.set(id, sent);
  }
}
