/**
 * The first frame after the handshake response (docs/PROTOCOL.md § SESSION): SESSION
 * names the session; anything else, or nothing received by the time the response is
 * verified, makes the connection an untagged (legacy) session.
 */
import type { Opener } from "../crypto/channel.ts";
import { CONTROL_HEADER_BYTES } from "../wire/constants.ts";
import { decodeSessionBody, firstFrame, SESSION_BYTE } from "../wire/session.ts";
import type { Connection } from "./connection.ts";
import { LEGACY_SESSION } from "./sessions.ts";

/**
 * Reads the first frame from the bytes received after the response (`paused`), waiting
 * for the rest of one that has only partly arrived. Sets `conn.session` (and
 * `conn.firstPlain` when that frame was not SESSION); returns the bytes after it.
 * Closes the connection on a frame that does not open or a malformed SESSION.
 */
export async function readSessionFrame(
  conn: Connection,
  opener: Opener,
  paused: Uint8Array[],
): Promise<Uint8Array[]> {
  let bytes = concat(paused);
  for (;;) {
    const frame = firstFrame(bytes);
    if (frame === null) {
      conn.session = LEGACY_SESSION;
      return [];
    }
    if (frame === "partial") {
      // The client wrote it with its response; the rest is on its way.
      const more = await new Promise<Uint8Array[] | null>((resolve) => {
        conn.morePaused = () => resolve(conn.phase === "verifying" ? takePaused(conn) : null);
      });
      conn.morePaused = null;
      if (more === null) return [];
      bytes = concat([bytes, ...more]);
      continue;
    }
    let plain: Uint8Array;
    try {
      plain = opener.open(frame.payload);
    } catch {
      conn.abort("first frame does not open");
      return [];
    }
    const rest = frame.rest.length > 0 ? [new Uint8Array(frame.rest)] : [];
    if (plain[0] !== SESSION_BYTE) {
      conn.session = LEGACY_SESSION;
      conn.firstPlain = plain;
      return rest;
    }
    const session =
      plain.length >= CONTROL_HEADER_BYTES
        ? decodeSessionBody(plain.subarray(CONTROL_HEADER_BYTES))
        : null;
    if (!session) {
      conn.abort("malformed SESSION");
      return [];
    }
    conn.session = session;
    return rest;
  }
}

function takePaused(conn: Connection): Uint8Array[] {
  return conn.takePaused();
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
}
