/**
 * Rooms on the server (docs/PROTOCOL.md § Rooms): membership requests (control type
 * ROOM, `0x17`), room messages (C2C type 3) and membership events.
 *
 * The store holds rooms and memberships (the truth, shared by every node on it); this
 * node keeps the rooms it has used in memory, so a room message needs no store read.
 * Its own changes go to the store first, then to memory; a change by another process
 * clears the memory (the server's registry poll, every 250 ms, sees the store's
 * `version()` move). Changes to one room run one at a time on this node, in order.
 */
import { StoreError, type WireError } from "../errors.ts";
import { checkRoomName, roomKey } from "../rooms/names.ts";
import type { ClientRecord, RoomRecord, RoomState } from "../store/store.ts";
import { CONTROL_HEADER_BYTES, MAX_MESSAGE_DATA } from "../wire/constants.ts";
import { ControlType, decodeJson, encodeControl } from "../wire/message.ts";
import { decodeRoomMessage, encodeRoomMessage, roomHeaderBytes } from "../wire/room.ts";
import { decodeRoomE2E, type RoomE2EMessage } from "../wire/room-e2e.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { FanoutBudget, fanOut, target } from "./fanout.ts";
import { sendRoomE2E } from "./rooms-e2e.ts";
import { KeyedSerial } from "./serial.ts";

/** A room as this node knows it. `members`: client ID → state, in the order they came. */
interface Room {
  record: RoomRecord;
  members: Map<string, RoomState>;
  /** When each invitation was made (unix s): it lapses after `room_invite_ttl`. */
  invitedAt?: Map<string, number>;
}

/**
 * The most invitations to one owner's rooms a client may hold at once: a tenth of its
 * invitation slots (`room_max_per_client`), at least one — so that no one client can
 * fill them all (docs/PROTOCOL.md § Membership).
 */
export function inviteShare(maxPerClient: number): number {
  return Math.max(1, Math.floor(maxPerClient / 10));
}

/** A request's failure: `error` is the code programs act on, `reason` text for people. */
class RoomFailure extends Error {
  constructor(
    readonly error: string,
    reason: string,
  ) {
    super(reason);
  }
}

type Reply = Record<string, unknown>;
const utf8 = new TextEncoder();

export class Rooms {
  readonly #ctx: ServerContext;
  readonly #cache = new Map<string, Room>();
  readonly #serial = new KeyedSerial();
  readonly budget = new FanoutBudget();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  // ---- room messages ------------------------------------------------------------------

  /** A room message (C2C type 3) from `from`; a promise while it is fanned out or stored. */
  route(from: Connection, plain: Uint8Array): Promise<void> | undefined {
    let room: string;
    let data: number;
    try {
      const m = decodeRoomMessage(plain);
      room = m.room;
      data = m.data.length;
    } catch (err) {
      from.protocolError((err as WireError).message);
      return;
    }
    const address = `#${room}`;
    // Checked here with the name as sent (nothing to load for a message far too large),
    // and again with the name as created, which the copies carry (#send).
    if (!this.#fits(from, address, data, room)) return;
    const key = roomKey(room);
    const cached = this.#cache.get(key);
    if (cached) return this.#send(from, plain, cached, address);
    // Read from the store first: the sender's later frames wait, so none overtakes this.
    from.holdInput();
    return this.#load(room).then((r) => this.#send(from, plain, r, address));
  }

  /**
   * An end-to-end encrypted room message (C2C type 5): checked like a room message
   * (size, membership), then each member gets its own ciphertext (rooms-e2e.ts).
   */
  routeE2E(from: Connection, plain: Uint8Array): Promise<void> | undefined {
    let m: RoomE2EMessage;
    try {
      m = decodeRoomE2E(plain);
    } catch (err) {
      from.protocolError((err as WireError).message);
      return;
    }
    const address = `#${m.room}`;
    let largest = 0;
    for (const e of m.entries) largest = Math.max(largest, e.ciphertext.length);
    if (!this.#fits(from, address, largest, m.room)) return;
    const send = (room: Room | null) => {
      if (!this.#isMember(from, room, address)) return;
      // Each copy carries the room's name as created, which may be longer than as sent.
      if (!this.#fits(from, address, largest, room.record.name)) return;
      return sendRoomE2E(this.#ctx, from, m, room.record.name, room.members, this.budget);
    };
    const cached = this.#cache.get(roomKey(m.room));
    if (cached) return send(cached);
    from.holdInput(); // the sender's later frames wait, so none overtakes this one
    return this.#load(m.room).then(send);
  }

  /**
   * True when `data` bytes fit a room message's copies carrying the room name `name` —
   * `max_message_size`, and the stored form (type 4, the longest header) within one
   * message; else NOTICE `too_large`. A copy that does not fit could never be handed to
   * its member: stored, it would block that member's queue.
   */
  #fits(from: Connection, address: string, data: number, name: string): boolean {
    const max = this.#ctx.settings.max_message_size;
    const stored = roomHeaderBytes(true, utf8.encode(name).length) + data;
    if (data <= max && stored <= MAX_MESSAGE_DATA) return true;
    const why = `message data of ${data} bytes exceeds max_message_size ${Math.min(max, data - (stored - MAX_MESSAGE_DATA))} for this room`;
    this.#ctx.router.notice(from, address, "too_large", why);
    return false;
  }

  /** True when `from` is a member of `room`; else NOTICE `not_member`. */
  #isMember(from: Connection, room: Room | null, address: string): room is Room {
    if (room?.members.get(from.idText) === "member") return true;
    this.#ctx.router.notice(
      from,
      address,
      "not_member",
      "you are not a member of this room (or it does not exist)",
    );
    return false;
  }

  #send(from: Connection, plain: Uint8Array, room: Room | null, address: string) {
    if (!this.#isMember(from, room, address)) return;
    const m = decodeRoomMessage(plain);
    if (!this.#fits(from, address, m.data.length, room.record.name)) return;
    plain.set(from.id, 1); // the server writes the true sender
    // Delivered with the room's name as created (the sender may have written `#OPS`).
    if (m.room !== room.record.name) plain = encodeRoomMessage(from.id, room.record.name, m.data);
    const members = room.members;
    const targets = [];
    for (const [id, state] of members)
      if (state === "member" && id !== from.idText) targets.push(target(id));
    const still = (id: string) => members.get(id) === "member";
    return fanOut(this.#ctx, from, plain, targets, still, this.budget);
  }

  // ---- requests -----------------------------------------------------------------------

  /** A ROOM request: exactly one reply, in request order (after earlier frames' work). */
  request(conn: Connection, body: Uint8Array): Promise<void> | undefined {
    return conn.inOrder(async () => {
      let reply: Reply;
      let op = "";
      try {
        const req = decodeJson(body);
        op = typeof req.op === "string" ? req.op : "";
        reply = { op, ok: true, ...(await this.#dispatch(conn, op, req)) };
      } catch (err) {
        if (err instanceof RoomFailure)
          reply = { op, ok: false, error: err.error, reason: err.message };
        else if ((err as { code?: string }).code === "BAD_JSON")
          reply = { op, ok: false, error: "bad_request", reason: "the body is not a JSON object" };
        else {
          this.#ctx.log.error("room request failed", { id: conn.idText, op, error: String(err) });
          reply = { op, ok: false, error: "failure", reason: "the server could not do that now" };
        }
      }
      conn.reply(encodeRoomReply(reply));
    });
  }

  async #dispatch(conn: Connection, op: string, req: Record<string, unknown>): Promise<Reply> {
    if (op === "list") return this.#list(conn);
    const name = roomName(req.room);
    if (op === "create") return this.#create(conn, name, req.public === true);
    const key = roomKey(name);
    // Changes to one room run one at a time (replies still in this connection's order).
    return this.#serial.run(key, async () => {
      const room = await this.#load(name);
      if (room) await this.#lapse(room);
      const mine = room?.members.get(conn.idText);
      // To a client neither member nor invited, an invite-only room does not exist.
      if (!room || (!mine && !room.record.public))
        throw new RoomFailure("not_found", `no room #${name} (or you are not invited)`);
      switch (op) {
        case "join":
          return this.#join(conn, room, mine);
        case "leave":
          return this.#leave(conn, room, mine);
        case "members":
          return this.#members(room, mine, pageStart(req.from));
        case "invite":
        case "remove":
        case "owner":
          return this.#ownerOp(conn, op, room, await this.#client(req.member));
        default:
          throw new RoomFailure("bad_request", `unknown op ${JSON.stringify(op)}`);
      }
    });
  }

  async #create(conn: Connection, name: string, isPublic: boolean): Promise<Reply> {
    await this.#checkRoomCount(conn.idText, "member");
    const record: RoomRecord = {
      name,
      owner: conn.idText,
      public: isPublic,
      createdAt: Math.floor(Date.now() / 1000),
    };
    return this.#serial.run(roomKey(name), async () => {
      try {
        await this.#ctx.store.rooms.createRoom(record);
        this.#ctx.router.cluster?.roomsChanged(); // other nodes re-read rooms
      } catch (err) {
        if (err instanceof StoreError && err.code === "NAME_TAKEN")
          throw new RoomFailure("exists", `a room #${name} exists already`);
        throw err;
      }
      this.#cache.set(roomKey(name), { record, members: new Map([[conn.idText, "member"]]) });
      return { room: name, public: isPublic };
    });
  }

  async #join(conn: Connection, room: Room, mine: RoomState | undefined): Promise<Reply> {
    const name = room.record.name;
    if (mine === "member") throw new RoomFailure("already_member", `you are in #${name} already`);
    await this.#checkRoomCount(conn.idText, "member");
    if (!mine) this.#checkRoomSize(room);
    await this.#set(room, conn.idText, "member");
    this.#event(room, { event: "joined", member: await this.#who(conn.idText) });
    return { room: name, public: room.record.public };
  }

  async #leave(conn: Connection, room: Room, mine: RoomState | undefined): Promise<Reply> {
    const name = room.record.name;
    if (!mine) throw new RoomFailure("not_member", `you are not in #${name}`);
    const who = await this.#who(conn.idText);
    const deleted = await this.#set(room, conn.idText, null);
    if (mine === "member") this.#event(room, { event: "left", member: who }, [conn.idText]);
    if (!deleted && room.record.owner === conn.idText) await this.#passOwnership(room, who);
    return { room: name, deleted };
  }

  /**
   * A page of the members (from the `from`-th, in the order they took their place): as
   * many as fit one message, and `next` (the `from` of the next page) when more follow.
   * A room of `room_max_members` does not fit one message as one list.
   */
  async #members(room: Room, mine: RoomState | undefined, from: number): Promise<Reply> {
    if (mine !== "member")
      throw new RoomFailure("not_member", `only members see who is in #${room.record.name}`);
    const online = this.#ctx.router.online;
    const head = {
      room: room.record.name,
      public: room.record.public,
      owner: room.record.owner,
    };
    const all = [...room.members];
    // What the reply holds besides the entries (with the largest `next` it could carry).
    let left =
      MAX_MESSAGE_DATA -
      CONTROL_HEADER_BYTES -
      utf8.encode(
        JSON.stringify({ op: "members", ok: true, ...head, members: [], next: all.length }),
      ).length;
    const members = [];
    let at = from;
    for (; at < all.length; at++) {
      const [id, state] = all[at] as [string, RoomState];
      const rec = await this.#ctx.store.getClient(id);
      const entry = {
        id,
        name: rec?.name ?? "",
        state,
        owner: id === room.record.owner,
        // Sessions on this node, or on another one as the store last recorded.
        online: online.receiving(target(id).key) || (rec?.online ?? false),
        last_seen: rec?.lastSeen ?? null,
      };
      const cost = utf8.encode(JSON.stringify(entry)).length + (members.length > 0 ? 1 : 0);
      if (cost > left) break;
      left -= cost;
      members.push(entry);
    }
    return { ...head, members, ...(at < all.length ? { next: at } : {}) };
  }

  async #ownerOp(conn: Connection, op: string, room: Room, who: ClientRecord): Promise<Reply> {
    const name = room.record.name;
    if (room.record.owner !== conn.idText)
      throw new RoomFailure("not_owner", `only the owner of #${name} may ${op}`);
    const theirs = room.members.get(who.id);
    const member = { id: who.id, name: who.name };
    const by = await this.#who(conn.idText);
    if (op === "invite") {
      if (theirs) throw new RoomFailure("already_member", `${who.name} is in #${name} already`);
      this.#checkRoomSize(room);
      await this.#checkRoomCount(who.id, "invited");
      await this.#checkInviteShare(conn.idText, who);
      await this.#set(room, who.id, "invited");
      this.#event(room, { event: "invited", member, by }, [who.id]);
    } else if (op === "remove") {
      if (!theirs) throw new RoomFailure("not_member", `${who.name} is not in #${name}`);
      if (who.id === conn.idText)
        throw new RoomFailure("bad_request", "the owner leaves (or hands the room on) instead");
      await this.#set(room, who.id, null);
      this.#event(room, { event: "removed", member, by }, [who.id]);
    } else {
      if (theirs !== "member")
        throw new RoomFailure("not_member", `${who.name} is not in #${name}`);
      const over = await this.#overShare(room, who.id);
      if (over.length > 0)
        throw new RoomFailure(
          "limit",
          `${over.length} invitee(s) of #${name} hold a tenth of room_max_per_client in invitations to ${who.name}'s rooms already; remove their invitations first`,
        );
      await this.#ctx.store.rooms.setRoomOwner(name, who.id);
      this.#ctx.router.cluster?.roomsChanged(); // other nodes re-read rooms
      room.record = { ...room.record, owner: who.id };
      this.#event(room, { event: "owner", member, by });
    }
    return { room: name, member };
  }

  async #list(conn: Connection): Promise<Reply> {
    const rooms = [];
    for (const m of await this.#ctx.store.rooms.roomsOf(conn.idText)) {
      if (this.#lapsed(m)) continue;
      const room = await this.#load(m.room);
      if (!room) continue;
      let members = 0;
      for (const s of room.members.values()) if (s === "member") members++;
      rooms.push({
        room: room.record.name,
        state: m.state,
        owner: room.record.owner === conn.idText,
        public: room.record.public,
        members,
      });
    }
    return { rooms };
  }

  /**
   * Another process (another node on the same store) changed the store: rooms are read
   * from it again when next used. Work under way keeps the room it holds.
   */
  invalidate(): void {
    this.#cache.clear();
  }

  /**
   * A revoked client leaves every room it was in or invited to: members hear `removed`
   * (without `by`), a room it owned passes to its longest-standing member, a room it
   * was the last member of is deleted. Idempotent (the registry check calls it again).
   */
  async forget(id: string): Promise<void> {
    for (const m of await this.#ctx.store.rooms.roomsOf(id)) {
      await this.#serial.run(roomKey(m.room), async () => {
        const room = await this.#load(m.room);
        if (room) await this.#lapse(room);
        const state = room?.members.get(id);
        if (!room || !state) return;
        const who = await this.#who(id);
        const deleted = await this.#set(room, id, null);
        if (state === "member") this.#event(room, { event: "removed", member: who });
        if (!deleted && room.record.owner === id) await this.#passOwnership(room, who);
      });
    }
  }

  /** The owner is gone: the longest-standing member takes over. */
  async #passOwnership(room: Room, from: { id: string; name: string }): Promise<void> {
    const next = [...room.members].find(([, s]) => s === "member")?.[0];
    if (!next) return;
    await this.#ctx.store.rooms.setRoomOwner(room.record.name, next);
    this.#ctx.router.cluster?.roomsChanged(); // other nodes re-read rooms
    room.record = { ...room.record, owner: next };
    const owner = await this.#who(next);
    this.#event(room, { event: "owner", member: owner, by: from });
    // Invitations past the new owner's share are withdrawn (see #overShare).
    for (const id of await this.#overShare(room, next)) {
      await this.#set(room, id, null);
      this.#event(room, { event: "removed", member: await this.#who(id), by: owner }, [id]);
    }
  }

  // ---- helpers ------------------------------------------------------------------------

  /** The room `name` (from this node's memory, else the store), or null. */
  async #load(name: string): Promise<Room | null> {
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
      // A lapsed invitation is as if it were not there (#lapse deletes it).
      if (!this.#lapsed(m)) members.set(m.client, m.state);
    }
    const room = this.#cache.get(key) ?? { record, members, invitedAt };
    this.#cache.set(key, room);
    return room;
  }

  /** Writes a membership (null: removes it) to the store, then to memory. True: room deleted. */
  async #set(room: Room, id: string, state: RoomState | null): Promise<boolean> {
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

  #checkRoomSize(room: Room): void {
    const max = this.#ctx.settings.room_max_members;
    if (room.members.size >= max)
      throw new RoomFailure("limit", `#${room.record.name} is full (room_max_members ${max})`);
  }

  async #checkRoomCount(id: string, state: RoomState): Promise<void> {
    const max = this.#ctx.settings.room_max_per_client;
    const n = (await this.#ctx.store.rooms.roomsOf(id)).filter(
      (m) => m.state === state && !this.#lapsed(m),
    ).length;
    if (n >= max) {
      const what = state === "member" ? "rooms" : "invitations";
      throw new RoomFailure("limit", `too many ${what} (room_max_per_client ${max})`);
    }
  }

  /** Whether `m` is an invitation older than `room_invite_ttl`. */
  #lapsed(m: { state: RoomState; since: number }): boolean {
    const cutoff = Math.floor(Date.now() / 1000) - this.#ctx.settings.room_invite_ttl;
    return m.state === "invited" && m.since < cutoff;
  }

  /** Removes the room's lapsed invitations, from the store and from memory (in the room's turn). */
  async #lapse(room: Room): Promise<void> {
    for (const [id, since] of room.invitedAt ?? []) {
      if (room.members.get(id) === "member") room.invitedAt?.delete(id);
      else if (this.#lapsed({ state: "invited", since })) await this.#set(room, id, null);
    }
  }

  /** Invitations `invitee` holds to rooms `owner` owns, other than `except` (a room key). */
  async #invitationsFrom(invitee: string, owner: string, except?: string): Promise<number> {
    let n = 0;
    for (const m of await this.#ctx.store.rooms.roomsOf(invitee)) {
      if (m.state !== "invited" || this.#lapsed(m) || roomKey(m.room) === except) continue;
      if ((await this.#load(m.room))?.record.owner === owner) n++;
    }
    return n;
  }

  /**
   * The invitees of `room` that would hold more than `inviteShare` invitations to the
   * rooms of `owner` were it the owner — a hand-over must not carry invitations past the
   * share (two clients handing rooms to each other could fill a third's slots).
   */
  async #overShare(room: Room, owner: string): Promise<string[]> {
    const max = inviteShare(this.#ctx.settings.room_max_per_client);
    const over: string[] = [];
    const key = roomKey(room.record.name);
    for (const [id, state] of room.members)
      if (state === "invited" && (await this.#invitationsFrom(id, owner, key)) >= max)
        over.push(id);
    return over;
  }

  /** Refuses an invitation past `inviteShare` of the invitee's slots held by `owner`'s rooms. */
  async #checkInviteShare(owner: string, who: ClientRecord): Promise<void> {
    const max = inviteShare(this.#ctx.settings.room_max_per_client);
    const n = await this.#invitationsFrom(who.id, owner);
    if (n >= max)
      throw new RoomFailure(
        "limit",
        `${who.name} holds ${n} invitations to your rooms already (at most ${max}, a tenth of room_max_per_client); they join or decline first`,
      );
  }

  /** A registered, unrevoked client by ID or name. */
  async #client(query: unknown): Promise<ClientRecord> {
    if (typeof query !== "string" || query === "")
      throw new RoomFailure("bad_request", "member: an ID or a name");
    const rec = await this.#ctx.store.findClient(query);
    if (!rec || rec.revokedAt !== null)
      throw new RoomFailure("unknown_client", `no client ${JSON.stringify(query)}`);
    return rec;
  }

  async #who(id: string): Promise<{ id: string; name: string }> {
    return { id, name: (await this.#ctx.store.getClient(id))?.name ?? "" };
  }

  /**
   * Sends a membership event to every member's live sessions, and to `also` (IDs). The
   * recipients are fixed now; the event goes out on the next turn, so that the client
   * whose request caused it has the reply first.
   */
  #event(room: Room, event: Reply, also: string[] = []): void {
    const body = encodeControl(ControlType.ROOM, { ...event, room: room.record.name });
    const to = new Set(also);
    for (const [id, state] of room.members) if (state === "member") to.add(id);
    const online = this.#ctx.router.online;
    this.#ctx.router.cluster?.roomEvent([...to], body); // members on other nodes
    setImmediate(() => {
      for (const id of to) {
        for (const conn of online.sessionsOf(target(id).key))
          if (conn.routable && conn.session.live) conn.reply(body);
      }
    });
  }
}

/** The `from` of a `members` request: an index ≥ 0 (absent: 0). */
function pageStart(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)
    throw new RoomFailure("bad_request", "from: an integer ≥ 0");
  return value;
}

/** The `room` of a request, checked. */
function roomName(value: unknown): string {
  if (typeof value !== "string") throw new RoomFailure("bad_request", "room: a name");
  try {
    return checkRoomName(value);
  } catch (err) {
    throw new RoomFailure("bad_name", (err as Error).message);
  }
}

/**
 * A ROOM reply as a control message; one too large for a message (none should be:
 * `members` comes in pages) becomes an error reply, so every request still gets exactly one.
 */
function encodeRoomReply(reply: Record<string, unknown>): Uint8Array {
  try {
    return encodeControl(ControlType.ROOM, reply);
  } catch {
    return encodeControl(ControlType.ROOM, {
      op: reply.op,
      ok: false,
      error: "too_large",
      reason: "the answer does not fit in one message",
    });
  }
}
