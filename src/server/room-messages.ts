/**
 * Room messages on the server (docs/PROTOCOL.md § Rooms): a room message (C2C type 3)
 * or an end-to-end encrypted one (type 5, rooms-e2e.ts) from a member goes to the
 * room's other members, live or stored (fanout.ts), within the fan-out budget. A room
 * this node holds in memory needs no store read; otherwise the sender's later frames
 * wait while it is read, so none overtakes the message.
 */
import type { WireError } from "../errors.ts";
import { MAX_MESSAGE_DATA } from "../wire/constants.ts";
import { decodeRoomMessage, encodeRoomMessage, roomHeaderBytes } from "../wire/room.ts";
import { decodeRoomE2E, type RoomE2EMessage } from "../wire/room-e2e.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { FanoutBudget, fanOut, target } from "./fanout.ts";
import type { Room, RoomTable } from "./room-table.ts";
import { sendRoomE2E } from "./rooms-e2e.ts";

const utf8 = new TextEncoder();

export class RoomMessages {
  readonly #ctx: ServerContext;
  readonly #table: RoomTable;
  readonly budget = new FanoutBudget();

  constructor(ctx: ServerContext, table: RoomTable) {
    this.#ctx = ctx;
    this.#table = table;
  }

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
    const cached = this.#table.cached(room);
    if (cached) return this.#send(from, plain, cached, address);
    // Read from the store first: the sender's later frames wait, so none overtakes this.
    from.holdInput();
    return this.#table.load(room).then((r) => this.#send(from, plain, r, address));
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
    const cached = this.#table.cached(m.room);
    if (cached) return send(cached);
    from.holdInput(); // the sender's later frames wait, so none overtakes this one
    return this.#table.load(m.room).then(send);
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
}
