/**
 * Copies one store into another (`backbone migrate`): every client as recorded
 * (revoked ones too, with their times) with its E2E key bundle, every room with its owner, members and
 * invitations, and every held message, in order, with the time it was queued (and its
 * room). The target must be empty; the source is only read, so a migration that
 * fails half-way leaves the source whole and can be run again into a fresh target.
 */
import { UsageError } from "../errors.ts";
import type { Store } from "./store.ts";

/** Held messages read per page, so a large queue never sits in memory at once. */
const PAGE = 1_000;

const UNBOUNDED = {
  maxMessages: Number.MAX_SAFE_INTEGER,
  maxBytes: Number.MAX_SAFE_INTEGER,
  maxAge: Number.MAX_SAFE_INTEGER,
  maxPerSender: Number.MAX_SAFE_INTEGER,
};

export interface MigrationResult {
  clients: number;
  /** E2E key bundles copied. */
  bundles: number;
  rooms: number;
  messages: number;
  recipients: number;
}

/**
 * Copies `from` into the empty `to`. Throws `UsageError` `TARGET_NOT_EMPTY` when `to`
 * holds clients or messages, and `StoreError` on a failed read or write (messages the
 * target refused are a failure too: nothing is dropped silently).
 */
export async function migrateStore(
  from: Store,
  to: Store,
  onProgress: (done: MigrationResult) => void = () => {},
): Promise<MigrationResult> {
  const present = (await to.listClients()).length;
  const held = await to.pendingCount();
  if (present > 0 || held > 0) {
    throw new UsageError(
      "TARGET_NOT_EMPTY",
      `the target already holds ${present} clients and ${held} messages; migrate into an empty store`,
    );
  }
  const done: MigrationResult = { clients: 0, bundles: 0, rooms: 0, messages: 0, recipients: 0 };
  const clients = await from.listClients();
  for (const client of clients) {
    await to.importClient({ ...client, online: false });
    // Its E2E bundle too: without it, peers would find no keys and fall back to plaintext.
    const keys = await from.keys?.exportKeys(client.id);
    if (keys) {
      if (!to.keys)
        throw new UsageError("MIGRATE_WRITE", "the target store has no E2E key directory");
      await to.keys.importKeys(client.id, keys);
      done.bundles++;
    }
    done.clients++;
  }
  // Rooms, found through their members: each with its owner, then its members and
  // invitations in their order, each since the time it had.
  const rooms = new Set<string>();
  for (const client of clients)
    for (const m of await from.rooms.roomsOf(client.id)) rooms.add(m.room);
  for (const name of rooms) {
    const room = await from.rooms.getRoom(name);
    if (!room) continue;
    await to.rooms.createRoom(room);
    for (const m of await from.rooms.roomMembers(name)) {
      if (m.client !== room.owner) await to.rooms.setMembership(name, m.client, m.state, m.since);
    }
    done.rooms++;
  }
  onProgress(done);
  for (const recipient of await from.heldRecipients()) {
    let after = 0;
    for (;;) {
      const page = await from.peek(recipient, PAGE, after);
      if (page.length === 0) break;
      const results = await to.enqueue(
        recipient,
        page.map((m) => ({
          sender: m.sender,
          at: m.queuedAt,
          data: m.data,
          ...(m.room !== null ? { room: m.room } : {}),
        })),
        UNBOUNDED,
      );
      const refused = results.find((r) => !r.ok);
      if (refused && !refused.ok) {
        throw new UsageError(
          "MIGRATE_WRITE",
          `cannot copy messages for ${recipient}: ${refused.reason}`,
        );
      }
      done.messages += page.length;
      after = page[page.length - 1]?.seq ?? after;
    }
    done.recipients++;
    onProgress(done);
  }
  return done;
}
