/**
 * Rooms in the terminal commands (docs/PROTOCOL.md § Rooms): `#NAME` as a peer of
 * `chat` and a recipient of `send`, how room messages and membership events are shown,
 * and the chat's `/join`, `/leave` and `/who` for rooms. Room names, member names and
 * message text come from peers: escaped before they reach a terminal.
 */
import type { Client } from "../client/client.ts";
import { RoomError, type RoomEvent } from "../client/rooms.ts";
import type { IncomingMessage, Notice } from "../client/types.ts";
import { checkRoomName, isRoomAddress } from "../rooms/names.ts";
import { escapeControls } from "../text/escape.ts";
import { ago, CliError, EXIT, roomExitCode } from "./common.ts";

export { isRoomAddress };

const esc = (s: string) => escapeControls(s);

/** `#ops ` before the sender's name for a room message, else nothing. */
export function roomPrefix(m: IncomingMessage): string {
  return m.room === null ? "" : `#${esc(m.room)} `;
}

/** One line for a membership event. */
export function describeRoomEvent(e: RoomEvent): string {
  const who = esc(e.member.name || e.member.id);
  const by = e.by ? esc(e.by.name || e.by.id) : "";
  const room = `#${esc(e.room)}`;
  switch (e.event) {
    case "joined":
      return `${who} joined ${room}`;
    case "left":
      return `${who} left ${room}`;
    case "invited":
      return `${by} invited ${who} to ${room}`;
    case "removed":
      return `${by} removed ${who} from ${room}`;
    case "owner":
      return `${who} now owns ${room}`;
    default:
      return `${room}: ${esc(String((e as { event: unknown }).event))}`;
  }
}

/** A NOTICE about a room message, as one line. */
export function describeRoomNotice(n: Notice): string {
  const room = esc(n.address);
  if (n.status === "not_member") return `not sent: you are not a member of ${room}`;
  return `message to ${room} not delivered (${n.status}): ${esc(n.reason)}`;
}

/**
 * The room `query` (`#ops`) as a chat peer: this client must be in it; a public room,
 * or one it is invited to, is joined on the way. Throws `CliError`.
 */
export async function roomPeer(
  client: Client,
  query: string,
): Promise<{ id: string; name: string }> {
  let name: string;
  try {
    name = checkRoomName(query);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.USAGE);
  }
  try {
    const got = await client.rooms.members(name);
    return { id: `#${got.room}`, name: `#${esc(got.room)}` };
  } catch (err) {
    if (!(err instanceof RoomError)) throw err;
  }
  try {
    const got = await client.rooms.join(name);
    return { id: `#${got.room}`, name: `#${esc(got.room)}` };
  } catch (err) {
    if (err instanceof RoomError)
      throw new CliError(`#${esc(name)}: ${err.message}`, roomExitCode(err));
    throw err;
  }
}

/**
 * The lines of `/who` in a room: each member with presence, and with `keys` (member ID →
 * text, from the E2E layer) its key.
 */
export async function roomWho(
  client: Client,
  room: string,
  keys: Map<string, string> = new Map(),
): Promise<string[]> {
  const got = await client.rooms.members(room);
  const now = Date.now() / 1000;
  const lines = [
    `#${esc(got.room)}: ${got.members.filter((m) => m.state === "member").length} members`,
  ];
  for (const m of got.members) {
    const seen =
      m.state === "invited"
        ? "invited"
        : m.online
          ? "online"
          : m.last_seen
            ? `offline, last seen ${ago(now - m.last_seen)} ago`
            : "offline, never seen";
    const key = keys.get(m.id.toLowerCase());
    lines.push(
      `  ${esc(m.name)}${m.owner ? " (owner)" : ""}${m.id === client.id ? " (you)" : ""}: ${seen}${key ? `; ${key}` : ""}`,
    );
  }
  return lines;
}

/** `/leave [#NAME]`: leaves the room (the current one by default); the line to show. */
export async function leaveRoom(client: Client, room: string): Promise<string> {
  const got = await client.rooms.leave(room);
  return `you left #${esc(got.room)}${got.deleted ? " (its last member: the room is gone)" : ""}`;
}

/**
 * `backbone send '#NAME' TEXT`: sends to the room and waits until the server has handled
 * it. Exit code: OK, or UNDELIVERABLE when refused (not a member, too large) or when an
 * offline member's queue refused its copy (each such member is named on stderr).
 */
export async function sendToRoom(
  client: Client,
  to: string,
  text: Uint8Array | string,
  opts: {
    /** Sends it (default: as it is, `client.send`); the E2E layer's `sendRoomLine`. */
    send?: (room: string, text: Uint8Array | string) => Promise<unknown>;
    /** Resolves once re-sends to members who joined meanwhile have gone out. */
    settle?: () => Promise<void>;
  } = {},
): Promise<number> {
  let room: string;
  try {
    room = checkRoomName(to);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.USAGE);
  }
  const notices: Notice[] = [];
  client.on("notice", (n) => notices.push(n));
  if (opts.send) await opts.send(`#${room}`, text);
  else client.send(`#${room}`, text);
  await client.ping(); // the server has handled the message (and every copy) once this returns
  // An E2E message that missed members who joined meanwhile went to them again.
  if (notices.some((n) => n.status === "recipients") && opts.settle) {
    await opts.settle();
    await client.ping();
  }
  for (let i = notices.length - 1; i >= 0; i--)
    if (notices[i]?.status === "recipients") notices.splice(i, 1);
  const refused = notices.find((n) => n.status !== "rejected");
  if (refused) throw new CliError(describeRoomNotice(refused), EXIT.UNDELIVERABLE);
  for (const n of notices) process.stderr.write(`backbone: ${describeRoomNotice(n)}\n`);
  return notices.length > 0 ? EXIT.UNDELIVERABLE : EXIT.OK;
}
