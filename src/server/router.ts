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
import { ClusterNode } from "./cluster-node.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { startDelivery, storedArrived } from "./delivery.ts";
import { RateLimiter } from "./limits.ts";
import { roomOf, toQueued } from "./room-queue.ts";
import { Rooms } from "./rooms.ts";
import { KeyedSerial } from "./serial.ts";
import { SessionRegistry, type Sessions } from "./sessions.ts";

export type NoticeStatus =
  | "queued"
  | "unknown"
  | "rejected"
  | "too_large"
  | "rate_limited"
  | "not_member"
  | "recipients";

const BROADCAST_KEY = idKey(BROADCAST_ID);
/** How long presence changes are gathered before they are written (see #notePresence). */
const PRESENCE_DELAY_MS = 50;
/** A message waiting to be written to the store (see #offline). */
interface Held {
  /** The sender's connection; null for a message a closing connection never delivered. */
  from: Connection | null;
  toKey: string;
  plain: Uint8Array;
  /**
   * A message accepted for live delivery that the recipient's connection never
   * delivered (it was stopped or ended): stored, not re-routed, and — like any other —
   * only within the store's bounds.
   */
  undelivered: boolean;
  /** `from.replyPoint()` when its frame was handled: its NOTICE is queued after that. */
  after: Promise<void> | null;
  resolve: () => void;
}

export class Router {
  /** Authenticated connections, several per client ID (sessions.ts). */
  readonly online: Sessions = new SessionRegistry();
  readonly #ctx: ServerContext;
  readonly #serial = new KeyedSerial();
  /** Messages for each recipient waiting for the next store write. */
  readonly #held = new Map<string, Held[]>();
  readonly broadcasts: RateLimiter;
  /** Rooms: membership and fan-out (rooms.ts). */
  readonly rooms: Rooms;
  /**
   * Held messages handed to a recipient's connection whose removal from the store
   * failed (a full or failing disk): recipient → last sequence number delivered.
   * Stored delivery skips them and retries the removal, so none arrives twice.
   */
  readonly deliveredThrough = new Map<string, number>();

  /** Cluster mode (cluster-node.ts): null on a single node. */
  readonly cluster: ClusterNode | null;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    this.cluster = ctx.cluster ? new ClusterNode(ctx, ctx.cluster) : null;
    this.broadcasts = new RateLimiter(ctx.settings.broadcast_rate, ctx.settings.broadcast_burst);
    this.rooms = new Rooms(ctx);
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
    this.cluster?.added(conn);
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
    const removed = this.online.remove(conn);
    if (removed) this.cluster?.removed(conn);
    if (removed && !this.online.receiving(conn.key)) {
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
    let changes = [...this.#presence.values()];
    this.#presence.clear();
    try {
      // Cluster mode: a client still online on another node is not recorded offline.
      if (this.cluster) changes = await this.cluster.stillOffline(changes);
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
      stats.receivedBroadcast++;
      plain.set(from.id, 1); // the server writes the true sender
      return this.#broadcast(from, plain);
    }
    stats.receivedDirect++;
    if (this.cluster) {
      // Every direct message goes through ROUTE, in order (cluster-node.ts).
      const recipient = idToText(plain.subarray(1, C2C_HEADER_BYTES));
      plain.set(from.id, 1);
      return this.cluster.route(from, recipient, toKey, plain, this.#limits());
    }
    const to = this.online.liveReceivers(toKey);
    if (to.length > 0) {
      plain.set(from.id, 1);
      this.online.noteRouted(toKey, plain);
      for (const conn of to) conn.post(plain, LIVE);
      stats.routed += to.length;
      stats.deliveredDirect += to.length;
      return;
    }
    const recipient = idToText(plain.subarray(1, C2C_HEADER_BYTES)); // before it is overwritten
    plain.set(from.id, 1);
    return this.#offline(from, recipient, toKey, plain);
  }

  #broadcast(from: Connection, plain: Uint8Array): Promise<void> | undefined {
    if (!this.broadcasts.take(from.key)) {
      this.notice(from, BROADCAST, "rate_limited", "too many broadcasts; slow down");
      return;
    }
    plain[0] = (Format.C2C << 4) | C2CType.BROADCAST;
    if (this.cluster) {
      // To the other nodes, then here, in order with the sender's direct messages.
      this.#ctx.stats.broadcasts++;
      return this.cluster.broadcast(from, plain);
    }
    let n = 0;
    for (const conn of this.online.values()) {
      if (conn.key !== from.key && conn.routable && conn.session.live) {
        conn.post(plain, CONTROL);
        n++;
      }
    }
    from.charge(n); // one work unit per copy (docs/PROTOCOL.md § Limits)
    this.#ctx.stats.broadcasts++;
    this.#ctx.stats.routed += n;
    this.#ctx.stats.deliveredBroadcast += n;
  }

  /**
   * A direct message to someone not online: held for a registered client. Messages for
   * one recipient are gathered and written together (one transaction: a commit costs
   * ~0.1 ms here, an insert ~7 µs); the promise settles once this one is decided and its
   * NOTICE queued. Per recipient the writes run in turn, in arrival order.
   */
  #offline(from: Connection, recipient: string, toKey: string, plain: Uint8Array): Promise<void> {
    return new Promise((resolve) =>
      this.#hold(recipient, {
        from,
        toKey,
        plain,
        undelivered: false,
        resolve,
        after: from.replyPoint(),
      }),
    );
  }

  /** Holds a room message (sender written in) for an offline member (fanout.ts). */
  holdFor(from: Connection, recipient: string, toKey: string, plain: Uint8Array): Promise<void> {
    return this.#offline(from, recipient, toKey, plain);
  }

  /**
   * Cluster mode: a room copy for a member (sender written in) through ROUTE — to its
   * sessions here and on other nodes, or held (fanout.ts).
   */
  routeCopy(from: Connection, recipient: string, toKey: string, plain: Uint8Array): Promise<void> {
    return (
      (this.cluster as ClusterNode).route(from, recipient, toKey, plain, this.#limits()) ??
      Promise.resolve()
    );
  }

  /**
   * A message accepted for live delivery whose recipient's session here left before it
   * was handed over (cluster mode: a mailbox entry, a ROUTE answer): stored like a
   * closing connection's undelivered messages, within the bounds.
   */
  storeLeftover(recipient: string, toKey: string, plain: Uint8Array): void {
    this.#hold(recipient, {
      from: null,
      toKey,
      plain,
      undelivered: true,
      resolve: () => {},
      after: null,
    });
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
    const { store, log } = this.#ctx;
    const drops = new Drops();
    try {
      // Re-checked in turn: a recipient that logged in meanwhile gets them live — but
      // not what a closing connection left: that goes to the store, so the delivery at
      // login (which waits for this write) keeps it ahead of newer live messages.
      const toKey = (items[0] as Held).toKey;
      const to = this.online.liveReceivers(toKey);
      if (to.length > 0 && items.every((it) => !it.undelivered)) {
        for (const it of items) {
          this.online.noteRouted(toKey, it.plain);
          for (const conn of to) conn.post(it.plain, LIVE);
        }
        this.#ctx.stats.routed += items.length * to.length;
        this.#ctx.stats.deliveredDirect += items.length * to.length;
        return;
      }
      const record = await store.getClient(recipient);
      if (!record || record.revokedAt !== null) {
        for (const it of items) {
          // (A room's member revoked meanwhile: the room's sender is not told.)
          if (it.from) {
            if (roomOf(it.plain) === null)
              this.notice(it.from, recipient, "unknown", "no such client", undefined, it.after);
          } else this.#dropUndelivered(recipient, it, "unknown", "no such client", drops);
        }
        return;
      }
      // The store's bounds hold for every message, whatever route it took here: one
      // accepted for live delivery whose recipient then went (stopped as a slow
      // consumer, say) is checked like any other, and refused if it does not fit.
      const at = Math.floor(Date.now() / 1000);
      const results = await store.enqueue(
        recipient,
        items.map((it) => toQueued(it.plain, at)),
        this.#limits(),
      );
      for (let k = 0; k < items.length; k++) {
        this.#settleHeld(recipient, items[k] as Held, results[k] as EnqueueResult, drops);
      }
    } catch (err) {
      log.error("store write failed", { to: recipient, reason: String(err) });
      for (const it of items)
        this.#settleHeld(
          recipient,
          it,
          { ok: false, reason: "storage failure", failure: true },
          drops,
        );
    } finally {
      drops.log(log, recipient);
      // Each settles once its NOTICE is queued, in its frame's place (Held.after).
      for (const it of items) it.after ? it.after.then(it.resolve, it.resolve) : it.resolve();
      storedArrived(this.#ctx, (items[0] as Held).toKey);
      if (this.cluster) void this.cluster.tellTakers(recipient);
    }
  }

  #settleHeld(recipient: string, it: Held, result: EnqueueResult, drops: Drops): void {
    const { stats, log } = this.#ctx;
    const room = roomOf(it.plain);
    if (result.ok) {
      stats.stored++;
      // A room message stored for an offline member: no NOTICE (one per member is noise).
      if (it.from && room === null)
        this.notice(
          it.from,
          recipient,
          "queued",
          "recipient is offline; stored for delivery at its next login",
          undefined,
          it.after,
        );
      return;
    }
    stats.rejected++;
    if (result.failure) stats.storeFailures++;
    // A bound is policy; a failed write (disk full, I/O error) is the operator's business.
    if (result.failure) {
      log.error("store write failed", {
        from: it.from?.idText,
        to: recipient,
        reason: result.reason,
      });
    }
    const why = `member ${recipient}: ${result.reason}`;
    if (it.from && room !== null)
      this.notice(it.from, `#${room}`, "rejected", why, undefined, it.after);
    else if (it.from)
      this.notice(it.from, recipient, "rejected", result.reason, undefined, it.after);
    else this.#dropUndelivered(recipient, it, "rejected", result.reason, drops);
  }

  /**
   * A message accepted for live delivery that was neither delivered nor stored: counted
   * (`messages_dropped`), its sender — if still connected — told with a NOTICE, and the
   * drop logged (one line per store write, see `Drops`).
   */
  #dropUndelivered(
    recipient: string,
    it: Held,
    status: NoticeStatus,
    reason: string,
    drops: Drops,
  ): void {
    this.#ctx.stats.dropped++;
    const sender = this.online.get(idKeyAt(it.plain, 1));
    const room = roomOf(it.plain);
    const why = `the recipient's connection ended before delivery, and ${reason}`;
    if (sender && room !== null)
      this.notice(sender, `#${room}`, status, `member ${recipient}: ${why}`);
    else if (sender) this.notice(sender, recipient, status, why);
    drops.add(reason, sender !== undefined);
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
   * sender in the address field) — those no other session of its client received —
   * within the store's bounds. What does not fit is dropped: counted, logged, and its
   * sender — if still online — gets NOTICE `rejected`.
   */
  storeUndelivered(conn: Connection, messages: Uint8Array[]): void {
    for (const plain of this.online.notReceivedElsewhere(conn, messages))
      this.storeLeftover(conn.idText, conn.key, plain);
  }

  /** Resolves once no store write for `recipient` is queued any more (see `register`). */
  storeIdle(recipient: string): Promise<void> {
    return this.#serial.idle(recipient);
  }

  /** Resolves once every store write queued so far is done. */
  allStored(): Promise<void> {
    return this.#serial.idleAll();
  }

  /**
   * Tells the sender what became of a message not delivered live; all but `queued` count
   * as discarded. `after`: the sender's `replyPoint()` when the message's frame was
   * at work, or undefined for the frame at work now — the NOTICE keeps that frame's
   * place among the replies (docs/PROTOCOL.md § Messages); the promise of the queuing
   * is returned when it waits.
   */
  notice(
    to: Connection,
    address: string,
    status: NoticeStatus,
    reason: string,
    extra?: Record<string, unknown>,
    after?: Promise<void> | null,
  ): Promise<void> | undefined {
    // `recipients` reports on a message that was delivered: not a discard.
    if (status !== "queued" && status !== "recipients") this.#ctx.stats.discarded++;
    this.#ctx.stats.notices[status] = (this.#ctx.stats.notices[status] ?? 0) + 1;
    return to.replyAfter(
      after,
      encodeControl(ControlType.NOTICE, { address, status, reason, ...extra }),
    );
  }
}

/** Undelivered messages dropped in one store write, gathered for one log line per reason. */
class Drops {
  readonly #byReason = new Map<string, { count: number; notified: number }>();

  add(reason: string, notified: boolean): void {
    const d = this.#byReason.get(reason) ?? { count: 0, notified: 0 };
    d.count++;
    if (notified) d.notified++;
    this.#byReason.set(reason, d);
  }

  log(log: ServerContext["log"], recipient: string): void {
    for (const [reason, d] of this.#byReason)
      log.warn("undelivered messages dropped", {
        to: recipient,
        count: d.count,
        senders_told: d.notified,
        reason,
      });
  }
}
