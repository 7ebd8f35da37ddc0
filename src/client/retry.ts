/**
 * When the client tries again: which STOP reasons (docs/PROTOCOL.md § STOP) end it for
 * good, which failures are worth retrying, and the backoff between attempts.
 *
 * The rule: a refusal that retrying cannot change — only a person can (fix the identity,
 * close another session, stop the other instance) — is final: the client closes with
 * the error, and `connect()` rejects at once, whatever `waitForServer` says. Everything
 * else is the network's or the server's passing state, and is retried with backoff.
 */
import { ConnectionError, HandshakeError } from "../errors.ts";

/** STOP reasons after which reconnecting would be wrong, and why. */
export const FINAL_STOPS: ReadonlyMap<string, string> = new Map([
  ["authentication failed", "the identity is unknown, revoked, or its key is wrong"],
  ["revoked", "the identity was revoked"],
  ["replaced by a new connection", "two instances would keep replacing each other"],
  ["too many sessions", "the identity's other sessions fill max_sessions_per_client"],
]);

/**
 * STOP reasons after which the client reconnects with backoff. A reason not listed in
 * either (an older or newer server's) is treated as these are. `protocol error` is here
 * because a network attacker can cause it (a frame altered on the path does not open).
 */
export const TRANSIENT_STOPS: readonly string[] = [
  "heartbeat timeout",
  "server shutting down",
  "slow consumer",
  "sending too fast",
  "rekey required",
  "service unavailable",
  "protocol error",
  "internal error",
];

/** Whether a STOP `reason` ends the client for good. */
export function isFinalStop(reason: string | undefined): boolean {
  return reason !== undefined && FINAL_STOPS.has(reason);
}

/** Failures worth retrying: the network and the server's passing state, not its judgement or the key. */
export function retryable(err: unknown): boolean {
  if (err instanceof HandshakeError)
    return err.code === "CLOSED_DURING_HANDSHAKE" || err.code === "UNAVAILABLE";
  return err instanceof ConnectionError;
}

/** Exponential backoff with "equal jitter" (ms), for the `attempt`-th retry (0 first). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** attempt);
  return Math.round(base / 2 + Math.random() * (base / 2));
}
