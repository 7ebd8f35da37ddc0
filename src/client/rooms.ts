/**
 * Rooms in the client library (docs/PROTOCOL.md § Rooms): membership requests over
 * control type ROOM (`0x17`) and the events the server sends about them.
 *
 * @example
 * await alice.rooms.create("ops");
 * await alice.rooms.invite("ops", "bob");       // bob: await bob.rooms.join("ops")
 * alice.send("#ops", "deploy at 16:00");          // to every member but alice
 * bob.on("message", (m) => m.room && console.log(`#${m.room}`, m.from));
 */
import { ConnectionError, UsageError } from "../errors.ts";
import { isUuid } from "../ids.ts";
import { checkRoomName } from "../rooms/names.ts";
import { ID_BYTES } from "../wire/constants.ts";
import { ControlType, decodeJson } from "../wire/message.ts";
import { decodeRoomMessage } from "../wire/room.ts";
import type { Requests } from "./requests.ts";

/** The address field of a room message from a client: zeros (the server writes the sender). */
export const NO_ADDRESS = new Uint8Array(ID_BYTES);

/** A client as rooms name it. */
export interface RoomClient {
  id: string;
  name: string;
}

/**
 * A membership change. `joined`, `left`: a member came or went; `invited`, `removed`:
 * the owner invited or removed `member` (`by` is the owner); `owner`: `member` owns the
 * room now (`by`: who handed it on, or who left it).
 */
export interface RoomEvent {
  event: "joined" | "left" | "invited" | "removed" | "owner";
  room: string;
  member: RoomClient;
  by?: RoomClient;
}

/** One of the rooms this client is in, or is invited to. */
export interface RoomSummary {
  room: string;
  state: "member" | "invited";
  /** This client owns it. */
  owner: boolean;
  public: boolean;
  /** Members now. */
  members: number;
}

/** A member (or invitee) of a room, with presence. */
export interface RoomMember extends RoomClient {
  state: "member" | "invited";
  owner: boolean;
  /** Some session of it receives messages now. */
  online: boolean;
  /** Unix seconds the server last heard from it, or null. */
  last_seen: number | null;
}

/** A refused room request: `code` is the server's `error` (`not_found`, `not_owner`, `limit` …). */
export class RoomError extends UsageError {}

/** The most pages one `members` call asks for (a page holds several hundred members). */
const MAX_MEMBER_PAGES = 1000;

type Send = (body: Record<string, unknown>) => Promise<Record<string, unknown>>;

/** The room requests of one `Client` (as `client.rooms`). Each resolves with the server's reply. */
export class Rooms {
  readonly #send: Send;

  constructor(send: Send) {
    this.#send = send;
  }

  async #ask(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const reply = await this.#send(body);
    if (reply.op !== body.op) {
      throw new ConnectionError("BAD_REPLY", `room reply for ${String(reply.op)}, not ${body.op}`);
    }
    if (reply.ok !== true) {
      throw new RoomError(String(reply.error ?? "failure"), String(reply.reason ?? reply.error));
    }
    return reply;
  }

  /** Creates a room owned by this client: invite-only unless `public`. Throws `RoomError` `exists`, `limit`. */
  async create(room: string, opts: { public?: boolean } = {}): Promise<{ room: string }> {
    const r = await this.#ask({ op: "create", room: checkRoomName(room), public: !!opts.public });
    return { room: String(r.room) };
  }

  /** Joins a public room, or one this client is invited to. Throws `RoomError` `not_found`. */
  async join(room: string): Promise<{ room: string }> {
    const r = await this.#ask({ op: "join", room: checkRoomName(room) });
    return { room: String(r.room) };
  }

  /** Leaves a room (or declines an invitation); `deleted` when this was its last member. */
  async leave(room: string): Promise<{ room: string; deleted: boolean }> {
    const r = await this.#ask({ op: "leave", room: checkRoomName(room) });
    return { room: String(r.room), deleted: r.deleted === true };
  }

  /** Invites a client (ID or name); owner only. */
  async invite(room: string, member: string): Promise<RoomClient> {
    return (await this.#ask({ op: "invite", room: checkRoomName(room), member }))
      .member as RoomClient;
  }

  /** Removes a member or an invitation; owner only. The removed client gets nothing more. */
  async remove(room: string, member: string): Promise<RoomClient> {
    return (await this.#ask({ op: "remove", room: checkRoomName(room), member }))
      .member as RoomClient;
  }

  /** Hands the room on to another member; owner only. */
  async setOwner(room: string, member: string): Promise<RoomClient> {
    return (await this.#ask({ op: "owner", room: checkRoomName(room), member }))
      .member as RoomClient;
  }

  /**
   * Members and invitations with presence; members only. A large room's list comes in
   * pages (as many as fit one message each); they are asked in turn and joined, each
   * member once (one who moved between pages is listed where first seen).
   */
  async members(
    room: string,
  ): Promise<{ room: string; public: boolean; owner: string; members: RoomMember[] }> {
    const name = checkRoomName(room);
    let r = await this.#ask({ op: "members", room: name });
    const first = r;
    const members: RoomMember[] = [];
    const seen = new Set<string>();
    for (let pages = 1; ; pages++) {
      const page = Array.isArray(r.members) ? (r.members as RoomMember[]) : [];
      for (const m of page) {
        // A member not `{id, name, …}` (a hostile or broken server): left out.
        if (!isRoomClient(m) || seen.has(m.id)) continue;
        seen.add(m.id);
        members.push(m);
      }
      // Never without end, whatever a hostile server answers for `next`.
      const next = r.next;
      if (typeof next !== "number" || page.length === 0 || pages >= MAX_MEMBER_PAGES) break;
      r = await this.#ask({ op: "members", room: name, from: next });
    }
    return {
      room: String(first.room),
      public: first.public === true,
      owner: String(first.owner),
      members,
    };
  }

  /** The rooms this client is in or invited to. */
  async list(): Promise<RoomSummary[]> {
    return (await this.#ask({ op: "list" })).rooms as RoomSummary[];
  }
}

/**
 * A ROOM control message arrived: an event (has `event`) is emitted as `room`; anything
 * else is the reply to the oldest room request.
 */
export function roomControl(
  emitter: { emit(name: "room", e: RoomEvent): boolean },
  requests: Requests,
  body: Uint8Array,
): void {
  let json: Record<string, unknown>;
  try {
    json = decodeJson(body);
  } catch {
    return; // unreadable: discarded
  }
  if (typeof json.event === "string") {
    // Only in the documented shape: every listener prints or acts on these fields.
    if (isRoomEvent(json)) emitter.emit("room", json);
  } else requests.answer(ControlType.ROOM, body);
}

/** `{id, name}` with `id` a client ID and `name` a string. */
function isRoomClient(v: unknown): v is RoomClient {
  if (typeof v !== "object" || v === null) return false;
  const c = v as Record<string, unknown>;
  return typeof c.id === "string" && isUuid(c.id) && typeof c.name === "string";
}

/**
 * Whether a ROOM message with `event` has the shape of docs/PROTOCOL.md § Membership
 * events (`room` a string, `member` and any `by` a client); a server sending another
 * shape is hostile or broken, and the event is discarded.
 */
function isRoomEvent(json: Record<string, unknown>): json is RoomEvent & Record<string, unknown> {
  return (
    typeof json.room === "string" &&
    isRoomClient(json.member) &&
    (json.by === undefined || isRoomClient(json.by))
  );
}

/** A room message not yet sent, as the `requeued` event shows it: `to` is `#room`. */
export function unsentRoomMessage(m: Uint8Array): { to: string; data: Uint8Array } {
  const r = decodeRoomMessage(m);
  return { to: `#${r.room}`, data: r.data };
}
