/**
 * Room names (docs/PROTOCOL.md § Rooms): the same rules as client names — checked by
 * the one client-name validator, `checkName` in src/ids.ts, so any rule added there
 * (look-alikes, confusables) holds for rooms too — in a namespace of their own, and
 * written `#name` wherever a recipient is accepted.
 */
import { UsageError } from "../errors.ts";
import { checkName, nameKey } from "../ids.ts";
import { MAX_ROOM_NAME_BYTES } from "../wire/room.ts";

const utf8 = new TextEncoder();

/** True when a recipient string names a room (`#ops`). */
export function isRoomAddress(to: string): boolean {
  return to.startsWith("#");
}

/**
 * Checks a room name, with or without its leading `#`, and returns it NFKC-normalised
 * without the `#`. Throws `UsageError` `BAD_NAME` (the client-name rules, and at most
 * 255 bytes of UTF-8, which every valid name of 63 or fewer characters meets).
 */
export function checkRoomName(name: string): string {
  const bare = name.startsWith("#") ? name.slice(1) : name;
  let n: string;
  try {
    n = checkName(bare);
  } catch (err) {
    throw new UsageError("BAD_NAME", `invalid room name ${JSON.stringify(name)}: ${tail(err)}`);
  }
  if (utf8.encode(n).length > MAX_ROOM_NAME_BYTES) {
    throw new UsageError("BAD_NAME", `room name is longer than ${MAX_ROOM_NAME_BYTES} bytes`);
  }
  return n;
}

/** The key two room names are the same under (the client names' rule: NFKC + case). */
export function roomKey(name: string): string {
  return nameKey(name.startsWith("#") ? name.slice(1) : name);
}

function tail(err: unknown): string {
  const msg = (err as Error).message;
  const i = msg.indexOf(": ");
  return i >= 0 ? msg.slice(i + 2) : msg;
}
