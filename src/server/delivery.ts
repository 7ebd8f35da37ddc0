/**
 * Delivery of held (offline) messages at login (docs/PROTOCOL.md § Sessions and
 * delivery): in store order, as type 2 with `queued_at`, before any live message.
 * A batch is removed from the store once the client acknowledged it (ACK, when the
 * client asked for that with its first ACK) or else once it has been handed to TCP in
 * full; a connection that drops mid-way leaves the rest stored, in order, for next time.
 */
import { idToBytes } from "../ids.ts";
import type { Outbox } from "../net/outbox.ts";
import type { StoredMessage } from "../store/store.ts";
import { encodeStored, unixNow } from "../wire/message.ts";
import { encodeRoomMessage } from "../wire/room.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";

/** Held messages read from the store per batch. */
const BATCH = 256;

/**
 * A session is open: a session that takes stored messages becomes the taker if none is
 * (one at a time, so none is delivered twice), else it holds its live messages until
 * the taker has drained the store (so the sender's order holds on every session). A
 * session that takes no stored messages gets its live ones at once.
 */
export function startDelivery(conn: Connection): void {
  if (!conn.session.stored) {
    conn.releaseHeld();
    return;
  }
  if (conn.ctx.router.online.claimTaker(conn)) void runTaker(conn);
}

/** Messages were stored for `key`: a session that takes them and is idle starts taking. */
export function storedArrived(ctx: ServerContext, key: string): void {
  const sessions = ctx.router.online;
  if (sessions.taker(key)) return;
  const next = sessions.nextTaker(key);
  if (next && sessions.claimTaker(next)) void runTaker(next);
}

async function runTaker(conn: Connection): Promise<void> {
  const sessions = conn.ctx.router.online;
  // Cluster mode: one taker in the whole cluster, under a lease (cluster-node.ts).
  const cluster = conn.ctx.router.cluster;
  if (cluster) {
    const lease = await cluster.takeStored(conn);
    if (lease !== "taken") {
      sessions.releaseTaker(conn);
      // Redis failing: live messages are not held back for it (as for a failing store).
      if (lease === "failed") conn.releaseHeld();
      return;
    }
  }
  const progress = { sent: 0 };
  const drained = await deliverStored(conn, progress);
  // Others are told only after a run that moved something (else two nodes would wake
  // each other for ever); one that waits for the lease also tries again by itself.
  if (cluster) await cluster.releaseStored(conn, !drained || progress.sent > 0);
  sessions.releaseTaker(conn);
  if (drained) {
    for (const c of sessions.sessionsOf(conn.key)) if (c.session.stored) c.releaseHeld();
    return;
  }
  // The taker ended mid-way: what it did not acknowledge goes to the next one.
  const next = sessions.nextTaker(conn.key);
  if (next && sessions.claimTaker(next)) void runTaker(next);
}

/**
 * Delivers `conn`'s stored messages; true once the store is drained, false if the
 * connection ended first. `progress.sent`: how many it queued on the connection.
 */
export async function deliverStored(
  conn: Connection,
  progress?: { sent: number },
): Promise<boolean> {
  const { ctx } = conn;
  try {
    // Stores already under way for this client finish first, so none is missed.
    await ctx.router.storeIdle(conn.idText);
    const oldest = unixNow() - ctx.settings.queue_max_age;
    // Messages delivered earlier whose removal failed: removed now if the store can, and
    // skipped either way.
    let after = ctx.router.deliveredThrough.get(conn.idText) ?? 0;
    if (after > 0) await removeDelivered(ctx, conn.idText, after);
    let sent = 0; // stored messages queued on this connection so far
    for (let first = true; ; first = false) {
      // One batch per turn of the event loop: a long backlog read from the store does
      // not hold up other connections (docs/PROTOCOL.md § Limits).
      if (!first) await new Promise<void>((resolve) => setImmediate(resolve));
      if (conn.phase !== "open" || !conn.outbox) return false;
      const batch = await ctx.store.peek(conn.idText, BATCH, after);
      if (batch.length === 0) return true;
      const last = (batch[batch.length - 1] as { seq: number }).seq;
      // marks[i]: once the client has `count` stored messages, store entries through
      // `seq` are settled (delivered, or expired on the way).
      const marks: { count: number; seq: number }[] = [];
      let queued = 0;
      for (const m of batch) {
        if (m.queuedAt >= oldest) {
          // Paced by the client's reading: stored messages take at most half the backlog
          // bound, the rest is left for replies and NOTICEs (docs/PROTOCOL.md § Limits).
          const outbox: Outbox = conn.outbox;
          if (!outbox.idle && outbox.sendingBytes + m.data.length > outbox.limit / 2) {
            ctx.schedule(conn);
            await conn.whenIdle();
            if (conn.phase !== "open") break;
          }
          const message = deliverable(ctx, conn, m);
          if (message) {
            outbox.push(message, m.seq);
            queued++;
            sent++;
          }
        } // else expired: dropped with the batch
        marks.push({ count: sent, seq: m.seq });
      }
      ctx.stats.routed += queued; // handed to the recipient's connection (SERVER_STATUS)
      if (progress) progress.sent = sent;
      ctx.schedule(conn);
      await conn.whenIdle();
      let through: number;
      if (conn.acks.acking) {
        // Removed only when acknowledged: what the client never confirmed stays stored.
        await conn.acks.when(sent);
        const acked = conn.acks.count;
        through = after;
        for (const mark of marks) if (mark.count <= acked) through = mark.seq;
      } else {
        // Everything up to `last` is either expired or handed to TCP — unless the
        // connection ended first, in which case only what went out in full is removed.
        through = conn.phase === "open" ? last : conn.outbox.deliveredSeq;
      }
      if (through > after) {
        await removeDelivered(ctx, conn.idText, through);
        after = through;
      }
      ctx.stats.deliveredStored += queued;
      if (through !== last) return false;
    }
  } catch (err) {
    ctx.log.error("stored delivery failed", { id: conn.idText, error: String(err) });
    return true; // live messages are not held back for a store that fails
  }
}

/**
 * Removes `recipient`'s held messages through `seq`, which have been delivered. If the
 * store cannot (a full disk cannot even record a delete), they are remembered as
 * delivered, so that a later login does not deliver them a second time; the removal
 * is tried again then. (Across a restart of the server this memory is gone.)
 */
async function removeDelivered(ctx: ServerContext, recipient: string, seq: number): Promise<void> {
  try {
    await ctx.store.remove(recipient, seq);
    ctx.router.deliveredThrough.delete(recipient);
  } catch (err) {
    const known = ctx.router.deliveredThrough.get(recipient) ?? 0;
    ctx.router.deliveredThrough.set(recipient, Math.max(known, seq));
    ctx.log.error("store delete failed; delivered messages are skipped until it works", {
      id: recipient,
      through: seq,
      error: String(err),
    });
  }
}

/** A held message as delivered: type 2, or type 4 for a room message (§ Rooms). */
/**
 * `m` as its stored form, or null when it has none (one that could never be handed
 * over — over one frame — was stored by an older server: dropped with the batch and
 * logged, so that it does not block every message behind it at every login).
 */
function deliverable(ctx: ServerContext, conn: Connection, m: StoredMessage): Uint8Array | null {
  try {
    return storedMessage(m);
  } catch (err) {
    ctx.log.error("undeliverable stored message dropped", {
      id: conn.idText,
      from: m.sender,
      bytes: m.data.length,
      error: String(err),
    });
    return null;
  }
}

function storedMessage(m: StoredMessage): Uint8Array {
  const sender = idToBytes(m.sender);
  return m.room
    ? encodeRoomMessage(sender, m.room, m.data, m.queuedAt)
    : encodeStored(sender, m.queuedAt, m.data);
}
