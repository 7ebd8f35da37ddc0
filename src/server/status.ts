/** SERVER_STATUS and CLIENT_STATUS replies (docs/PROTOCOL.md § Messages). */
import { fingerprint } from "../crypto/primitives.ts";
import { idKey, idToBytes } from "../ids.ts";
import { VERSION } from "../version.ts";
import {
  CONTROL_HEADER_BYTES,
  MAX_MESSAGE_DATA,
  MAX_STATUS_QUERY,
  PROTOCOL,
} from "../wire/constants.ts";
import { decodeJson } from "../wire/message.ts";
import type { ServerContext } from "./context.ts";

export async function serverStatus(ctx: ServerContext): Promise<Record<string, unknown>> {
  const [registered, queued] = await Promise.all([
    ctx.store.countClients(),
    ctx.store.pendingCount(),
  ]);
  const now = Date.now();
  return {
    protocol: PROTOCOL,
    version: VERSION,
    server_key: fingerprint(ctx.key.publicKey.spki),
    time: Math.floor(now / 1000),
    uptime: Math.floor((now - ctx.startedAt) / 1000),
    clients_online: ctx.router.online.receivingClients(),
    clients_registered: registered,
    messages_routed: ctx.stats.routed,
    messages_broadcast: ctx.stats.broadcasts,
    messages_queued: queued,
    messages_stored: ctx.stats.stored,
    messages_rejected: ctx.stats.rejected,
    messages_dropped: ctx.stats.dropped,
    messages_discarded: ctx.stats.discarded,
    connections: ctx.stats.connections,
    auth_failures: ctx.stats.authFailures,
    ...(ctx.cluster ? await clusterFigures(ctx) : {}),
  };
}

/**
 * Cluster mode: the cluster's figures next to this node's (`clients_online` stays this
 * node's): live nodes and clients with a receiving session on any of them.
 */
async function clusterFigures(ctx: ServerContext): Promise<Record<string, unknown>> {
  const cluster = ctx.cluster;
  if (!cluster) return {};
  try {
    const [nodes, online] = await Promise.all([cluster.liveNodes(), cluster.clientsOnline()]);
    return {
      cluster_node: cluster.nodeId,
      cluster_nodes: nodes.length,
      cluster_clients_online: online,
    };
  } catch {
    return { cluster_node: cluster.nodeId };
  }
}

/** What a SERVER_STATUS costs in work units (two counts over the store). */
export const SERVER_STATUS_COST = 64;

/** The lookups a CLIENT_STATUS body asks for; null when it is malformed (§ CLIENT_STATUS). */
export function statusQueries(body: Uint8Array): string[] | null {
  let queries: unknown;
  try {
    queries = decodeJson(body).clients;
  } catch {
    queries = undefined;
  }
  if (
    !Array.isArray(queries) ||
    queries.length > MAX_STATUS_QUERY ||
    !queries.every((q) => typeof q === "string")
  ) {
    return null;
  }
  return queries as string[];
}

/**
 * The CLIENT_STATUS reply to `queries` (from `statusQueries`; null: malformed).
 * `withSessions`: add each client's session count (`sessions`) — for a connection that
 * sent SESSION; an untagged one gets the reply exactly as before sessions existed.
 */
export async function clientStatus(
  ctx: ServerContext,
  queries: string[] | null,
  withSessions = false,
): Promise<Record<string, unknown>> {
  if (queries === null) return { clients: [], error: "bad request" };
  const now = Math.floor(Date.now() / 1000);
  const clients = await Promise.all(
    queries.map(async (query) => {
      const record = await ctx.store.findClient(query);
      if (!record || record.revokedAt !== null) return { query, error: "unknown" };
      const key = idKey(idToBytes(record.id));
      let online = ctx.router.online.receiving(key);
      let sessions = ctx.router.online.sessionsOf(key).length;
      if (ctx.router.cluster) {
        // Cluster mode: presence across every node (a node's own sessions included).
        try {
          const p = await ctx.router.cluster.presence(record.id);
          online = p.online;
          sessions = p.sessions;
        } catch {
          // Redis unreachable: this node's view.
        }
      }
      return {
        id: record.id,
        name: record.name,
        online,
        last_seen: online ? now : (ctx.router.pendingLastSeen(record.id) ?? record.lastSeen),
        ...(withSessions ? { sessions } : {}),
      };
    }),
  );
  // Unknown entries echo their query: 256 long ones would not fit one message.
  const reply = { clients };
  if (Buffer.byteLength(JSON.stringify(reply)) > MAX_MESSAGE_DATA - CONTROL_HEADER_BYTES) {
    return { clients: [], error: "reply too large" };
  }
  return reply;
}
