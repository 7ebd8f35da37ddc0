/**
 * How a long-running client command (`listen`, `chat`) learns that the server has
 * ended its session for good — revoked, authentication refused on a reconnect, the
 * server's key changed, replaced by a newer connection — and turns that into the
 * same one-line error and exit code a one-shot command gives.
 */
import type { Client } from "../client/client.ts";
import { ConnectionError } from "../errors.ts";
import { describeError, EXIT, exitCodeOf } from "./common.ts";

/** STOP reasons that mean "this identity may not log in" (exit 4, as a refused handshake). */
const AUTH_STOPS = new Set(["server said: revoked", "server said: authentication failed"]);

export interface SessionEnd {
  /** Exit code (README § Commands). */
  code: number;
  /** Lines for stderr, each without the `backbone: ` prefix, terminal-safe. */
  lines: string[];
}

/** The exit code and lines for a client that closed with `error`. */
export function describeEnd(error: Error): SessionEnd {
  if (error instanceof ConnectionError && error.code === "STOPPED") {
    const auth = AUTH_STOPS.has(error.message);
    const lines = describeError(error).map((l) => `the server ended the session (${l})`);
    if (error.message === "server said: revoked")
      lines[0] = "the server ended the session: this client has been revoked";
    return { code: auth ? EXIT.AUTH : EXIT.UNREACHABLE, lines };
  }
  return { code: exitCodeOf(error), lines: describeError(error) };
}

/**
 * Resolves when `client` closes by the server's doing (with an error), never when it
 * was closed by this process. Call before iterating `client.messages()`, which ends
 * at the same moment.
 */
export function sessionEnd(client: Client): Promise<SessionEnd> {
  return new Promise((resolve) => {
    client.on("close", ({ error }) => {
      if (error) resolve(describeEnd(error));
    });
  });
}

/** Writes a session end to stderr and returns its exit code. */
export function reportEnd(end: SessionEnd): number {
  for (const line of end.lines) process.stderr.write(`backbone: ${line}\n`);
  return end.code;
}
