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
    messages_discarded: ctx.stats.discarded,
    connections: ctx.stats.connections,
    auth_failures: ctx.stats.authFailures,
  };
}

/**
 * `withSessions`: add each client's session count (`sessions`) — for a connection that
 * sent SESSION; an untagged one gets the reply exactly as before sessions existed.
 */
export async function clientStatus(
  ctx: ServerContext,
  body: Uint8Array,
  withSessions = false,
): Promise<Record<string, unknown>> {
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
    return { clients: [], error: "bad request" };
  }
  const now = Math.floor(Date.now() / 1000);
  const clients = await Promise.all(
    (queries as string[]).map(async (query) => {
      const record = await ctx.store.findClient(query);
      if (!record || record.revokedAt !== null) return { query, error: "unknown" };
      const key = idKey(idToBytes(record.id));
      const online = ctx.router.online.receiving(key);
      return {
        id: record.id,
        name: record.name,
        online,
        last_seen: online ? now : (ctx.router.pendingLastSeen(record.id) ?? record.lastSeen),
        ...(withSessions ? { sessions: ctx.router.online.sessionsOf(key).length } : {}),
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
