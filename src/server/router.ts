/**
 * The server core's routing (docs/PROTOCOL.md § Messages, § Sessions and delivery):
 * who is online, direct and broadcast C2C, offline storage and NOTICEs.
 *
 * A direct message's plaintext is reused as the delivered message: the server
 * overwrites the address with the true sender and posts the same bytes on the
 * recipient's client queue (no copy).
 */
import { BROADCAST, idKey, idKeyAt, idToText } from "../ids.ts";
import { CONTROL, LIVE } from "../net/outbox.ts";
import type { EnqueueResult, PresenceChange, QueueLimits } from "../store/store.ts";
import { BROADCAST_ID, C2C_HEADER_BYTES } from "../wire/constants.ts";
import { C2CType, ControlType, encodeControl, Format } from "../wire/message.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { startDelivery, storedArrived } from "./delivery.ts";
import { RateLimiter } from "./limits.ts";
import { KeyedSerial } from "./serial.ts";
import { SessionRegistry } from "./sessions.ts";

export type NoticeStatus = "queued" | "unknown" | "rejected" | "too_large" | "rate_limited";

const BROADCAST_KEY = idKey(BROADCAST_ID);
/** How long presence changes are gathered before they are written (see #notePresence). */
const PRESENCE_DELAY_MS = 50;
/** A message waiting to be written to the store (see #offline). */
interface Held {
  /** The sender's connection; null for a message a closing connection never delivered. */
  from: Connection | null;
  toKey: string;
  plain: Uint8Array;
  /** Whether the store's bounds apply (not to messages already accepted for delivery). */
  bounded: boolean;
  resolve: () => void;
}

const UNBOUNDED = {
  maxMessages: Infinity,
  maxBytes: Infinity,
  maxAge: Infinity,
  maxPerSender: Infinity,
};

export class Router {
  /** Authenticated connections, several per client ID (sessions.ts). */
  readonly online = new SessionRegistry();
  readonly #ctx: ServerContext;
  readonly #serial = new KeyedSerial();
  /** Messages for each recipient waiting for the next store write. */
  readonly #held = new Map<string, Held[]>();
  readonly broadcasts: RateLimiter;
  /**
   * Held messages handed to a recipient's connection whose removal from the store
   * failed (a full or failing disk): recipient → last sequence number delivered.
   * Stored delivery skips them and retries the removal, so none arrives twice.
   */
  readonly deliveredThrough = new Map<string, number>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    this.broadcasts = new RateLimiter(ctx.settings.broadcast_rate, ctx.settings.broadcast_burst);
  }

  /**
   * Adds `conn` to its client's sessions. A session with the same tag gets STOP
   * `replaced by a new connection`; the live messages it had not delivered are
   * returned, for the new connection to deliver. Null: refused (session limit).
   */
  register(conn: Connection): Uint8Array[] | null {
    const wasOnline = this.online.receiving(conn.key);
    const added = this.online.add(conn, this.#ctx.settings.max_sessions_per_client);
    if (!added.ok) return null;
    const old = added.replaced;
    if (!wasOnline && (conn.session.live || conn.session.stored))
      this.#notePresence(conn.idText, true, Date.now());
    if (!old || old === conn) return [];
    const inherited = old.takeUndelivered();
    if (old.outbox && !old.outbox.idle) {
      // The old connection holds frames it sealed but could not write yet; those not
      // written when it closes are stored then. Stored delivery to the new connection
      // waits for that, so the sender's order holds (§ Sessions and delivery).
      void this.#serial.run(conn.idText, () => old.gone);
    }
    old.stop("replaced by a new connection");
    return inherited;
  }

  /** Starts stored delivery (or the hold on live messages) for a session now open. */
  opened(conn: Connection): void {
    startDelivery(conn);
  }

  /** Removes `conn` if it is still one of its client's sessions. */
  unregister(conn: Connection): void {
    if (this.online.remove(conn) && !this.online.receiving(conn.key)) {
      this.#notePresence(conn.idText, false, Date.now() - (performance.now() - conn.lastSeen));
    }
  }

  /**
   * Presence changes wait up to PRESENCE_DELAY_MS and go to the store in one write:
   * each would be a commit of its own (~0.1 ms here), on every login and logout.
   */
  #presence = new Map<string, PresenceChange>();
  #presenceTimer: ReturnType<typeof setTimeout> | null = null;

  #notePresence(id: string, online: boolean, atMs: number): void {
    this.#presence.set(id, { id, online, at: Math.floor(atMs / 1000) });
    this.#presenceTimer ??= setTimeout(() => void this.flushPresence(), PRESENCE_DELAY_MS);
  }

  /** Writes pending presence changes now. */
  async flushPresence(): Promise<void> {
    if (this.#presenceTimer) clearTimeout(this.#presenceTimer);
    this.#presenceTimer = null;
    if (this.#presence.size === 0) return;
    const changes = [...this.#presence.values()];
    this.#presence.clear();
    try {
      await this.#ctx.store.setPresence(changes);
    } catch (err) {
      this.#ctx.log.warn("presence not recorded", { error: String(err) });
    }
  }

  /** "Last seen" of a client whose logout is not written yet (unix s), if any. */
  pendingLastSeen(id: string): number | undefined {
    return this.#presence.get(id)?.at;
  }

  /** Routes a C2C from `from`. Returns a promise when the store is involved. */
  route(from: Connection, plain: Uint8Array): Promise<void> | undefined {
    // `plain` is `byte0 || address (16) || data`, length already checked (≥ 17).
    const { settings, stats } = this.#ctx;
    const type = (plain[0] as number) & 0x0f;
    const toKey = idKeyAt(plain, 1);
    const toBroadcast = toKey === BROADCAST_KEY;
    if (type === C2CType.STORED || (type === C2CType.BROADCAST && !toBroadcast)) {
      stats.discarded++; // type 2 is server → client only; a broadcast goes to ff…ff
      return;
    }
    const size = plain.length - C2C_HEADER_BYTES;
    if (size > settings.max_message_size) {
      const why = `message data of ${size} bytes exceeds max_message_size ${settings.max_message_size}`;
      this.notice(from, idToText(plain.subarray(1, C2C_HEADER_BYTES)), "too_large", why);
      return;
    }
    if (toBroadcast) {
      plain.set(from.id, 1); // the server writes the true sender
      return this.#broadcast(from, plain);
    }
    const to = this.online.liveReceivers(toKey);
    if (to.length > 0) {
      plain.set(from.id, 1);
      this.online.noteRouted(toKey, plain);
      for (const conn of to) conn.post(plain, LIVE);
      stats.routed += to.length;
      return;
    }
    const recipient = idToText(plain.subarray(1, C2C_HEADER_BYTES)); // before it is overwritten
    plain.set(from.id, 1);
    return this.#offline(from, recipient, toKey, plain);
  }

  #broadcast(from: Connection, plain: Uint8Array): undefined {
    if (!this.broadcasts.take(from.key)) {
      this.notice(from, BROADCAST, "rate_limited", "too many broadcasts; slow down");
      return;
    }
    plain[0] = (Format.C2C << 4) | C2CType.BROADCAST;
    let n = 0;
    for (const conn of this.online.values()) {
      if (conn.key !== from.key && conn.routable && conn.session.live) {
        conn.post(plain, CONTROL);
        n++;
      }
    }
    this.#ctx.stats.broadcasts++;
    this.#ctx.stats.routed += n;
  }

  /**
   * A direct message to someone not online: held for a registered client. Messages for
   * one recipient are gathered and written together (one transaction: a commit costs
   * ~0.1 ms here, an insert ~7 µs); the promise settles once this one is decided and its
   * NOTICE queued. Per recipient the writes run in turn, in arrival order.
   */
  #offline(from: Connection, recipient: string, toKey: string, plain: Uint8Array): Promise<void> {
    return new Promise((resolve) =>
      this.#hold(recipient, { from, toKey, plain, bounded: true, resolve }),
    );
  }

  #hold(recipient: string, item: Held): void {
    const waiting = this.#held.get(recipient);
    if (waiting) {
      waiting.push(item);
      return;
    }
    this.#held.set(recipient, [item]);
    void this.#serial.run(recipient, () => this.#writeHeld(recipient));
  }

  async #writeHeld(recipient: string): Promise<void> {
    await null; // the rest of this batch of input joins the write
    const items = this.#held.get(recipient) ?? [];
    this.#held.delete(recipient);
    const { store, stats, log } = this.#ctx;
    try {
      // Re-checked in turn: a recipient that logged in meanwhile gets them live — but
      // not what a closing connection left: that goes to the store, so the delivery at
      // login (which waits for this write) keeps it ahead of newer live messages.
      const toKey = (items[0] as Held).toKey;
      const to = this.online.liveReceivers(toKey);
      if (to.length > 0 && items.every((it) => it.bounded)) {
        for (const it of items) {
          this.online.noteRouted(toKey, it.plain);
          for (const conn of to) conn.post(it.plain, LIVE);
        }
        stats.routed += items.length * to.length;
        return;
      }
      // Messages a closing connection never delivered were accepted already: no checks.
      if (items.some((it) => it.bounded)) {
        const record = await store.getClient(recipient);
        if (!record || record.revokedAt !== null) {
          for (const it of items)
            if (it.from) this.notice(it.from, recipient, "unknown", "no such client");
          return;
        }
      }
      // Runs of bounded and unbounded messages, in order (usually one run).
      const at = Math.floor(Date.now() / 1000);
      for (let i = 0; i < items.length; ) {
        let j = i + 1;
        while (j < items.length && (items[j] as Held).bounded === (items[i] as Held).bounded) j++;
        const run = items.slice(i, j);
        const results = await store.enqueue(
          recipient,
          run.map((it) => ({
            sender: idToText(it.plain.subarray(1, C2C_HEADER_BYTES)),
            at,
            data: it.plain.subarray(C2C_HEADER_BYTES),
          })),
          (items[i] as Held).bounded ? this.#limits() : UNBOUNDED,
        );
        for (let k = 0; k < run.length; k++) {
          this.#settleHeld(recipient, run[k] as Held, results[k] as EnqueueResult);
        }
        i = j;
      }
    } catch (err) {
      log.error("store write failed", { to: recipient, reason: String(err) });
      for (const it of items)
        this.#settleHeld(recipient, it, { ok: false, reason: "storage failure", failure: true });
    } finally {
      for (const it of items) it.resolve();
      storedArrived(this.#ctx, (items[0] as Held).toKey);
    }
  }

  #settleHeld(recipient: string, it: Held, result: EnqueueResult): void {
    const { stats, log } = this.#ctx;
    if (result.ok) {
      stats.stored++;
      if (it.from)
        this.notice(
          it.from,
          recipient,
          "queued",
          "recipient is offline; stored for delivery at its next login",
        );
      return;
    }
    stats.rejected++;
    // A bound is policy; a failed write (disk full, I/O error) is the operator's business.
    if (result.failure) {
      log.error("store write failed", {
        from: it.from?.idText,
        to: recipient,
        reason: result.reason,
      });
    } else if (!it.from) {
      log.warn("undelivered message dropped", { to: recipient, reason: result.reason });
    }
    // A message from a closing connection: its sender, if still here, hears of a refusal.
    const sender = it.from ?? this.online.get(idKeyAt(it.plain, 1));
    if (sender) this.notice(sender, recipient, "rejected", result.reason);
  }

  #limits(): QueueLimits {
    const s = this.#ctx.settings;
    return {
      maxMessages: s.queue_max_messages,
      maxBytes: s.queue_max_bytes,
      maxAge: s.queue_max_age,
      maxPerSender: s.queue_max_per_sender,
    };
  }

  /**
   * Stores the live messages a closing session never delivered (each carries its
   * sender in the address field) — those no other session of its client received. A
   * sender still online hears of any refusal.
   */
  storeUndelivered(conn: Connection, messages: Uint8Array[]): void {
    const recipient = conn.idText;
    const toKey = conn.key;
    for (const plain of this.online.notReceivedElsewhere(conn, messages)) {
      // Already accepted for live delivery: the store's bounds do not apply again.
      this.#hold(recipient, { from: null, toKey, plain, bounded: false, resolve: () => {} });
    }
  }

  /** Resolves once no store write for `recipient` is queued any more (see `register`). */
  storeIdle(recipient: string): Promise<void> {
    return this.#serial.idle(recipient);
  }

  /** Resolves once every store write queued so far is done. */
  allStored(): Promise<void> {
    return this.#serial.idleAll();
  }

  /** Tells the sender what became of a message not delivered live; all but `queued` count as discarded. */
  notice(to: Connection, address: string, status: NoticeStatus, reason: string): void {
    if (status !== "queued") this.#ctx.stats.discarded++;
    to.reply(encodeControl(ControlType.NOTICE, { address, status, reason }));
  }
}
