/**
 * The client handler's message dispatch (seed spec "Scoping"; docs/PROTOCOL.md
 * § Messages): what an authenticated client may send on its socket, and the answers.
 * C2C and C2S only; S2S, server-to-client types and reserved values are discarded and
 * counted, and the connection stays open.
 */
import type { WireError } from "../errors.ts";
import {
  C2CType,
  ControlType,
  decodeMessage,
  decodeText,
  encodeControl,
  Format,
} from "../wire/message.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { clientStatus, serverStatus } from "./status.ts";

export function handleMessage(
  ctx: ServerContext,
  conn: Connection,
  plain: Uint8Array,
): Promise<void> | undefined {
  let msg: ReturnType<typeof decodeMessage>;
  try {
    msg = decodeMessage(plain);
  } catch (err) {
    // Reserved: discarded. A defined type too short for its header: malformed.
    if ((err as WireError).code === "MESSAGE_RESERVED") return discard(ctx, conn, "reserved");
    conn.protocolError((err as WireError).message);
    return;
  }
  if (msg.format === Format.C2C) {
    if (msg.type === C2CType.STORED) return discard(ctx, conn, "stored C2C from a client");
    return ctx.router.route(conn, msg, plain);
  }
  if (msg.format !== Format.CONTROL) return discard(ctx, conn, "S2S on a socket");
  switch (msg.type) {
    case ControlType.HEARTBEAT:
      conn.reply(encodeControl(ControlType.HEARTBEAT));
      return;
    case ControlType.SERVER_STATUS:
      return serverStatus(ctx).then((body) =>
        conn.reply(encodeControl(ControlType.SERVER_STATUS, body)),
      );
    case ControlType.CLIENT_STATUS:
      return clientStatus(ctx, msg.body).then((body) =>
        conn.reply(encodeControl(ControlType.CLIENT_STATUS, body)),
      );
    case ControlType.STOP: {
      let reason = "";
      try {
        reason = decodeText(msg.body).slice(0, 200);
      } catch {
        // an unreadable reason is still a STOP
      }
      conn.peerStopped(reason);
      return;
    }
    default:
      return discard(ctx, conn, `control type ${msg.type} from a client`);
  }
}

function discard(ctx: ServerContext, conn: Connection, why: string): undefined {
  ctx.stats.discarded++;
  ctx.log.debug("discarded", { id: conn.idText, why });
  return undefined;
}
