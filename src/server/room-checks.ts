/**
 * The checks a ROOM request passes (docs/PROTOCOL.md § Rooms, § Membership): the room's
 * name, the client a request names, and the limits — members per room
 * (`room_max_members`), rooms and invitations per client (`room_max_per_client`), and
 * the share of a client's invitation slots one owner's rooms may hold. Each refusal is
 * a `RoomFailure`, which the request handler turns into the reply's `error`/`reason`.
 */
import { checkRoomName, roomKey } from "../rooms/names.ts";
import type { ClientRecord, RoomState } from "../store/store.ts";
import type { ServerContext } from "./context.ts";
import type { Room, RoomTable } from "./room-table.ts";

/** A request's failure: `error` is the code programs act on, `reason` text for people. */
export class RoomFailure extends Error {
  constructor(
    readonly error: string,
    reason: string,
  ) {
    super(reason);
  }
}

/**
 * The most invitations to one owner's rooms a client may hold at once: a tenth of its
 * invitation slots (`room_max_per_client`), at least one — so that no one client can
 * fill them all (docs/PROTOCOL.md § Membership).
 */
export function inviteShare(maxPerClient: number): number {
  return Math.max(1, Math.floor(maxPerClient / 10));
}

/** The `room` of a request, checked. */
export function roomName(value: unknown): string {
  if (typeof value !== "string") throw new RoomFailure("bad_request", "room: a name");
  try {
    return checkRoomName(value);
  } catch (err) {
    throw new RoomFailure("bad_name", (err as Error).message);
  }
}

/** A registered, unrevoked client by ID or name (the `member` of a request). */
export async function findMember(ctx: ServerContext, query: unknown): Promise<ClientRecord> {
  if (typeof query !== "string" || query === "")
    throw new RoomFailure("bad_request", "member: an ID or a name");
  const rec = await ctx.store.findClient(query);
  if (!rec || rec.revokedAt !== null)
    throw new RoomFailure("unknown_client", `no client ${JSON.stringify(query)}`);
  return rec;
}

/** Refuses one more member or invitation in a room of `room_max_members`. */
export function checkRoomSize(ctx: ServerContext, room: Room): void {
  const max = ctx.settings.room_max_members;
  if (room.members.size >= max)
    throw new RoomFailure("limit", `#${room.record.name} is full (room_max_members ${max})`);
}

/** Refuses one more room (`member`) or invitation (`invited`) to `id` past `room_max_per_client`. */
export async function checkRoomCount(
  ctx: ServerContext,
  table: RoomTable,
  id: string,
  state: RoomState,
): Promise<void> {
  const max = ctx.settings.room_max_per_client;
  const n = (await ctx.store.rooms.roomsOf(id)).filter(
    (m) => m.state === state && !table.lapsed(m),
  ).length;
  if (n >= max) {
    const what = state === "member" ? "rooms" : "invitations";
    throw new RoomFailure("limit", `too many ${what} (room_max_per_client ${max})`);
  }
}

/** Invitations `invitee` holds to rooms `owner` owns, other than `except` (a room key). */
async function invitationsFrom(
  ctx: ServerContext,
  table: RoomTable,
  invitee: string,
  owner: string,
  except?: string,
): Promise<number> {
  let n = 0;
  for (const m of await ctx.store.rooms.roomsOf(invitee)) {
    if (m.state !== "invited" || table.lapsed(m) || roomKey(m.room) === except) continue;
    if ((await table.load(m.room))?.record.owner === owner) n++;
  }
  return n;
}

/**
 * The invitees of `room` that would hold more than `inviteShare` invitations to the
 * rooms of `owner` were it the owner — a hand-over must not carry invitations past the
 * share (two clients handing rooms to each other could fill a third's slots).
 */
export async function overShare(
  ctx: ServerContext,
  table: RoomTable,
  room: Room,
  owner: string,
): Promise<string[]> {
  const max = inviteShare(ctx.settings.room_max_per_client);
  const over: string[] = [];
  const key = roomKey(room.record.name);
  for (const [id, state] of room.members)
    if (state === "invited" && (await invitationsFrom(ctx, table, id, owner, key)) >= max)
      over.push(id);
  return over;
}

/** Refuses an invitation past `inviteShare` of the invitee's slots held by `owner`'s rooms. */
export async function checkInviteShare(
  ctx: ServerContext,
  table: RoomTable,
  owner: string,
  who: ClientRecord,
): Promise<void> {
  const max = inviteShare(ctx.settings.room_max_per_client);
  const n = await invitationsFrom(ctx, table, who.id, owner);
  if (n >= max)
    throw new RoomFailure(
      "limit",
      `${who.name} holds ${n} invitations to your rooms already (at most ${max}, a tenth of room_max_per_client); they join or decline first`,
    );
}

/** The `from` of a `members` request: an index ≥ 0 (absent: 0). */
export function pageStart(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)
    throw new RoomFailure("bad_request", "from: an integer ≥ 0");
  return value;
}
