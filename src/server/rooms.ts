/**
 * Rooms on the server (docs/PROTOCOL.md § Rooms): membership requests (control type
 * ROOM, `0x17`), room messages (C2C type 3 and 5, room-messages.ts) and membership
 * events.
 *
 * The store holds rooms and memberships (the truth, shared by every node on it); this
 * node keeps the rooms it has used in memory (room-table.ts), so a room message needs
 * no store read. Its own changes go to the store first, then to memory; a change by
 * another process clears the memory (the server's registry poll, every 250 ms, sees the
 * store's `version()` move). Changes to one room run one at a time on this node, in
 * order. The checks and limits a request passes are in room-checks.ts.
 */
import { StoreError } from "../errors.ts";
import { roomKey } from "../rooms/names.ts";
import type { ClientRecord, RoomRecord, RoomState } from "../store/store.ts";
import { CONTROL_HEADER_BYTES, MAX_MESSAGE_DATA } from "../wire/constants.ts";
import { ControlType, decodeJson, encodeControl } from "../wire/message.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { type FanoutBudget, target } from "./fanout.ts";
import {
  checkInviteShare,
  checkRoomCount,
  checkRoomSize,
  findMember,
  overShare,
  pageStart,
  RoomFailure,
  roomName,
} from "./room-checks.ts";
import { RoomMessages } from "./room-messages.ts";
import { type Room, RoomTable } from "./room-table.ts";
import { KeyedSerial } from "./serial.ts";

export { inviteShare } from "./room-checks.ts";

const utf8 = new TextEncoder();

type Reply = Record<string, unknown>;

export class Rooms {
  readonly #ctx: ServerContext;
  readonly #table: RoomTable;
  readonly #messages: RoomMessages;
  readonly #serial = new KeyedSerial();
  /** The fan-out budget of room messages (refilled by the server's sweep). */
  readonly budget: FanoutBudget;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    this.#table = new RoomTable(ctx);
    this.#messages = new RoomMessages(ctx, this.#table);
    this.budget = this.#messages.budget;
  }

  // ---- room messages ------------------------------------------------------------------

  /** A room message (C2C type 3) from `from`; a promise while it is fanned out or stored. */
  route(from: Connection, plain: Uint8Array): Promise<void> | undefined {
    return this.#messages.route(from, plain);
  }

  /**
   * An end-to-end encrypted room message (C2C type 5): checked like a room message
   * (size, membership), then each member gets its own ciphertext (rooms-e2e.ts).
   */
  routeE2E(from: Connection, plain: Uint8Array): Promise<void> | undefined {
    return this.#messages.routeE2E(from, plain);
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
      const room = await this.#table.load(name);
      if (room) await this.#table.lapse(room);
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
          return this.#ownerOp(conn, op, room, await findMember(this.#ctx, req.member));
        default:
          throw new RoomFailure("bad_request", `unknown op ${JSON.stringify(op)}`);
      }
    });
  }

  async #create(conn: Connection, name: string, isPublic: boolean): Promise<Reply> {
    await checkRoomCount(this.#ctx, this.#table, conn.idText, "member");
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
      this.#table.add({ record, members: new Map([[conn.idText, "member"]]) });
      return { room: name, public: isPublic };
    });
  }

  async #join(conn: Connection, room: Room, mine: RoomState | undefined): Promise<Reply> {
    const name = room.record.name;
    if (mine === "member") throw new RoomFailure("already_member", `you are in #${name} already`);
    await checkRoomCount(this.#ctx, this.#table, conn.idText, "member");
    if (!mine) checkRoomSize(this.#ctx, room);
    await this.#table.set(room, conn.idText, "member");
    this.#event(room, { event: "joined", member: await this.#who(conn.idText) });
    return { room: name, public: room.record.public };
  }

  async #leave(conn: Connection, room: Room, mine: RoomState | undefined): Promise<Reply> {
    const name = room.record.name;
    if (!mine) throw new RoomFailure("not_member", `you are not in #${name}`);
    const who = await this.#who(conn.idText);
    const deleted = await this.#table.set(room, conn.idText, null);
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
      checkRoomSize(this.#ctx, room);
      await checkRoomCount(this.#ctx, this.#table, who.id, "invited");
      await checkInviteShare(this.#ctx, this.#table, conn.idText, who);
      await this.#table.set(room, who.id, "invited");
      this.#event(room, { event: "invited", member, by }, [who.id]);
    } else if (op === "remove") {
      if (!theirs) throw new RoomFailure("not_member", `${who.name} is not in #${name}`);
      if (who.id === conn.idText)
        throw new RoomFailure("bad_request", "the owner leaves (or hands the room on) instead");
      await this.#table.set(room, who.id, null);
      this.#event(room, { event: "removed", member, by }, [who.id]);
    } else {
      if (theirs !== "member")
        throw new RoomFailure("not_member", `${who.name} is not in #${name}`);
      const over = await overShare(this.#ctx, this.#table, room, who.id);
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
      if (this.#table.lapsed(m)) continue;
      const room = await this.#table.load(m.room);
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
    this.#table.clear();
  }

  /**
   * A revoked client leaves every room it was in or invited to: members hear `removed`
   * (without `by`), a room it owned passes to its longest-standing member, a room it
   * was the last member of is deleted. Idempotent (the registry check calls it again).
   */
  async forget(id: string): Promise<void> {
    for (const m of await this.#ctx.store.rooms.roomsOf(id)) {
      await this.#serial.run(roomKey(m.room), async () => {
        const room = await this.#table.load(m.room);
        if (room) await this.#table.lapse(room);
        const state = room?.members.get(id);
        if (!room || !state) return;
        const who = await this.#who(id);
        const deleted = await this.#table.set(room, id, null);
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
    // Invitations past the new owner's share are withdrawn (see overShare).
    for (const id of await overShare(this.#ctx, this.#table, room, next)) {
      await this.#table.set(room, id, null);
      this.#event(room, { event: "removed", member: await this.#who(id), by: owner }, [id]);
    }
  }

  // ---- helpers ------------------------------------------------------------------------

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
