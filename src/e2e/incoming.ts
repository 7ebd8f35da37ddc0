/** Incoming messages as the E2E layer hands them on: marked `e2e` and `verified`. */
import type { IncomingMessage } from "../client/types.ts";
import type { InboxEntry } from "./state.ts";

/** `m` with `data` replaced and the E2E marks set. */
export function wrap(
  m: IncomingMessage,
  data: Uint8Array,
  e2e: boolean,
  verified: boolean,
): IncomingMessage {
  return {
    from: m.from,
    fromBytes: m.fromBytes,
    data,
    kind: m.kind,
    room: m.room,
    stored: m.stored,
    queuedAt: m.queuedAt,
    receivedAt: m.receivedAt,
    e2e,
    verified,
  };
}

/** A message saved in the inbox before a crash, delivered again after the restart. */
export function inboxMessage(e: InboxEntry): IncomingMessage {
  const hexId = e.sender.replaceAll("-", "");
  return {
    from: e.sender,
    fromBytes: new Uint8Array(Buffer.from(hexId, "hex")),
    data: e.plaintext,
    kind: e.queuedAt !== null ? "stored" : "direct",
    room: null,
    stored: e.queuedAt !== null,
    queuedAt: e.queuedAt !== null ? new Date(e.queuedAt * 1000) : null,
    receivedAt: new Date(e.at * 1000),
    e2e: e.e2e,
    verified: e.verified,
  };
}

/** The digest a live envelope is known by in `RecentLive` (SHA-256, 32 hex characters). */
export function liveDigest(envelope: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(envelope).digest("hex").slice(0, 32);
}
