/**
 * The sent log (docs/E2E.md § Session reset): the plaintext of recent end-to-end
 * messages, kept so that they can be sent again on a new session when the recipient
 * reports it could not decrypt them. Bounded per peer (SENT_KEPT_PER_PEER), in bytes
 * (SENT_KEPT_BYTES) and in age (SENT_KEPT_SECONDS); an entry is sent again at most once.
 */
import { SENT_KEPT_BYTES, SENT_KEPT_PER_PEER, SENT_KEPT_SECONDS } from "./constants.ts";
import { messageDigest } from "./reset.ts";
import type { E2EState } from "./state.ts";
import type { SentEntry } from "./state-doc.ts";

/** Records a message just encrypted for `peerId` (call in the transaction that saves it). */
export function recordSent(
  state: E2EState,
  peerId: string,
  plaintext: Uint8Array,
  envelope: Uint8Array,
  strict = false,
): void {
  const now = state.now();
  const peer = peerId.toLowerCase();
  const kept = state.sent.filter((e) => now - e.at < SENT_KEPT_SECONDS);
  kept.push({
    peer,
    digest: messageDigest(envelope),
    at: now,
    plaintext,
    ...(strict ? { strict } : {}),
  });
  // Newest first when trimming: per peer, then in bytes overall.
  const perPeer = new Map<string, number>();
  let bytes = 0;
  const out: SentEntry[] = [];
  for (let i = kept.length - 1; i >= 0; i--) {
    const e = kept[i] as SentEntry;
    const n = (perPeer.get(e.peer) ?? 0) + 1;
    if (n > SENT_KEPT_PER_PEER || bytes + e.plaintext.length > SENT_KEPT_BYTES) continue;
    perPeer.set(e.peer, n);
    bytes += e.plaintext.length;
    out.push(e);
  }
  state.sent = out.reverse();
}

/** Removes and returns, oldest first, the messages to `peerId` named by `digests`. */
export function takeSent(state: E2EState, peerId: string, digests: string[]): SentEntry[] {
  const wanted = new Set(digests);
  const peer = peerId.toLowerCase();
  const hit = (e: SentEntry) => e.peer === peer && wanted.has(e.digest);
  const taken = state.sent.filter(hit);
  state.sent = state.sent.filter((e) => !hit(e));
  return taken;
}
