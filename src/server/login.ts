/**
 * The login of one client connection (docs/PROTOCOL.md § Handshake, § SESSION): the
 * handshake response verified against the client's key, revocations re-checked, the
 * session registered, CONFIG sent — or the login refused with a reason.
 */
import type { Socket } from "bun";
import { HandshakeError } from "../errors.ts";
import { type ServerHandshake, StandIn } from "../handshake/server.ts";
import { idKey, idToText } from "../ids.ts";
import { CONTROL, Outbox } from "../net/outbox.ts";
import { MAX_FRAME_PAYLOAD } from "../wire/constants.ts";
import { ControlType, encodeControl } from "../wire/message.ts";
import type { Connection } from "./connection.ts";
import { readSessionFrame } from "./session-login.ts";

/**
 * Verifies the handshake `response` of `conn` and, if the client is who it says,
 * opens its session; otherwise ends the connection (the refusal reply, or STOP with a
 * reason after CONFIG when the keys are shared). Never throws.
 */
export async function verifyLogin(conn: Connection, response: Uint8Array): Promise<void> {
  const { ctx, input } = conn;
  const hs = conn.hs as ServerHandshake;
  conn.phase = "verifying";
  if (!ctx.handshakeRate.take(conn.prefix)) {
    ctx.stats.handshakesRefused++;
    ctx.stats.refusedRate++;
    ctx.log.warn("handshake rate limited", { addr: conn.address, prefix: conn.prefix });
    conn.abort("handshake rate limited");
    return;
  }
  // Revocations from here on are re-checked before the session is admitted: one made
  // while this login is in flight would otherwise miss it (it is not routable yet).
  const revocations = await ctx.store.revocationSerial().catch(() => -1);
  if (conn.phase !== "verifying") return;
  let name = "";
  try {
    const accepted = await ctx.rsa.run(() =>
      conn.phase !== "verifying"
        ? Promise.reject(new Error("closed while waiting"))
        : hs.verify(response, async (id, signatureBytes) => {
            const found = await ctx.lookupClient(id, signatureBytes);
            if (found instanceof StandIn) return found;
            name = found?.record.name ?? "";
            return found?.key ?? null;
          }),
    );
    if (conn.phase !== "verifying") return; // closed or timed out meanwhile
    conn.hs = null;
    conn.id = accepted.clientId;
    conn.idText = idToText(accepted.clientId);
    conn.key = idKey(accepted.clientId);
    conn.name = name;
    input.opener = accepted.session.opener;
    input.reader.max = MAX_FRAME_PAYLOAD;
    const outbox = new Outbox(
      conn.socket as Socket<unknown>,
      accepted.session.sealer,
      conn,
      ctx.settings.max_outbound_bytes,
    );
    conn.outbox = outbox;
    // The first frame after the response says which session this is (SESSION) —
    // or, being anything else or absent, that the client has no tag.
    const paused = input.takePaused(false);
    const rest = await readSessionFrame(conn, accepted.session.opener, paused);
    if (conn.phase !== "verifying") return;
    input.setPaused(rest);
    ctx.handshakeEnded(conn, true);
    if (conn.firstError !== null) {
      // Keys are shared, so the client hears why: CONFIG, then STOP (as on any frame).
      ctx.stats.protocolErrors++;
      ctx.log.warn("protocol error", {
        id: conn.idText,
        addr: conn.address,
        detail: conn.firstError,
      });
      conn.refuse("protocol error", true);
      return;
    }
    if (await revokedSince(conn, revocations)) {
      if (conn.phase === "verifying") conn.refuse("revoked");
      return;
    }
    if (conn.phase !== "verifying") return;
    const admitted = ctx.router.register(conn);
    if (!admitted) {
      conn.refuse("too many sessions");
      return;
    }
    // CONFIG takes s2c counter 0: it is queued before the client becomes routable,
    // so nothing can be sealed ahead of it.
    outbox.push(encodeControl(ControlType.CONFIG, ctx.connectionSettings()), CONTROL);
    conn.holdLive();
    conn.phase = "open";
    conn.inherit(admitted);
    outbox.flush();
    ctx.log.info("connect", {
      id: conn.idText,
      name,
      addr: conn.address,
      session: conn.session.tag?.slice(0, 8),
    });
    // Frames that came with the response first: an ACK 0 there asks for acknowledged
    // delivery, and must be seen before the first stored message goes out.
    input.resume();
    ctx.router.opened(conn);
  } catch (err) {
    if (conn.phase !== "verifying") return;
    const e = err instanceof HandshakeError ? err : null;
    const unavailable = e?.code === "UNAVAILABLE";
    if (!unavailable) ctx.stats.authFailures++;
    ctx.log.warn(unavailable ? "login refused: the store is unavailable" : "auth failed", {
      addr: conn.address,
      id: e?.clientId,
      stage: e?.stage ?? "internal",
      reason: e?.code ?? String(err),
    });
    if (e?.reply)
      conn.refuseRaw(e.reply, unavailable ? "service unavailable" : "authentication failed");
    else conn.abort(e ? `handshake failed (${e.code})` : "handshake failed");
  }
}

/** Whether this client was revoked after the revocation serial read `before` (a store read only then). */
async function revokedSince(conn: Connection, before: number): Promise<boolean> {
  const { store } = conn.ctx;
  try {
    if ((await store.revocationSerial()) === before) return false;
    const record = await store.getClient(conn.idText);
    return !record || record.revokedAt !== null;
  } catch {
    return false; // the store is away: the registry poll still cuts it off once it answers
  }
}
