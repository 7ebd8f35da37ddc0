/**
 * What a client link (link.ts) writes and reports around its session: the login write
 * that follows the challenge (response, SESSION, ACK 0, BATCH offer), the errors of a
 * connection that could not be made or ended in the handshake, and a STOP's reason.
 */
import { ConnectionError, HandshakeError } from "../errors.ts";
import type { ClientHandshake } from "../handshake/client.ts";
import { encodeBatchOffer } from "../wire/batch.ts";
import { CONTROL_HEADER_BYTES } from "../wire/constants.ts";
import { encodeFrame } from "../wire/frame.ts";
import { ControlType, decodeText, encodeAckBody, encodeControl } from "../wire/message.ts";

/**
 * The bytes written after the challenge: the response frame, then sealed with the
 * early session keys SESSION (c2s counter 1, when `session` is given; docs/PROTOCOL.md
 * § SESSION), ACK 0 (keep stored messages until this client acknowledges them; § ACK)
 * and, when `batch`, the BATCH offer (§ BATCH; the accept follows CONFIG) — one write,
 * so the server has them all when it decides the login.
 */
export function loginWrite(
  hs: ClientHandshake,
  response: Uint8Array,
  session: Uint8Array | null,
  batch: boolean,
): Buffer {
  const sessionFrame = session ? [hs.sealEarly(session)] : [];
  const ack = hs.sealEarly(encodeControl(ControlType.ACK, encodeAckBody(0)));
  const offer = batch ? [hs.sealEarly(encodeBatchOffer())] : [];
  return Buffer.concat([encodeFrame(response), ...sessionFrame, ack, ...offer]);
}

/** The reason text of a STOP message (`plain`, header included); "stopped" when not UTF-8. */
export function stopReason(plain: Uint8Array): string {
  try {
    return decodeText(plain.subarray(CONTROL_HEADER_BYTES));
  } catch {
    return "stopped";
  }
}

/** `ConnectionError` `UNREACHABLE` for a failed TCP connect, with the cause in words. */
export function unreachable(
  host: string,
  port: number,
  cause: Error & { code?: string },
): ConnectionError {
  const why =
    cause.code === "ECONNREFUSED"
      ? "connection refused"
      : cause.code === "ENOTFOUND"
        ? "unknown host"
        : cause.code === "ETIMEDOUT"
          ? "timed out"
          : (cause.code ?? cause.message);
  return new ConnectionError("UNREACHABLE", `cannot connect to ${host}:${port}: ${why}`, { cause });
}

/** `ConnectionError` `TIMEOUT`: no CONFIG from `host:port` within `timeoutMs`. */
export function openTimeout(host: string, port: number, timeoutMs: number): ConnectionError {
  return new ConnectionError(
    "TIMEOUT",
    `no answer from ${host}:${port} within ${timeoutMs / 1000} s`,
  );
}

/** `HandshakeError` `CLOSED_DURING_HANDSHAKE`: the server closed before CONFIG. */
export function closedDuringHandshake(): HandshakeError {
  return new HandshakeError(
    "config",
    "CLOSED_DURING_HANDSHAKE",
    "the server closed the connection during the handshake",
  );
}

/** `ConnectionError` `PROTOCOL` for a record from the server that does not parse. */
export function badRecord(err: unknown): ConnectionError {
  return new ConnectionError("PROTOCOL", `bad record from the server: ${(err as Error).message}`);
}
