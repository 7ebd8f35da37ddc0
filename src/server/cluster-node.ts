/**
 * The router's side of cluster mode (docs/CLUSTER.md § How the router uses the engine):
 * - every session is recorded in cluster presence under its session key (the tag in hex,
 *   or `untagged` for a client that sent no SESSION — one per client, as on one node);
 * - a direct message whose recipient has live sessions here and, as far as this node
 *   knows, none elsewhere is delivered here without Redis (cluster-local.ts); every
 *   other direct message and every room copy goes through ROUTE, which writes it to the
 *   mailboxes of the other nodes holding the recipient's live sessions, tells whether
 *   this node holds one (delivered here, not through Redis), or holds it within the
 *   bounds — atomically, with the registry check. All of a node's ROUTE calls go in
 *   order on one Redis connection and are answered in order, and a local delivery waits
 *   for the sender's messages still in Redis, so per-sender order holds;
 * - mailbox entries are handed to the local live sessions, or stored like a closing
 *   connection's undelivered messages when the session left meanwhile;
 * - stored messages are taken under a lease per client (`SET NX PX`, renewed while
 *   delivering), so two nodes never deliver the same one; a node that holds messages
 *   or ends a delivery tells the nodes with stored-taking sessions (`stored` command),
 *   and a session that could not take the lease tries again every 250 ms (cluster-taker.ts);
 * - a session tag replaced on another node: a `replace` command to that node, named by
 *   the presence write itself (only the later of two logins replaces the other).
 */
import { idKey, idToBytes } from "../ids.ts";
import { CONTROL, LIVE } from "../net/outbox.ts";
import type { QueueLimits } from "../store/store.ts";
import { copyBytes } from "../wire/bytes.ts";
import { C2CType, Format } from "../wire/message.ts";
import { C2C_ROOM, decodeRoomMessage } from "../wire/room.ts";
import type { Cluster, MailItem } from "./cluster.ts";
import { carryOut, sessionKey, toOtherNodes } from "./cluster-commands.ts";
import { LocalRoutes } from "./cluster-local.ts";
import { TakerLeases } from "./cluster-taker.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { storedArrived } from "./delivery.ts";
import { roomOf } from "./room-queue.ts";
import type { NoticeStatus } from "./router.ts";

export class ClusterNode {
  readonly cluster: Cluster;
  readonly #ctx: ServerContext;
  /** Each session's presence write, for its stored delivery to wait on. */
  readonly #registered = new WeakMap<Connection, Promise<void>>();
  /** The stored-message taker leases (cluster-taker.ts). */
  readonly #takers: TakerLeases;

  /** When a direct message may skip Redis (cluster-local.ts). */
  readonly #local: LocalRoutes;

  constructor(ctx: ServerContext, cluster: Cluster) {
    this.#ctx = ctx;
    this.cluster = cluster;
    this.#local = new LocalRoutes(cluster.nodeId);
    this.#takers = new TakerLeases(ctx, cluster);
    cluster.attach({
      onMail: (item) => this.#onMail(item),
      onLeaseRetaken: () => this.#reannounce(),
    });
  }

  // ---- presence -----------------------------------------------------------------------

  /**
   * A session opened here (`again`: announced again after this node's lease lapsed):
   * into presence; the same session key on another node is replaced.
   */
  added(conn: Connection, again = false): void {
    const key = sessionKey(conn);
    const flags = { live: conn.session.live, stored: conn.session.stored };
    const done = (async () => {
      try {
        // The same key on another node is replaced — named by the write itself, so of two
        // logins at the same instant only the later replaces the earlier.
        const replaced = await this.cluster.claimSession(conn.idText, key, flags);
        if (flags.live) await this.#tellPresence(conn.idText, true);
        this.#local.read(conn.idText, await this.cluster.sessionsOf(conn.idText));
        // Announced again (this node's lease had lapsed): a session with its key elsewhere
        // is the client's newer one — this one gives way.
        if (again && replaced.length > 0) conn.stop("replaced by a new connection");
        else
          for (const node of replaced)
            await this.cluster.command(node, { op: "replace", client: conn.idText, session: key });
      } catch (err) {
        this.#ctx.log.warn("cluster presence not recorded", {
          id: conn.idText,
          error: String(err),
        });
      }
    })();
    this.#registered.set(conn, done);
  }

  /** A session here ended: out of presence, unless another connection here holds its key. */
  removed(conn: Connection): void {
    const key = sessionKey(conn);
    const online = this.#ctx.router.online;
    if (online.sessionsOf(conn.key).length === 0) this.#local.forget(conn.idText);
    if (online.sessionsOf(conn.key).some((c) => sessionKey(c) === key)) return;
    const after = this.#registered.get(conn) ?? Promise.resolve();
    const live = online.liveReceivers(conn.key).length > 0;
    void after
      .then(() => this.cluster.setSession(conn.idText, key, null))
      .then(() => (conn.session.live && !live ? this.#tellPresence(conn.idText, false) : undefined))
      .catch((err) =>
        this.#ctx.log.warn("cluster presence not removed", {
          id: conn.idText,
          error: String(err),
        }),
      );
  }

  /** Tells the other nodes whether this node holds a live session of `client` now. */
  async #tellPresence(client: string, live: boolean): Promise<void> {
    await toOtherNodes(this.cluster, { op: "presence", client, node: this.cluster.nodeId, live });
  }

  /** Resolves once `conn`'s presence is written (its stored delivery starts after). */
  registered(conn: Connection): Promise<void> {
    return this.#registered.get(conn) ?? Promise.resolve();
  }

  /**
   * Sessions of a client in the whole cluster (`elsewhere`: on other nodes only), and
   * whether one receives messages.
   */
  async presence(
    client: string,
    elsewhere = false,
  ): Promise<{ online: boolean; sessions: number }> {
    // Sessions of a node whose lease lapsed are gone, even before it is reaped.
    const [sessions, nodes] = await Promise.all([
      this.cluster.sessionsOf(client),
      this.cluster.liveNodes(),
    ]);
    const all = sessions.filter(
      (s) => nodes.includes(s.node) && !(elsewhere && s.node === this.cluster.nodeId),
    );
    return { online: all.some((s) => s.live || s.stored), sessions: all.length };
  }

  /** Of presence changes to record, those not contradicted by sessions on other nodes. */
  async stillOffline<T extends { id: string; online: boolean }>(changes: T[]): Promise<T[]> {
    const keep: T[] = [];
    for (const c of changes) {
      if (c.online || !(await this.presence(c.id, true)).online) keep.push(c);
    }
    return keep;
  }

  async #reannounce(): Promise<void> {
    for (const conn of this.#ctx.router.online.values()) if (conn.routable) this.added(conn, true);
  }

  // ---- routing ------------------------------------------------------------------------

  /**
   * Routes a direct message (sender written in) or a room copy to `recipient`.
   * `from`: the sending connection (told with a NOTICE), null for a room copy whose
   * NOTICEs the fan-out decides. Resolves once decided.
   */
  route(
    from: Connection,
    recipient: string,
    toKey: string,
    plain: Uint8Array,
    limits: QueueLimits,
  ): Promise<void> | undefined {
    // Only here, and nothing of this sender still on its way: no need to ask Redis.
    if (
      !this.#local.busy(from) &&
      plain[0] !== C2C_ROOM &&
      this.#local.localOnly(recipient) &&
      this.#deliverHere(toKey, plain)
    ) {
      this.#local.noteLocal(recipient, plain); // copied to a session another node reports
      return;
    }
    this.#local.begin(from);
    const after = from.replyPoint(); // its NOTICE keeps its frame's place among the replies
    return this.#viaRedis(from, recipient, toKey, plain, limits, after).finally(() =>
      this.#local.end(from),
    );
  }

  async #viaRedis(
    from: Connection,
    recipient: string,
    toKey: string,
    plain: Uint8Array,
    limits: QueueLimits,
    after: Promise<void> | null,
  ): Promise<void> {
    const { stats, router } = this.#ctx;
    const notice = (address: string, status: NoticeStatus, why: string) =>
      router.notice(from, address, status, why, undefined, after);
    const room = roomOf(plain);
    const opts =
      room === null
        ? { checkRegistered: true }
        : { room, holdData: decodeRoomMessage(plain).data, checkRegistered: true };
    let result: Awaited<ReturnType<Cluster["route"]>>;
    try {
      result = await this.cluster.route(recipient, plain, limits, undefined, opts);
    } catch (err) {
      // Redis unreachable: live delivery on this node goes on; nothing can be held.
      if (this.#deliverHere(toKey, plain)) return;
      stats.rejected++;
      stats.storeFailures++;
      this.#ctx.log.error("store write failed", { to: recipient, reason: String(err) });
      const why = "storage failure";
      if (room === null) await notice(recipient, "rejected", why);
      else await notice(`#${room}`, "rejected", `member ${recipient}: ${why}`);
      return;
    }
    if (result.delivered) {
      stats.routed += result.remoteNodes;
      stats.deliveredDirect += result.remoteNodes;
      if (result.local && !this.#deliverHere(toKey, plain))
        router.storeLeftover(recipient, toKey, plain);
      return;
    }
    if (result.held) {
      stats.stored++;
      if (room === null)
        await notice(
          recipient,
          "queued",
          "recipient is offline; stored for delivery at its next login",
        );
      storedArrived(this.#ctx, toKey);
      return;
    }
    if (result.unknown) {
      if (room === null) await notice(recipient, "unknown", "no such client");
      return;
    }
    stats.rejected++;
    if (room === null) await notice(recipient, "rejected", result.reason);
    else await notice(`#${room}`, "rejected", `member ${recipient}: ${result.reason}`);
  }

  /** Posts `plain` to the local live sessions of `toKey`; false when there are none. */
  #deliverHere(toKey: string, plain: Uint8Array): boolean {
    const online = this.#ctx.router.online;
    const to = online.liveReceivers(toKey);
    if (to.length === 0) return false;
    online.noteRouted(toKey, plain);
    for (const conn of to) conn.post(plain, LIVE);
    this.#ctx.stats.routed += to.length;
    this.#ctx.stats.deliveredDirect += to.length;
    return true;
  }

  /**
   * A broadcast (type 1, sender written in): to the other nodes' mailboxes, then to the
   * live sessions here — after the BROADCAST call, so it keeps its place among the
   * sender's direct messages, which go through ROUTE on the same connection. Redis
   * unreachable: this node's sessions still get it.
   */
  async broadcast(from: Connection, plain: Uint8Array): Promise<void> {
    this.#local.begin(from);
    try {
      await this.cluster.broadcast(copyBytes(plain));
    } catch (err) {
      this.#ctx.log.warn("broadcast not sent to other nodes", { error: String(err) });
    } finally {
      this.#local.end(from);
    }
    from.charge(this.#postBroadcast(plain, from.key)); // one work unit per copy here
  }

  /** Posts a broadcast to the live sessions here but the sender's; returns how many. */
  #postBroadcast(plain: Uint8Array, senderKey: string): number {
    const { router, stats } = this.#ctx;
    let n = 0;
    for (const conn of router.online.values()) {
      if (conn.key !== senderKey && conn.routable && conn.session.live) {
        conn.post(plain, CONTROL);
        n++;
      }
    }
    stats.routed += n;
    stats.deliveredBroadcast += n;
    return n;
  }

  /** Messages were held for `client` here: the nodes with its stored-taking sessions start. */
  async tellTakers(client: string): Promise<void> {
    try {
      for (const node of new Set(
        (await this.cluster.sessionsOf(client))
          .filter((s) => s.stored && s.node !== this.cluster.nodeId)
          .map((s) => s.node),
      ))
        await this.cluster.command(node, { op: "stored", client });
    } catch (err) {
      this.#ctx.log.warn("cluster command not sent", { error: String(err) });
    }
  }

  /**
   * A room or membership changed here: the other nodes drop their room memory now (their
   * registry poll would, within 250 ms). A room message another node fans out in the
   * few milliseconds before the command arrives still goes by its older membership.
   */
  roomsChanged(): void {
    this.#toOthers({ op: "rooms" });
  }

  /**
   * A room event (ROOM control message, `body`) for the sessions of `ids` on the other
   * nodes (each node hands it to the receiving sessions it holds).
   */
  roomEvent(ids: string[], body: Uint8Array): void {
    this.#toOthers({ op: "room_event", ids, body: Buffer.from(body).toString("base64") });
  }

  /** Sends a command to the other nodes without waiting; a failure is logged. */
  #toOthers(command: Record<string, unknown>): void {
    toOtherNodes(this.cluster, command).catch((err) =>
      this.#ctx.log.warn("cluster command not sent", { error: String(err) }),
    );
  }

  #onMail(item: MailItem): void {
    const { router } = this.#ctx;
    if (item.kind === "direct") {
      const toKey = idKey(idToBytes(item.recipient));
      if (!this.#deliverHere(toKey, item.plain))
        router.storeLeftover(item.recipient, toKey, item.plain);
      return;
    }
    if (item.kind === "forward") {
      // Delivered on the other node already: only for the live sessions here, if any.
      this.#deliverHere(idKey(idToBytes(item.recipient)), item.plain);
      return;
    }
    if (item.kind === "broadcast") {
      const plain = item.plain;
      if (plain[0] !== ((Format.C2C << 4) | C2CType.BROADCAST) || plain.length < 17) return;
      this.#postBroadcast(plain, idKey(plain.subarray(1, 17)));
      return;
    }
    carryOut(this.#ctx, this.cluster, this.#local, item.command);
  }

  // ---- the stored-message taker lease (cluster-taker.ts) ------------------------------

  /**
   * Takes the cluster-wide taker lease of `conn`'s client, after its presence is written
   * (so a message held meanwhile is seen by its delivery).
   */
  async takeStored(conn: Connection): Promise<"taken" | "busy" | "failed"> {
    await this.registered(conn);
    return this.#takers.take(conn);
  }

  /** Gives the lease up; with `tell`, the other nodes' stored-taking sessions look. */
  async releaseStored(conn: Connection, tell: boolean): Promise<void> {
    await this.#takers.release(conn);
    if (tell) await this.tellTakers(conn.idText);
  }
}
