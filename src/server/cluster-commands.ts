/**
 * Commands between the nodes of a cluster (docs/CLUSTER.md): small JSON objects written
 * to another node's mailbox — `presence` (a node holds live sessions of a client, or no
 * longer), `replace` (a session key logged in elsewhere), `stored` (messages were held
 * for a client), `rooms` (room memory is stale), `room_event` (a ROOM event for the
 * sessions of some clients) — sent by {@link toOtherNodes}, carried out by
 * {@link carryOut}.
 */
import { idKey, idToBytes } from "../ids.ts";
import type { Cluster } from "./cluster.ts";
import type { LocalRoutes } from "./cluster-local.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { storedArrived } from "./delivery.ts";

/** A session's key in cluster presence. */
export function sessionKey(conn: Connection): string {
  return conn.session.tag ?? "untagged";
}

/** Sends `command` to every live node but this one, in turn. */
export async function toOtherNodes(
  cluster: Cluster,
  command: Record<string, unknown>,
): Promise<void> {
  for (const node of await cluster.liveNodes())
    if (node !== cluster.nodeId) await cluster.command(node, command);
}

/** Carries out a command another node sent to this one; a malformed one is ignored. */
export function carryOut(
  ctx: ServerContext,
  cluster: Cluster,
  local: LocalRoutes,
  c: Record<string, unknown>,
): void {
  const { router } = ctx;
  if (c.op === "presence" && typeof c.client === "string" && typeof c.node === "string") {
    local.told(c.client, c.node, c.live === true);
    // What was delivered here alone while that session was on its way to being known
    // goes to it too, ahead of anything routed to it from now on.
    const recent = c.live === true ? local.takeRecent(c.client) : [];
    if (recent.length > 0)
      cluster
        .forward(c.node, c.client, recent)
        .catch((err) => ctx.log.warn("copies not forwarded", { error: String(err) }));
    return;
  }
  if (c.op === "rooms") {
    router.rooms.invalidate();
    return;
  }
  if (c.op === "room_event" && Array.isArray(c.ids) && typeof c.body === "string") {
    const body = new Uint8Array(Buffer.from(c.body, "base64"));
    for (const id of c.ids) {
      const key = typeof id === "string" ? keyOf(id) : null;
      if (key === null) continue;
      for (const conn of router.online.sessionsOf(key))
        if (conn.routable && conn.session.live) conn.reply(body);
    }
    return;
  }
  const key = typeof c.client === "string" ? keyOf(c.client) : null;
  if (key === null) return;
  if (c.op === "stored") storedArrived(ctx, key);
  else if (c.op === "replace") {
    for (const conn of [...router.online.sessionsOf(key)])
      if (sessionKey(conn) === c.session) conn.stop("replaced by a new connection");
  }
}

/** A client ID's routing key, or null when `id` is not an ID. */
function keyOf(id: string): string | null {
  try {
    return idKey(idToBytes(id));
  } catch {
    return null;
  }
}
