/**
 * Room fan-out (docs/PROTOCOL.md § Rooms, § Limits): one room message becomes a copy
 * per receiving member, handed out in slices with a per-sender budget, so that one
 * sender to a large room cannot starve everyone else.
 *
 * - **Budget.** Each sender has a bucket of copies (`room_fanout_rate` per second, up
 *   to `room_fanout_burst`). A fan-out charges one copy per member it reaches; a
 *   sender in debt waits until the bucket has refilled. While a fan-out waits, the
 *   sender's connection reads nothing more (its TCP window closes): the sender is
 *   slowed, nothing is dropped, and its later messages cannot overtake this one.
 * - **Slices.** Members are served `FANOUT_SLICE` at a time; between slices the event
 *   loop turns, so other connections' input and output go on.
 */
import { idKey, idToBytes } from "../ids.ts";
import { LIVE } from "../net/outbox.ts";
import { copyBytes } from "../wire/bytes.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";

/** Members served per turn of the event loop. */
export const FANOUT_SLICE = 256;

/** Per-sender copy budget: a token bucket that may go into debt, paid back by waiting. */
export class FanoutBudget {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * Charges `copies` to `sender`; returns how long (ms) the sender must wait before
   * they go out (0: at once).
   */
  charge(sender: string, copies: number, rate: number, burst: number): number {
    const now = performance.now();
    let b = this.#buckets.get(sender);
    if (!b) {
      b = { tokens: burst, at: now };
      this.#buckets.set(sender, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    b.tokens -= copies;
    return b.tokens >= 0 ? 0 : Math.ceil((-b.tokens / rate) * 1000);
  }

  /** Forgets senders whose bucket is full again. */
  sweep(rate: number, burst: number): void {
    const now = performance.now();
    for (const [k, b] of this.#buckets)
      if (b.tokens + ((now - b.at) / 1000) * rate >= burst) this.#buckets.delete(k);
  }
}

/** A member a message goes to: its ID text and its map key. */
export interface Target {
  id: string;
  key: string;
  /**
   * This member's own message (an end-to-end encrypted room message: a ciphertext per
   * member, rooms.ts `routeE2E`); absent: the fan-out's shared one.
   */
  plain?: Uint8Array;
}

const keys = new Map<string, string>();

/** The target of a member ID (keys remembered: the same members get every message). */
export function target(id: string): Target {
  let key = keys.get(id);
  if (key === undefined) {
    key = idKey(idToBytes(id));
    if (keys.size > 100_000) keys.clear();
    keys.set(id, key);
  }
  return { id, key };
}

/**
 * Delivers `plain` (a type 3 room message with the true sender written in) to every
 * target still a member (`stillMember`), live to each receiving session or else into the
 * member's own queue. Returns a promise when it had to wait (budget, slices) or the store
 * is involved; undefined when everything went out at once.
 */
export function fanOut(
  ctx: ServerContext,
  from: Connection,
  plain: Uint8Array,
  targets: Target[],
  stillMember: (id: string) => boolean,
  budget: FanoutBudget,
): Promise<void> | undefined {
  const stored: Promise<void>[] = [];
  const s = ctx.settings;
  const wait = budget.charge(
    from.key,
    Math.min(targets.length, FANOUT_SLICE),
    s.room_fanout_rate,
    s.room_fanout_burst,
  );
  if (wait === 0 && targets.length <= FANOUT_SLICE) {
    deliverSlice(ctx, from, plain, targets, stillMember, stored);
    return stored.length > 0 ? Promise.all(stored).then(() => undefined) : undefined;
  }
  // It waits (budget, slices): the sender's later frames wait too, so none overtakes it.
  // (Store writes alone do not hold them: they keep each recipient's order by themselves.)
  from.holdInput();
  return (async () => {
    let pause = wait;
    for (let i = 0; i < targets.length; i += FANOUT_SLICE) {
      if (i > 0) {
        const n = Math.min(targets.length - i, FANOUT_SLICE);
        pause = budget.charge(from.key, n, s.room_fanout_rate, s.room_fanout_burst);
      }
      await (pause > 0 ? Bun.sleep(pause) : new Promise<void>((r) => setImmediate(r)));
      // A sender revoked meanwhile: nothing more of it is routed (docs/SECURITY.md).
      if (from.endReason === "revoked") break;
      deliverSlice(ctx, from, plain, targets.slice(i, i + FANOUT_SLICE), stillMember, stored);
    }
    await Promise.all(stored);
  })();
}

function deliverSlice(
  ctx: ServerContext,
  from: Connection,
  shared: Uint8Array,
  targets: Target[],
  stillMember: (id: string) => boolean,
  stored: Promise<void>[],
): void {
  const online = ctx.router.online;
  for (const t of targets) {
    // A member removed while the fan-out waited gets nothing more.
    if (!stillMember(t.id)) continue;
    const plain = t.plain ?? shared;
    if (ctx.router.cluster) {
      // Cluster mode: each copy through ROUTE, to the member's sessions on every node.
      stored.push(ctx.router.routeCopy(from, t.id, t.key, copyBytes(plain)));
      continue;
    }
    const live = online.liveReceivers(t.key);
    if (live.length > 0) {
      // A copy per member: the sessions registry tells copies apart by identity.
      const copy = copyBytes(plain);
      online.noteRouted(t.key, copy);
      for (const conn of live) conn.post(copy, LIVE);
      ctx.stats.routed += live.length;
    } else {
      stored.push(ctx.router.holdFor(from, t.id, t.key, plain));
    }
  }
}
