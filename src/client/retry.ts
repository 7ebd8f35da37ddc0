/**
 * When the client tries again: which failures are worth retrying, which STOP reasons end
 * the client for good, and the backoff between attempts.
 */
import { ConnectionError, HandshakeError } from "../errors.ts";

/** STOP reasons after which reconnecting would be wrong. */
export const FINAL_STOPS = new Set([
  "replaced by a new connection",
  "revoked",
  "authentication failed",
]);

/** Failures worth retrying: the network, not the server's judgement or the key. */
export function retryable(err: unknown): boolean {
  if (err instanceof HandshakeError)
    return (
      err.code === "CLOSED_DURING_HANDSHAKE" ||
      err.code === "TOO_MANY_SESSIONS" ||
      err.code === "UNAVAILABLE"
    );
  return err instanceof ConnectionError;
}

/** Exponential backoff with "equal jitter" (ms), for the `attempt`-th retry (0 first). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** attempt);
  return Math.round(base / 2 + Math.random() * (base / 2));
}
