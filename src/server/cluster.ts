/**
 * What the server needs of a cluster (docs/CLUSTER.md § How the router uses the engine):
 * presence of sessions across nodes, routing a message to the nodes that hold the
 * recipient's live sessions (or holding it, in one atomic step), broadcasts, commands
 * to one node, and the stored-message taker lease. The Redis engine
 * (src/store/redis/cluster.ts) implements it; a server without one is a single node,
 * exactly as before.
 */
import type { Logger } from "../log.ts";
import {
  type MailItem,
  RedisCluster,
  type RouteOptions,
  type RouteResult,
} from "../store/redis/cluster.ts";
import type { QueueLimits } from "../store/store.ts";

export type { MailItem, RouteOptions, RouteResult };

/** What the server does with its mailbox and lease events. */
export interface ClusterHandlers {
  onMail(item: MailItem): void;
  onLeaseRetaken(): void | Promise<void>;
}

/** One session of a client somewhere in the cluster. */
export interface ClusterSession {
  node: string;
  session: string;
  live: boolean;
  stored: boolean;
}

export interface Cluster {
  readonly nodeId: string;
  /** Starts handing mailbox entries to `handlers` (those that came before are kept). */
  attach(handlers: ClusterHandlers): void;
  /** Records (or, `flags` null, removes) a session of `client` on this node. */
  setSession(
    client: string,
    session: string,
    flags: { live: boolean; stored: boolean } | null,
  ): Promise<number>;
  /** Records a new session here; returns the other nodes holding one with its key. */
  claimSession(
    client: string,
    session: string,
    flags: { live: boolean; stored: boolean },
  ): Promise<string[]>;
  sessionsOf(client: string): Promise<ClusterSession[]>;
  route(
    recipient: string,
    plain: Uint8Array,
    limits: QueueLimits,
    at?: number,
    opts?: RouteOptions,
  ): Promise<RouteResult>;
  /** A broadcast to every other live node; returns how many. */
  broadcast(plain: Uint8Array): Promise<number>;
  command(node: string, command: Record<string, unknown>): Promise<void>;
  /** Copies for `node`'s sessions of `recipient` of messages delivered here (kind `f`). */
  forward(node: string, recipient: string, plains: Uint8Array[]): Promise<void>;
  liveNodes(): Promise<string[]>;
  clientsOnline(): Promise<number>;
  takeStored(client: string, token: string, ms: number): Promise<boolean>;
  renewStored(client: string, token: string, ms: number): Promise<boolean>;
  releaseStored(client: string, token: string): Promise<void>;
  /** Leaves: presence of this node's sessions gone, unread mail held for its recipients. */
  leave(): Promise<void>;
}

/**
 * Joins the cluster on the Redis at `url` as a new node (a random ID). Throws
 * `StoreError` `STORE_OPEN` when Redis does not answer.
 */
export async function joinRedisCluster(
  url: string,
  info: Record<string, unknown>,
  log: Logger,
): Promise<Cluster> {
  let handlers: ClusterHandlers | null = null;
  const early: MailItem[] = [];
  const engine = await RedisCluster.join({
    url,
    nodeId: crypto.randomUUID(),
    info,
    onMail(item) {
      if (handlers) handlers.onMail(item);
      else early.push(item);
    },
    onLeaseRetaken: () => handlers?.onLeaseRetaken(),
    onError(what, err) {
      log.warn("cluster", { what, error: String(err) });
    },
  });
  return {
    nodeId: engine.nodeId,
    attach(h) {
      handlers = h;
      for (const item of early.splice(0)) h.onMail(item);
    },
    setSession: (c, s, f) => engine.setSession(c, s, f),
    claimSession: (c, s, f) => engine.claimSession(c, s, f),
    sessionsOf: (c) => engine.sessionsOf(c),
    route: (r, p, l, at, o) => engine.route(r, p, l, at, o),
    broadcast: (p) => engine.broadcast(p),
    command: (n, c) => engine.command(n, c),
    forward: (n, r, p) => engine.forward(n, r, p),
    liveNodes: () => engine.liveNodes(),
    clientsOnline: () => engine.clientsOnline(),
    takeStored: (c, t, ms) => engine.takeStored(c, t, ms),
    renewStored: (c, t, ms) => engine.renewStored(c, t, ms),
    releaseStored: (c, t) => engine.releaseStored(c, t),
    leave: () => engine.leave(),
  };
}
