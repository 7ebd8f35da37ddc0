/**
 * The rooms this node has used, kept in memory (docs/PROTOCOL.md § Rooms): the store
 * holds rooms and memberships (the truth, shared by every node on it); a room message
 * needs no store read once its room is here. This node's own changes go to the store
 * first, then to memory; a change by another process clears the memory (`clear`).
 * Invitations older than `room_invite_ttl` count as absent and are deleted in the
 * room's turn (`lapse`).
 */
import { roomKey } from "../rooms/names.ts";
import type { RoomRecord, RoomState } from "../store/store.ts";
import type { ServerContext } from "./context.ts";

/** A room as this node knows it. `members`: client ID → state, in the order they came. */
export interface Room {
  record: RoomRecord;
  members: Map<string, RoomState>;
  /** When each invitation was made (unix s): it lapses after `room_invite_ttl`. */
  invitedAt?: Map<string, number>;
}

export class RoomTable {
  readonly #ctx: ServerContext;
  readonly #cache = new Map<string, Room>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** The room `name` if this node holds it in memory (no store read). */
  cached(name: string): Room | undefined {
    return this.#cache.get(roomKey(name));
  }

  /** Holds `room`, just created by this node, in memory. */
  add(room: Room): void {
    this.#cache.set(roomKey(room.record.name), room);
  }

  /** Forgets every room: they are read from the store again when next used. */
  clear(): void {
    this.#cache.clear();
  }

  /** The room `name` (from this node's memory, else the store), or null. */
  async load(name: string): Promise<Room | null> {
    const key = roomKey(name);
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const { store } = this.#ctx;
    const record = await store.rooms.getRoom(name);
    if (!record) return null;
    const members = new Map<string, RoomState>();
    const invitedAt = new Map<string, number>();
    for (const m of await store.rooms.roomMembers(name)) {
      if (m.state === "invited") invitedAt.set(m.client, m.since);
      // A lapsed invitation is as if it were not there (`lapse` deletes it).
      if (!this.lapsed(m)) members.set(m.client, m.state);
    }
    const room = this.#cache.get(key) ?? { record, members, invitedAt };
    this.#cache.set(key, room);
    return room;
  }

  /** Writes a membership (null: removes it) to the store, then to memory. True: room deleted. */
  async set(room: Room, id: string, state: RoomState | null): Promise<boolean> {
    const at = Math.floor(Date.now() / 1000);
    const { deleted } = await this.#ctx.store.rooms.setMembership(room.record.name, id, state, at);
    this.#ctx.router.cluster?.roomsChanged(); // other nodes re-read rooms
    if (state === null) room.members.delete(id);
    else {
      room.members.delete(id); // a change of state moves it to the end, as in the store
      room.members.set(id, state);
    }
    room.invitedAt ??= new Map();
    if (state === "invited") room.invitedAt.set(id, at);
    else room.invitedAt.delete(id);
    if (deleted) {
      room.members.clear();
      this.#cache.delete(roomKey(room.record.name));
    }
    return deleted;
  }

  /** Whether `m` is an invitation older than `room_invite_ttl`. */
  lapsed(m: { state: RoomState; since: number }): boolean {
    const cutoff = Math.floor(Date.now() / 1000) - this.#ctx.settings.room_invite_ttl;
    return m.state === "invited" && m.since < cutoff;
  }

  /** Removes the room's lapsed invitations, from the store and from memory (in the room's turn). */
  async lapse(room: Room): Promise<void> {
    for (const [id, since] of room.invitedAt ?? []) {
      if (room.members.get(id) === "member") room.invitedAt?.delete(id);
      else if (this.lapsed({ state: "invited", since })) await this.set(room, id, null);
    }
  }
}
