/**
 * Members of a room this client was never told had joined (docs/E2E.md § Rooms,
 * "Members never seen joining"): per room, the members this client knows of — the first
 * member list it read, then join and leave events — and the announcement (`roomMember`,
 * with the member's key fingerprint and whether it is verified) of any other member,
 * found in a member list read again or as the sender of a room message, before it
 * counts. A hostile server that withholds a join event cannot have a newcomer's messages
 * shown, or a newcomer encrypted to, in silence.
 */
import { roomKey } from "../rooms/names.ts";
import type { E2EEvents } from "./manager-types.ts";
import type { E2EState } from "./state.ts";

/** A member as a member list gives it: lower-case ID, name. */
export interface ListedMember {
  id: string;
  name: string;
}

/** What the tracker needs of the room layer (rooms.ts). */
export interface PresenceHost {
  readonly state: E2EState;
  clientId(): string;
  /** The room's member list (this client left out), read from the server when not cached. */
  load(room: string): Promise<{ room: string; members: ListedMember[] }>;
  /** The member's key as this client knows it, else fetched (null: no keys). */
  memberKey(id: string, name?: string): Promise<{ fingerprint: string | null; verified: boolean }>;
  verified(id: string, fingerprint: string): boolean;
  emit<K extends keyof E2EEvents>(event: K, ...args: E2EEvents[K]): boolean;
}

export class RoomPresenceTracker {
  readonly #host: PresenceHost;
  /** Room key → IDs of the members this client knows of. */
  readonly #known = new Map<string, Set<string>>();

  constructor(host: PresenceHost) {
    this.#host = host;
  }

  /** A membership event: `joined` adds the member, `left` and `removed` take it out. */
  onEvent(room: string, event: string, id: string): void {
    const known = this.#known.get(roomKey(room));
    if (!known) return; // no list read yet: the first one is the baseline
    if (event === "joined") known.add(id.toLowerCase());
    else if (event === "left" || event === "removed") known.delete(id.toLowerCase());
  }

  /** True when `from` is this client or a member of `room` it knows of (no list read yet: false). */
  knows(room: string, from: string): boolean {
    const id = from.toLowerCase();
    return id === this.#host.clientId().toLowerCase() || !!this.#known.get(roomKey(room))?.has(id);
  }

  /**
   * A member list was read: the first for `room` is the baseline; in a later one, each
   * member not known is announced.
   */
  async listRead(room: string, members: ListedMember[]): Promise<void> {
    const known = this.#known.get(roomKey(room));
    if (!known) this.#known.set(roomKey(room), new Set(members.map((m) => m.id)));
    else
      await this.#announce(
        room,
        members.filter((m) => !known.has(m.id)),
      );
  }

  /**
   * A room message came from `from`, whom `knows` does not know: the member list is read
   * again (the caller dropped its cached copy), each member it did not know of is
   * announced, and `from` too, whatever the list says.
   */
  async senderSeen(room: string, from: string): Promise<void> {
    let got: { room: string; members: ListedMember[] } | null = null;
    try {
      got = await this.#host.load(room);
    } catch {
      // the list could not be read: the sender is announced without a name
    }
    if (this.knows(room, from)) return;
    const id = from.toLowerCase();
    const name =
      got?.members.find((m) => m.id === id)?.name ??
      this.#host.state.knownPeers.get(id)?.name ??
      "";
    await this.#announce(got?.room ?? room.replace(/^#/, ""), [{ id, name }]);
  }

  /** Emits `roomMember` for each of `members` not known yet and adds it to the known members. */
  async #announce(room: string, members: ListedMember[]): Promise<void> {
    const key = roomKey(room);
    let known = this.#known.get(key);
    if (!known) {
      known = new Set();
      this.#known.set(key, known);
    }
    for (const m of members) {
      if (known.has(m.id)) continue;
      known.add(m.id);
      let k: { fingerprint: string | null; verified: boolean };
      try {
        // What a received message recorded, else fetched (as for a join).
        const recorded = this.#host.state.knownPeers.get(m.id)?.fingerprint;
        k = recorded
          ? { fingerprint: recorded, verified: this.#host.verified(m.id, recorded) }
          : await this.#host.memberKey(m.id, m.name);
      } catch {
        k = { fingerprint: null, verified: false };
      }
      this.#host.emit("roomMember", { room, member: m, ...k });
    }
  }
}
