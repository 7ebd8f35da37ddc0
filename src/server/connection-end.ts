/**
 * How a server connection ends (docs/PROTOCOL.md § STOP): a login refused after the
 * handshake, an abort before the session, STOP after what was already sealed, the
 * server's shutdown (handle and answer what was received, then STOP, reading on), the
 * client's own STOP and a protocol error. The Connection (connection.ts) calls these;
 * they set its `phase`, `stopped` and `draining`.
 */
import { CONTROL } from "../net/outbox.ts";
import { ControlType, encodeControl } from "../wire/message.ts";
import type { Connection } from "./connection.ts";

/** How long a stopping connection may take to flush its STOP before it is cut. */
export const STOP_GRACE_MS = 2000;

/** Closes the socket if the connection has not closed within STOP_GRACE_MS of its STOP. */
export function terminateLater(conn: Connection): void {
  setTimeout(() => conn.phase !== "closed" && conn.socket.terminate(), STOP_GRACE_MS).unref();
}

/**
 * Refuses an authenticated login with STOP `reason` as its first frame (s2c 0) — or
 * after CONFIG (`afterConfig`), for a first frame the client got wrong.
 */
export function refuseLogin(conn: Connection, reason: string, afterConfig: boolean): void {
  if (!afterConfig)
    conn.ctx.log.warn("login refused", { id: conn.idText, name: conn.name, reason });
  conn.endReason = reason;
  if (afterConfig)
    conn.outbox?.push(encodeControl(ControlType.CONFIG, conn.ctx.connectionSettings()), CONTROL);
  conn.outbox?.push(encodeControl(ControlType.STOP, reason), CONTROL);
  conn.phase = "closing";
  conn.stopped = true;
  conn.outbox?.flush();
  if (conn.outbox?.idle) conn.socket.end();
  terminateLater(conn);
}

/** Closes a connection that has no session (yet): no STOP, just the socket. */
export function abortConnection(conn: Connection, reason: string): void {
  if (conn.phase === "closed") return;
  queueMicrotask(() => conn.morePaused?.());
  conn.endReason = reason;
  conn.phase = "closing";
  conn.stopped = true;
  conn.socket.terminate();
}

/**
 * Sends STOP with `reason` after what was already sealed, then closes. Undelivered
 * live messages are stored for the client's next login.
 */
export function stopConnection(conn: Connection, reason: string): void {
  if (conn.phase === "closing" || conn.phase === "closed") return;
  if (conn.phase !== "open" || !conn.outbox) {
    conn.abort(reason);
    return;
  }
  conn.endReason = reason;
  conn.ctx.router.unregister(conn);
  conn.ctx.router.storeUndelivered(conn, conn.takeUndelivered());
  // Closing before the STOP is queued: a backlog it pushes past the bound (after a
  // reload lowered it) must not start a second stop.
  conn.phase = "closing";
  conn.stopped = !conn.draining;
  conn.outbox.push(encodeControl(ControlType.STOP, reason), CONTROL);
  conn.outbox.flush();
  if (conn.outbox.idle) endOutput(conn);
  terminateLater(conn);
}

/** Closes after the STOP: draining, only the sending side (FIN), reading on until the client closes. */
export function endOutput(conn: Connection): void {
  if (conn.draining) conn.socket.shutdown();
  else conn.socket.end();
}

/**
 * The server is stopping (docs/PROTOCOL.md § STOP `server shutting down`): every frame
 * already received is handled and answered first, then STOP; frames the client sent
 * before it saw the STOP are still handled (routed or stored) until it closes, so
 * nothing that reached the socket is lost.
 */
export function shutdownConnection(conn: Connection, reason: string): void {
  if (conn.phase !== "open") {
    conn.stop(reason);
    return;
  }
  conn.draining = true;
  const deadline = performance.now() + STOP_GRACE_MS;
  const attempt = () => {
    if (conn.phase !== "open") return;
    if (conn.input.holding && performance.now() < deadline) setTimeout(attempt, 2);
    else conn.stop(reason);
  };
  attempt();
}

/** The client said STOP: close without answering. */
export function endOnPeerStop(conn: Connection, reason: string): void {
  conn.endReason = reason ? `client stop: ${reason}` : "client stop";
  conn.ctx.router.unregister(conn);
  conn.phase = "closing";
  conn.stopped = true;
  conn.socket.end();
}

/** The client broke the protocol: STOP `protocol error`. */
export function stopOnProtocolError(conn: Connection, detail: string): void {
  conn.draining = false;
  conn.stopped = true;
  conn.ctx.stats.protocolErrors++;
  conn.ctx.log.warn("protocol error", {
    id: conn.idText || undefined,
    addr: conn.address,
    detail,
  });
  conn.stop("protocol error");
}

/** STOP `slow consumer`: the backlog toward the client passed `max_outbound_bytes`. */
export function stopSlowConsumer(conn: Connection, pending: number): void {
  conn.ctx.stats.slowConsumers++;
  conn.ctx.log.warn("slow consumer", {
    id: conn.idText,
    addr: conn.address,
    pending,
    limit: conn.outbox?.limit,
  });
  conn.stop("slow consumer");
}
