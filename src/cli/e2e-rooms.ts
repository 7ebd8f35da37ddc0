/**
 * End-to-end encrypted rooms in the terminal commands (docs/E2E.md § Rooms): sending a
 * line to `#room` through the E2E layer, membership events with the member's key
 * fingerprint, and the warning about unverified or keyless members — once when a room
 * is opened, and once for each member who joins, never per line.
 */
import type { Client } from "../client/client.ts";
import { RoomError, type RoomEvent } from "../client/rooms.ts";
import { E2EError } from "../e2e/errors.ts";
import type { E2EEvents, E2EManager } from "../e2e/session-manager.ts";
import { escapeControls } from "../text/escape.ts";
import { CliError, EXIT } from "./common.ts";
import { acceptHint, EXIT_E2E_REQUIRED, EXIT_KEY_CHANGED, e2eExitCode, type Say } from "./e2e.ts";
import { describeRoomEvent } from "./rooms-ui.ts";

const esc = (s: string) => escapeControls(s);

/** `--strict` / `--peer-key` as the room commands see them. */
export interface RoomSendFlags {
  strict?: boolean | undefined;
  "peer-key"?: string | undefined;
}

/**
 * `--peer-key` pins one peer: a room has several. Throws `CliError` (usage) when it is
 * given for a room.
 */
export function checkRoomFlags(room: string, flags: RoomSendFlags): void {
  if (flags["peer-key"])
    throw new CliError(
      `--peer-key pins one peer; ${room} is a room (use --strict: every member verified)`,
      EXIT.USAGE,
    );
}

/**
 * Sends `data` to `room` (`#ops`): end-to-end encrypted through `e2e` when there is one
 * (members without keys skipped, with a warning; plaintext only when nobody has keys),
 * as it is with `--no-e2e`. Throws `CliError`: exit 9 when `--strict` refuses (a member
 * unverified or without keys), 7 when a verified member's key changed, 6 when not a
 * member.
 */
export async function sendRoomLine(
  client: Client,
  e2e: E2EManager | null,
  room: string,
  data: string | Uint8Array,
  flags: RoomSendFlags = {},
): Promise<{ e2e: boolean }> {
  if (!e2e) {
    client.send(room, data);
    return { e2e: false };
  }
  try {
    const r = await e2e.sendRoom(room, data, flags.strict ? { strict: true } : {});
    return { e2e: r.e2e };
  } catch (err) {
    if (err instanceof E2EError && (err.code === "UNVERIFIED" || err.code === "NO_KEYS"))
      throw new CliError(err.message, EXIT_E2E_REQUIRED);
    if (err instanceof E2EError && err.code === "KEY_CHANGED")
      throw new CliError(`${err.message} ${acceptHint(err.peer ?? "ID")}`, EXIT_KEY_CHANGED);
    if (err instanceof E2EError && err.code === "TOO_LARGE")
      throw new CliError(`not sent: ${err.message}`, EXIT.UNDELIVERABLE);
    // The member list is for members only: a non-member hears what the server would say.
    if (err instanceof RoomError && (err.code === "not_member" || err.code === "not_found"))
      throw new CliError(`not sent: you are not a member of ${esc(room)}`, EXIT.UNDELIVERABLE);
    if (err instanceof RoomError)
      throw new CliError(`${esc(room)}: ${err.message}`, EXIT.UNDELIVERABLE);
    if (err instanceof E2EError) throw new CliError(err.message, e2eExitCode(err));
    throw err;
  }
}

/**
 * The warning lines about `room`'s members that are not verified or have no keys (none
 * when every member is verified). Fetches keys it lacks. Errors (not a member) give
 * no lines: the send itself reports them.
 */
export async function roomTrustWarnings(e2e: E2EManager, room: string): Promise<string[]> {
  let got: Awaited<ReturnType<E2EManager["roomMembers"]>>;
  try {
    got = await e2e.roomMembers(room);
  } catch {
    return [];
  }
  const name = `#${esc(got.room)}`;
  const lines: string[] = [];
  const unverified = got.members.filter((m) => m.fingerprint !== null && !m.verified);
  const keyless = got.members.filter((m) => m.fingerprint === null);
  if (unverified.length > 0) {
    const who = unverified.map((m) => `${esc(m.name || m.id)} (${m.fingerprint})`).join(", ");
    lines.push(
      `warning: ${name} has members you have not verified: ${who}; compare safety numbers with: backbone verify ${esc(unverified[0]?.name || unverified[0]?.id || "")}${unverified.length > 1 ? " (and each of the others)" : ""}`,
    );
  }
  if (keyless.length > 0) {
    const who = keyless.map((m) => esc(m.name || m.id)).join(", ");
    lines.push(
      keyless.length === got.members.length
        ? `warning: no member of ${name} has E2E keys (${who}): messages there go without end-to-end encryption`
        : `warning: ${who} in ${name} published no E2E keys: your messages there skip ${keyless.length === 1 ? "it" : "them"} (--no-e2e sends plaintext to everyone)`,
    );
  }
  return lines;
}

/**
 * One line for a membership event, with the member's identity key fingerprint and
 * whether it is verified (the E2E layer's view; `no E2E keys` when it has none), and
 * a warning line when an unverified member joined.
 */
export async function describeRoomEventE2E(
  e2e: E2EManager | null,
  e: RoomEvent,
  self: string,
): Promise<string[]> {
  const line = describeRoomEvent(e);
  if (!e2e || !e.member?.id || e.member.id.toLowerCase() === self.toLowerCase()) return [line];
  let key: { fingerprint: string | null; verified: boolean };
  try {
    key = await e2e.memberKey(e.member.id, e.member.name, !gone(e));
  } catch {
    return [line];
  }
  const tag =
    key.fingerprint === null
      ? gone(e)
        ? "key not known here"
        : "no E2E keys"
      : `key ${key.fingerprint}, ${key.verified ? "verified" : "unverified"}`;
  const lines = [`${line} (${tag})`];
  if (e.event === "joined" && !key.verified) {
    const who = esc(e.member.name || e.member.id);
    lines.push(
      key.fingerprint === null
        ? `warning: ${who} has no E2E keys: your messages in #${esc(e.room)} skip it`
        : `warning: ${who} in #${esc(e.room)} is not verified; compare safety numbers with: backbone verify ${who}`,
    );
  }
  return lines;
}

/** A member who left or was removed: its key is shown as recorded, not fetched. */
function gone(e: RoomEvent): boolean {
  return e.event === "left" || e.event === "removed";
}

/** Row of `listen --json` for a membership event (fingerprint fields with E2E on). */
export async function roomEventRow(
  e2e: E2EManager | null,
  e: RoomEvent,
  self: string,
): Promise<Record<string, unknown>> {
  const row: Record<string, unknown> = {
    kind: "room_event",
    event: e.event,
    room: e.room,
    member: e.member,
    ...(e.by ? { by: e.by } : {}),
  };
  if (!e2e || !e.member?.id || e.member.id.toLowerCase() === self.toLowerCase()) return row;
  try {
    const key = await e2e.memberKey(e.member.id, e.member.name, !gone(e));
    return { ...row, fingerprint: key.fingerprint, verified: key.verified };
  } catch {
    return row;
  }
}

/** Prints the room's trust warnings once per room (`shown` remembers the rooms). */
export async function warnRoomOnce(
  e2e: E2EManager | null,
  room: string,
  shown: Set<string>,
  say: Say,
): Promise<void> {
  if (!e2e || shown.has(room.toLowerCase())) return;
  shown.add(room.toLowerCase());
  for (const line of await roomTrustWarnings(e2e, room)) say(line);
}

/** Member ID → `key SHA256:…, verified|unverified` or `no E2E keys`, for `/who` in a room. */
export async function roomKeyTags(e2e: E2EManager, room: string): Promise<Map<string, string>> {
  const tags = new Map<string, string>();
  try {
    for (const m of (await e2e.roomMembers(room)).members)
      tags.set(
        m.id,
        m.fingerprint === null
          ? "no E2E keys"
          : `key ${m.fingerprint}, ${m.verified ? "verified" : "unverified"}`,
      );
  } catch {
    // shown without keys
  }
  return tags;
}

/** A `roomMember` event of the E2E layer: a member this client never saw join. */
export type RoomPresence = E2EEvents["roomMember"][0];

/**
 * Lines for a member this client never saw join (its join event lost or withheld by
 * the server), shown before anything of its: `carol is in #ops (key SHA256:…,
 * unverified)`, and the same warning as for an unverified or keyless member who joins.
 */
export function describeRoomPresence(p: RoomPresence): string[] {
  const who = esc(p.member.name || p.member.id);
  const room = `#${esc(p.room)}`;
  const tag =
    p.fingerprint === null
      ? "no E2E keys"
      : `key ${p.fingerprint}, ${p.verified ? "verified" : "unverified"}`;
  const lines = [`${who} is in ${room} (${tag})`];
  if (!p.verified)
    lines.push(
      p.fingerprint === null
        ? `warning: ${who} has no E2E keys: your messages in ${room} skip it`
        : `warning: ${who} in ${room} is not verified; compare safety numbers with: backbone verify ${who}`,
    );
  return lines;
}

/** Row of `listen --json` for a `roomMember` event: a room_event of event "present". */
export function roomPresenceRow(p: RoomPresence): Record<string, unknown> {
  return {
    kind: "room_event",
    event: "present",
    room: p.room,
    member: p.member,
    fingerprint: p.fingerprint,
    verified: p.verified,
  };
}
