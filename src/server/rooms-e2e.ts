/**
 * End-to-end encrypted room messages on the server (docs/PROTOCOL.md § End-to-end
 * encrypted room messages): one type 5 frame holds a ciphertext per member; each
 * current member gets only its own, as an ordinary room message (type 3 live, type 4
 * stored) with the true sender and the room's name as created. The server never
 * delivers a ciphertext to a non-member, and tells the sender (NOTICE `recipients`)
 * which members its frame left out (they joined meanwhile: the sender encrypts for them
 * and sends again) and which entries it dropped (not members).
 */
import type { RoomState } from "../store/store.ts";
import { CONTROL_HEADER_BYTES, MAX_MESSAGE_DATA } from "../wire/constants.ts";
import { encodeRoomMessage } from "../wire/room.ts";
import type { RoomE2EMessage } from "../wire/room-e2e.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { type FanoutBudget, fanOut, type Target, target } from "./fanout.ts";

/** The most IDs one NOTICE `recipients` lists per field (a NOTICE must fit one message). */
const MAX_LISTED = 1000;

/**
 * The longest prefixes of `first` and then `second` that, listed in `body` (whose lists
 * are empty), keep the NOTICE within one message (MAX_MESSAGE_DATA): 1000 missing
 * members and 1000 dropped entries together are ~78 KB of JSON, over the 64 KiB a
 * message holds. `second` is shortened first: `first` lists the members to re-send to,
 * which the sender acts on; the reason text still counts every ID of both.
 */
function fitLists(
  body: Record<string, unknown>,
  first: string[],
  second: string[],
): [string[], string[]] {
  const utf8 = new TextEncoder();
  let room = MAX_MESSAGE_DATA - CONTROL_HEADER_BYTES - utf8.encode(JSON.stringify(body)).length;
  const take = (ids: string[]): string[] => {
    let n = 0;
    for (const id of ids) {
      const cost = utf8.encode(JSON.stringify(id)).length + (n > 0 ? 1 : 0); // the comma
      if (cost > room) break;
      room -= cost;
      n++;
    }
    return ids.slice(0, n);
  };
  const a = take(first);
  return [a, take(second)];
}

/**
 * Delivers `m` from `from`, a member of the room `name` whose members are `members`
 * (the caller checked the sender's membership and the sizes).
 */
export function sendRoomE2E(
  ctx: ServerContext,
  from: Connection,
  m: RoomE2EMessage,
  name: string,
  members: Map<string, RoomState>,
  budget: FanoutBudget,
): Promise<void> | undefined {
  const targets: Target[] = [];
  const covered = new Set<string>();
  const notMembers: string[] = [];
  for (const e of m.entries) {
    covered.add(e.member);
    if (e.member === from.idText || members.get(e.member) !== "member") {
      notMembers.push(e.member);
      continue;
    }
    // Each member's own copy: the true sender and the room's name written in.
    targets.push({ ...target(e.member), plain: encodeRoomMessage(from.id, name, e.ciphertext) });
  }
  const missing: string[] = [];
  for (const [id, state] of members)
    if (state === "member" && id !== from.idText && !covered.has(id)) missing.push(id);
  if (missing.length > 0 || notMembers.length > 0) {
    const address = `#${m.room}`; // as the message carried it, like every room NOTICE
    const reason = `${missing.length} member(s) without a ciphertext got nothing; ${notMembers.length} ciphertext(s) for non-members dropped`;
    const [listedMissing, listedNotMembers] = fitLists(
      { address, status: "recipients", reason, message: m.messageId, missing: [], not_members: [] },
      missing.slice(0, MAX_LISTED),
      notMembers.slice(0, MAX_LISTED),
    );
    ctx.router.notice(from, address, "recipients", reason, {
      message: m.messageId,
      missing: listedMissing,
      not_members: listedNotMembers,
    });
  }
  if (targets.length === 0) return;
  const still = (id: string) => members.get(id) === "member";
  return fanOut(ctx, from, new Uint8Array(0), targets, still, budget);
}
