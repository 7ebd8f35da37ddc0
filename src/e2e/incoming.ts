/** Incoming messages as the E2E layer hands them on: marked `e2e` and `verified`. */
import type { IncomingMessage } from "../client/types.ts";
import { RECENT_LIVE_BYTES, RECENT_LIVE_MAX, RECENT_LIVE_SECONDS } from "./constants.ts";
import type { InboxEntry, RecentLive } from "./state.ts";

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
    kind: e.room !== undefined ? "room" : e.queuedAt !== null ? "stored" : "direct",
    room: e.room ?? null,
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

/**
 * Adds a decrypted live message to `state.recentLive`, keeping the list bounded in
 * count, age and bytes (the whole state is written at every change; see RecentLive).
 */
export function rememberLive(state: { recentLive: RecentLive[] }, item: RecentLive): void {
  const kept = state.recentLive
    .filter((x) => item.at - x.at < RECENT_LIVE_SECONDS)
    .slice(-(RECENT_LIVE_MAX - 1));
  let bytes = item.plaintext.length;
  let start = kept.length;
  while (start > 0 && bytes + (kept[start - 1]?.plaintext.length ?? 0) <= RECENT_LIVE_BYTES)
    bytes += kept[--start]?.plaintext.length ?? 0;
  state.recentLive = kept.slice(start);
  state.recentLive.push(item);
}
