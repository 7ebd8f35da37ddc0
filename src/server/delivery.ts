/**
 * Delivery of held (offline) messages at login (docs/PROTOCOL.md § Sessions and
 * delivery): in store order, as type 2 with `queued_at`, before any live message.
 * A batch is removed from the store only once it has been handed to TCP in full, so a
 * connection that drops mid-way leaves the rest stored, in order, for next time.
 */
import { idToBytes } from "../ids.ts";
import { encodeStored, unixNow } from "../wire/message.ts";
import type { Connection } from "./connection.ts";

/** Held messages read from the store per batch. */
const BATCH = 256;

export async function deliverStored(conn: Connection): Promise<void> {
  const { ctx } = conn;
  try {
    // Stores already under way for this client finish first, so none is missed.
    await ctx.router.storeIdle(conn.idText);
    const oldest = unixNow() - ctx.settings.queue_max_age;
    for (;;) {
      if (conn.phase !== "open" || !conn.outbox) return;
      const batch = await ctx.store.peek(conn.idText, BATCH);
      if (batch.length === 0) return;
      const last = (batch[batch.length - 1] as { seq: number }).seq;
      let queued = 0;
      for (const m of batch) {
        if (m.queuedAt < oldest) continue; // expired: dropped with the batch
        conn.outbox.push(encodeStored(idToBytes(m.sender), m.queuedAt, m.data), m.seq);
        queued++;
      }
      ctx.stats.routed += queued; // handed to the recipient's connection (SERVER_STATUS)
      ctx.schedule(conn);
      await conn.whenIdle();
      // Everything up to `last` is either expired or handed to TCP — unless the
      // connection ended first, in which case only what went out in full is removed.
      const through = conn.phase === "open" ? last : conn.outbox.deliveredSeq;
      if (through > 0) await ctx.store.remove(conn.idText, through);
      ctx.stats.deliveredStored += queued;
      if (through !== last) return;
    }
  } catch (err) {
    ctx.log.error("stored delivery failed", { id: conn.idText, error: String(err) });
  } finally {
    conn.releaseHeld();
  }
}
