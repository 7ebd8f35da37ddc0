/**
 * The client handler's message dispatch (seed spec "Scoping"; docs/PROTOCOL.md
 * § Messages): what an authenticated client may send on its socket, and the answers.
 * C2C and C2S only; S2S, server-to-client types and reserved values are discarded and
 * counted, and the connection stays open.
 */
import type { WireError } from "../errors.ts";
import { BATCH_BYTE, BATCH_OFFER, batchKind } from "../wire/batch.ts";
import { C2C_HEADER_BYTES, STORED_HEADER_BYTES } from "../wire/constants.ts";
import {
  ControlType,
  decodeAckBody,
  decodeMessage,
  decodeText,
  encodeControl,
  Format,
} from "../wire/message.ts";
import { C2C_ROOM, C2C_ROOM_STORED } from "../wire/room.ts";
import { C2C_ROOM_E2E } from "../wire/room-e2e.ts";
import { SESSION_BYTE } from "../wire/session.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { handleKeys } from "./keys.ts";
import { clientStatus, SERVER_STATUS_COST, serverStatus, statusQueries } from "./status.ts";

export function handleMessage(
  ctx: ServerContext,
  conn: Connection,
  plain: Uint8Array,
): Promise<void> | undefined {
  // Fast path for the bulk of the traffic: direct and broadcast C2C.
  const b0 = plain[0];
  if ((b0 === 0x00 || b0 === 0x01) && plain.length >= C2C_HEADER_BYTES)
    return ctx.router.route(conn, plain);
  // Room messages (docs/PROTOCOL.md § Rooms); type 4 is server → client only.
  if (b0 === C2C_ROOM && plain.length >= C2C_HEADER_BYTES)
    return ctx.router.rooms.route(conn, plain);
  // End-to-end encrypted room messages: a ciphertext per member (room-e2e.ts).
  if (b0 === C2C_ROOM_E2E) return ctx.router.rooms.routeE2E(conn, plain);
  if (b0 === C2C_ROOM_STORED && plain.length >= STORED_HEADER_BYTES)
    return discard(ctx, conn, "stored room message from a client");
  // SESSION counts only as the first frame after the response (session-login.ts).
  if (b0 === SESSION_BYTE) return discard(ctx, conn, "SESSION after the first frame");
  // BATCH (docs/PROTOCOL.md § BATCH): an offer is answered in order, like a request.
  // Records reach here only from a client that has not offered (input.ts opens the
  // others); they and anything else of type 0x19 are discarded, whatever the length.
  if (b0 === BATCH_BYTE) {
    if (batchKind(plain) !== BATCH_OFFER) return discard(ctx, conn, "BATCH without an offer");
    conn.batchIn = true;
    return conn.inOrder(() => conn.acceptBatching());
  }
  let msg: ReturnType<typeof decodeMessage>;
  try {
    msg = decodeMessage(plain);
  } catch (err) {
    // Reserved: discarded. A defined type too short for its header: malformed.
    if ((err as WireError).code === "MESSAGE_RESERVED") return discard(ctx, conn, "reserved");
    conn.protocolError((err as WireError).message);
    return;
  }
  // Any other C2C that decodes is type 2 (stored), which only a server sends.
  if (msg.format === Format.C2C) return discard(ctx, conn, "stored C2C from a client");
  if (msg.format !== Format.CONTROL) return discard(ctx, conn, "S2S on a socket");
  switch (msg.type) {
    // Replies follow whatever the connection's earlier frames still have in flight.
    case ControlType.HEARTBEAT:
      return conn.inOrder(() => conn.reply(encodeControl(ControlType.HEARTBEAT)));
    // Requests with a cost on the server are charged to the client's work budget.
    case ControlType.SERVER_STATUS:
      conn.charge(SERVER_STATUS_COST);
      return conn.inOrder(() =>
        serverStatus(ctx).then((body) =>
          conn.reply(encodeControl(ControlType.SERVER_STATUS, body)),
        ),
      );
    case ControlType.CLIENT_STATUS: {
      const queries = statusQueries(msg.body);
      conn.charge(Math.max(1, queries?.length ?? 0));
      return conn.inOrder(() =>
        clientStatus(ctx, queries, conn.session.tag !== null).then((reply) =>
          conn.reply(encodeControl(ControlType.CLIENT_STATUS, reply)),
        ),
      );
    }
    case ControlType.ROOM:
      return ctx.router.rooms.request(conn, msg.body);
    case ControlType.KEYS: {
      const body = msg.body;
      return conn.inOrder(() => handleKeys(ctx, conn, body));
    }
    case ControlType.ACK: {
      const count = decodeAckBody(msg.body);
      if (count === null) return discard(ctx, conn, "ACK body is not 4 bytes");
      conn.acks.onAck(count);
      return;
    }
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
