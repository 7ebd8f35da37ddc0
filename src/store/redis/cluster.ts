/**
 * The cluster engine: what backbone nodes sharing one Redis tell each other
 * (docs/CLUSTER.md). Each node
 * - holds a lease (`{p}node:{id}`, refreshed every third of its length); a node whose
 *   lease expires is reaped by any other: its sessions leave presence and the direct
 *   messages still in its mailbox are held for their recipients;
 * - records its clients' sessions in presence (`{p}sess:{client}`);
 * - reads its own mailbox stream (`{p}mail:{id}`, mailbox.ts), losing nothing to a
 *   Redis restart or a dropped connection;
 * - routes a direct message in one script (ROUTE) that either writes it to the mailboxes
 *   of the nodes holding the recipient's live sessions or holds it in the inbox.
 */
import IORedis from "ioredis";
import { StoreError } from "../../errors.ts";
import { idToText } from "../../ids.ts";
import type { QueueLimits } from "../store.ts";
import {
  BROADCAST,
  LEASE,
  REAP,
  ROUTE,
  SESSION,
  SESSION_CLAIM,
  TAKER_RELEASE,
  TAKER_RENEW,
} from "./cluster-scripts.ts";
import { runScript, runScriptInOrder, type Script, script } from "./lua.ts";
import { MailboxReader, type MailItem } from "./mailbox.ts";
import { enqueueResult } from "./records.ts";

export type { MailItem } from "./mailbox.ts";

/** A node's lease (ms): a crashed node's clients show offline within this. */
export const DEFAULT_LEASE_MS = 10_000;
/** How long one ordinary Redis call may take (ms). */
const COMMAND_TIMEOUT_MS = 2_000;

export interface ClusterOptions {
  url: string;
  nodeId: string;
  /** Shown to other nodes (host:port, pid). */
  info?: Record<string, unknown>;
  prefix?: string;
  leaseMs?: number;
  /** Called for each mailbox entry, in order. */
  onMail(item: MailItem): void;
  /** The lease had expired (Redis was away longer than it): re-announce local sessions. */
  onLeaseRetaken?(): void | Promise<void>;
  /** A Redis call failed in the background (lease refresh, mailbox read, reaping). */
  onError?(what: string, err: unknown): void;
}

/** What became of a routed direct message. */
export type RouteResult =
  | { delivered: true; local: boolean; remoteNodes: number }
  | { delivered: false; held: true }
  | { delivered: false; held: false; reason: string; unknown?: true };

/** Extras of a routed message: a room message's room and data, the registry check. */
export interface RouteOptions {
  /** The room of a room message (type 3): held with it. */
  room?: string;
  /** What to hold: the room message's data without its room header. */
  holdData?: Uint8Array;
  /** Refuse (`unknown`) a recipient not registered or revoked, in the same step. */
  checkRegistered?: boolean;
}

const S = {
  route: script(ROUTE),
  broadcast: script(BROADCAST),
  session: script(SESSION),
  sessionClaim: script(SESSION_CLAIM),
  lease: script(LEASE),
  reap: script(REAP),
  takerRelease: script(TAKER_RELEASE),
  takerRenew: script(TAKER_RENEW),
};

export class RedisCluster {
  readonly nodeId: string;
  readonly #opts: ClusterOptions;
  readonly #p: string;
  readonly #leaseMs: number;
  readonly #r: IORedis;
  /** The mailbox reader's own connection: a blocking XREAD holds its connection. */
  readonly #reader: IORedis;
  readonly #mailbox: MailboxReader;
  #closed = false;
  #timers: ReturnType<typeof setInterval>[] = [];

  private constructor(opts: ClusterOptions) {
    this.#opts = opts;
    this.nodeId = opts.nodeId;
    this.#p = opts.prefix ?? "bb:";
    this.#leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    const common = {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    };
    this.#r = new IORedis(opts.url, { ...common, commandTimeout: COMMAND_TIMEOUT_MS });
    this.#reader = new IORedis(opts.url, common);
    this.#r.on("error", () => {});
    this.#reader.on("error", () => {});
    this.#mailbox = new MailboxReader(
      this.#reader,
      this.#r,
      `${this.#p}mail:${this.nodeId}`,
      (item: MailItem) => opts.onMail(item),
      (what, err) => this.#fail(what, err),
    );
  }

  /**
   * Joins the cluster: takes the lease, starts reading the mailbox, refreshing the lease
   * and reaping dead nodes. Throws `StoreError` `STORE_OPEN` when Redis does not answer.
   */
  static async join(opts: ClusterOptions): Promise<RedisCluster> {
    const c = new RedisCluster(opts);
    try {
      await Promise.all([c.#r.connect(), c.#reader.connect()]);
      await c.#lease();
    } catch (cause) {
      c.#r.disconnect();
      c.#reader.disconnect();
      throw new StoreError(
        "STORE_OPEN",
        `cannot join the cluster at ${opts.url}: ${String(cause)}`,
        {
          cause,
        },
      );
    }
    c.#mailbox.start();
    c.#timers.push(
      setInterval(() => void c.#lease().catch((e) => c.#fail("lease refresh", e)), c.#leaseMs / 3),
      setInterval(() => void c.reapDead().catch((e) => c.#fail("reaping", e)), c.#leaseMs / 2),
    );
    return c;
  }

  #fail(what: string, err: unknown): void {
    if (!this.#closed) this.#opts.onError?.(what, err);
  }

  #eval(s: Script, args: (string | number | Uint8Array)[], keys: string[] = []) {
    return runScript(this.#r, s, keys, args);
  }

  async #lease(): Promise<void> {
    const info = JSON.stringify({ ...this.#opts.info, since: Date.now() });
    const held = await this.#eval(
      S.lease,
      [this.nodeId, info, this.#leaseMs],
      [`${this.#p}node:${this.nodeId}`, `${this.#p}nodes`],
    );
    if (held === 0 && this.#mailbox.started) await this.#opts.onLeaseRetaken?.();
  }

  /** Nodes whose lease is alive, this one included. */
  async liveNodes(): Promise<string[]> {
    const all = await this.#r.smembers(`${this.#p}nodes`);
    const alive = await Promise.all(all.map((n) => this.#r.exists(`${this.#p}node:${n}`)));
    return all.filter((_, i) => alive[i] === 1);
  }

  /** Reaps every node whose lease expired; returns how many. */
  async reapDead(): Promise<number> {
    let n = 0;
    for (const node of await this.#r.smembers(`${this.#p}nodes`)) {
      if (node === this.nodeId) continue;
      const [removed] = (await this.#eval(S.reap, [this.#p, node])) as number[];
      if ((removed ?? -1) >= 0) n++;
    }
    return n;
  }

  /**
   * Records a session of `client` on this node (`flags.live`: receives live messages;
   * `flags.stored`: takes stored ones), or removes it (`flags` null). Returns the
   * client's sessions in the whole cluster afterwards.
   */
  async setSession(
    client: string,
    session: string,
    flags: { live: boolean; stored: boolean } | null,
  ): Promise<number> {
    const value = flags ? `${flags.live ? 1 : 0} ${flags.stored ? 1 : 0}` : "";
    return Number(await this.#eval(S.session, [this.#p, this.nodeId, client, session, value]));
  }

  /**
   * Records a new session of `client` on this node and returns the other nodes that
   * already hold a session with the same key (the ones it replaces), in one step.
   */
  async claimSession(
    client: string,
    session: string,
    flags: { live: boolean; stored: boolean },
  ): Promise<string[]> {
    const value = `${flags.live ? 1 : 0} ${flags.stored ? 1 : 0}`;
    const res = await this.#eval(S.sessionClaim, [this.#p, this.nodeId, client, session, value]);
    return (res as string[]).map(String);
  }

  /** A client's sessions in the whole cluster: node, session, flags. */
  async sessionsOf(
    client: string,
  ): Promise<{ node: string; session: string; live: boolean; stored: boolean }[]> {
    const h = await this.#r.hgetall(`${this.#p}sess:${client}`);
    return Object.entries(h).map(([field, v]) => {
      const [node = "", session = ""] = field.split("/");
      return { node, session, live: v[0] === "1", stored: v[2] === "1" };
    });
  }

  /**
   * Routes a direct C2C (`plain`: the message as delivered, with its sender in the address
   * field) to `recipient`: to the mailboxes of the other nodes holding its live sessions
   * (`local` says whether this node holds one too, for the caller to deliver), else held
   * in its inbox within `limits`, atomically.
   */
  async route(
    recipient: string,
    plain: Uint8Array,
    limits: QueueLimits,
    at = Math.floor(Date.now() / 1000),
    opts: RouteOptions = {},
  ): Promise<RouteResult> {
    const sender = idToText(plain.subarray(1, 17));
    const [local, remote, held] = (await runScriptInOrder(
      this.#r,
      S.route,
      [],
      [
        this.#p,
        this.nodeId,
        recipient,
        sender,
        at,
        plain,
        limits.maxMessages,
        limits.maxBytes,
        limits.maxPerSender,
        opts.room ?? "",
        opts.holdData ?? "",
        opts.checkRegistered ? "1" : "0",
      ],
    )) as number[];
    if (held === 0) return { delivered: true, local: local === 1, remoteNodes: remote ?? 0 };
    if (held === 1) return { delivered: false, held: true };
    if (held === 5)
      return { delivered: false, held: false, reason: "no such client", unknown: true };
    // ROUTE's codes 2…4 are ENQUEUE's 1…3 (the same bounds, the same words).
    const r = enqueueResult((held ?? 4) - 1, limits);
    return { delivered: false, held: false, reason: r.ok ? "" : r.reason };
  }

  /** A broadcast to every other live node; returns how many nodes it went to. */
  async broadcast(plain: Uint8Array): Promise<number> {
    return Number(await runScriptInOrder(this.#r, S.broadcast, [], [this.#p, this.nodeId, plain]));
  }

  /**
   * Copies of messages this node delivered to its own sessions of `recipient` for
   * `node`'s sessions of it (kind `f`: delivered there if it has a live one, else
   * dropped; never held by REAP), in order with this node's other mail to it.
   */
  async forward(node: string, recipient: string, plains: Uint8Array[]): Promise<void> {
    const pipe = this.#r.pipeline();
    for (const p of plains)
      pipe.xadd(`${this.#p}mail:${node}`, "*", "k", "f", "r", recipient, "p", Buffer.from(p));
    await pipe.exec();
  }

  /** A command for one node (stop a session, revoke a client …), in order with its mail. */
  async command(node: string, command: Record<string, unknown>): Promise<void> {
    await this.#r.xadd(
      `${this.#p}mail:${node}`,
      "*",
      "k",
      "c",
      "r",
      "",
      "p",
      JSON.stringify(command),
    );
  }

  /**
   * Takes the lease on `client`'s stored messages for `ms` (`SET NX PX`): one taker in
   * the whole cluster at a time. `token` names the holder. Returns whether it was taken.
   */
  async takeStored(client: string, token: string, ms: number): Promise<boolean> {
    return (await this.#r.set(`${this.#p}taker:${client}`, token, "PX", ms, "NX")) === "OK";
  }

  /** Extends the taker lease while `token` holds it; false when it is lost. */
  async renewStored(client: string, token: string, ms: number): Promise<boolean> {
    return Number(await this.#eval(S.takerRenew, [token, ms], [`${this.#p}taker:${client}`])) === 1;
  }

  /** Releases the taker lease if `token` holds it. */
  async releaseStored(client: string, token: string): Promise<void> {
    await this.#eval(S.takerRelease, [token], [`${this.#p}taker:${client}`]);
  }

  /**
   * Clients with a session that receives messages (live or stored) on any live node:
   * the union of the live nodes' client sets, each checked in presence.
   */
  async clientsOnline(): Promise<number> {
    const nodes = await this.liveNodes();
    if (nodes.length === 0) return 0;
    const clients = await this.#r.sunion(...nodes.map((n) => `${this.#p}node:${n}:clients`));
    if (clients.length === 0) return 0;
    const pipe = this.#r.pipeline();
    for (const c of clients) pipe.hgetall(`${this.#p}sess:${c}`);
    const res = (await pipe.exec()) ?? [];
    const live = new Set(nodes);
    let n = 0;
    for (const [, h] of res) {
      const fields = Object.entries((h ?? {}) as Record<string, string>);
      if (
        fields.some(([f, v]) => live.has(f.split("/")[0] ?? "") && (v[0] === "1" || v[2] === "1"))
      )
        n++;
    }
    return n;
  }

  /** Leaves the cluster: stops reading, drops the lease and this node's presence. */
  async leave(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#mailbox.stop();
    try {
      await this.#r.del(`${this.#p}node:${this.nodeId}`);
      await this.#eval(S.reap, [this.#p, this.nodeId]);
    } catch (e) {
      this.#opts.onError?.("leaving", e);
    }
    this.#r.disconnect();
  }

  /** Stops at once without telling Redis (what a crash looks like to the others). */
  abandon(): void {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#mailbox.abandon();
    this.#r.disconnect();
  }
}
