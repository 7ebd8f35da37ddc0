/**
 * The client side of the E2E key directory (docs/PROTOCOL.md § KEYS): keeping this
 * client's bundle published and fetching a peer's. Anything that can send one KEYS
 * request and return the reply will do (the library's `Client.keyDirectory`).
 */
import { MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEY_LOW } from "./constants.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint } from "./fingerprint.ts";
import {
  type Bundle,
  decodeBundle,
  encodeBundle,
  identityKeyBytes,
  publicIdentity,
  verifyBundle,
} from "./keys.ts";
import { decodeChain, encodeChain, type RolloverLink } from "./rollover.ts";
import type { E2EState } from "./state.ts";

/** Sends one KEYS request and resolves with the reply. */
export type KeyRequester = (request: Record<string, unknown>) => Promise<Record<string, unknown>>;

/** A verified bundle of a peer, as the directory answered it. */
export interface FetchedBundle {
  id: string;
  name: string;
  bundle: Bundle;
  /** The owner's rollovers to this identity (signatures checked when followed). */
  rollover: RolloverLink[];
}

function refused(op: string, reply: Record<string, unknown>): E2EError {
  const why = typeof reply.error === "string" ? reply.error : "bad reply";
  return new E2EError(
    `DIRECTORY_${why.toUpperCase().replace(/[^A-Z]+/g, "_")}`,
    `key directory refused ${op}: ${why}`,
  );
}

/** Options of `syncKeys`. */
export interface SyncOptions {
  /**
   * Replace a bundle of another E2E identity held for this client ID (another device,
   * or the state of an earlier install) instead of refusing with `IDENTITY_ELSEWHERE`.
   */
  takeover?: boolean;
}

/**
 * The error when the directory holds another E2E identity for this client
 * (docs/E2E.md § One identity, one device). `held` is that identity's 64-byte key.
 */
export function identityElsewhere(state: E2EState, held: Uint8Array | null): E2EError {
  const fp = (b: Uint8Array) =>
    identityFingerprint({
      signingKey: b.subarray(0, 32),
      dhKey: b.subarray(32, 64),
      dhSignature: new Uint8Array(64),
    });
  const theirs = held ? ` (${fp(held)})` : "";
  const ours = fp(identityKeyBytes(publicIdentity(state.identity)));
  return new E2EError(
    "IDENTITY_ELSEWHERE",
    `the key directory holds another E2E identity for this client${theirs}, not this machine's (${ours}): another machine uses this identity, or this is a re-install; nothing was replaced. Run once with --e2e-takeover to make this machine's key the one peers write to (the other then cannot read new messages), or move the other machine's E2E state here (backbone e2e export there, backbone e2e import here)`,
  );
}

/**
 * Makes sure the directory holds this client's current bundle with enough one-time
 * prekeys: publishes a full bundle when it holds none, new one-time prekeys when fewer
 * than ONE_TIME_PREKEY_LOW are left, and a rotated signed prekey. New keys are saved in
 * `state` before they are published. A bundle of **another** identity for this client
 * (a second device, or an earlier install) is never replaced silently: `IDENTITY_ELSEWHERE`
 * unless `opts.takeover`. Returns how many one-time prekeys the directory holds
 * afterwards. Throws `E2EError`.
 */
export async function syncKeys(
  request: KeyRequester,
  state: E2EState,
  opts: SyncOptions = {},
): Promise<number> {
  const count = await request({ op: "count" });
  if (count.error) throw refused("count", count);
  // Ours: the current identity, or one we rolled over from (then the new one replaces it).
  const ownKeys = state.ownIdentityKeys().map((k) => Buffer.from(k));
  // Servers before the `identity` field: the publish below finds out (identity_mismatch).
  const heldKey = typeof count.identity === "string" ? Buffer.from(count.identity, "base64") : null;
  const other =
    count.published === true && heldKey !== null && !ownKeys.some((k) => k.equals(heldKey));
  if (other && !opts.takeover) throw identityElsewhere(state, heldKey);
  // New secrets are saved before anyone can fetch their public halves.
  const plan = state.transaction((tx) => {
    const pruned = state.pruneRetired();
    const rotated = state.maybeRotateSignedPreKey() || pruned;
    const spk = state.signedPreKeys[0];
    if (!spk) throw new E2EError("STATE_CORRUPT", "no signed prekey");
    const held = count.published === true && !other ? Number(count.one_time_prekeys) : 0;
    // Never published from this state, or taking over from another identity: replace.
    const fresh = count.published !== true || other || state.publishedSignedPreKey === 0;
    const unpublishedSpk = state.publishedSignedPreKey !== spk.id;
    if (!fresh && !rotated && !unpublishedSpk && held >= ONE_TIME_PREKEY_LOW) {
      tx.skipWrite();
      return { held, fresh, spk, opks: null };
    }
    const needed = fresh ? MAX_ONE_TIME_PREKEYS : Math.max(0, MAX_ONE_TIME_PREKEYS - held);
    const opks = held >= ONE_TIME_PREKEY_LOW && !fresh ? [] : state.addOneTimePreKeys(needed);
    if (!rotated && opks.length === 0) tx.skipWrite();
    return { held, fresh, spk, opks };
  });
  const { held, fresh, spk, opks } = plan;
  if (!opks) return held;
  const bundle = encodeBundle({
    identity: publicIdentity(state.identity),
    signedPreKey: { id: spk.id, key: spk.key, signature: spk.signature },
    oneTimePreKeys: opks.map((k) => ({ id: k.id, key: k.key, signature: k.signature })),
  });
  // The rollovers to this identity travel with every publish (the head is replaced).
  const rollover =
    state.rollovers.length > 0
      ? { rollover: Buffer.from(encodeChain(state.rollovers)).toString("base64") }
      : {};
  let reply = await request({
    op: "publish",
    ...rollover,
    bundle: Buffer.from(bundle).toString("base64"),
    // Nothing held: no replace, so that a bundle another device published meanwhile is
    // refused (identity_mismatch) rather than overwritten.
    replace: fresh && count.published === true,
  });
  if (reply.error === "identity_mismatch") {
    // Another identity was published between our count and publish.
    if (!opts.takeover) throw identityElsewhere(state, null);
    reply = await request({
      op: "publish",
      ...rollover,
      bundle: Buffer.from(bundle).toString("base64"),
      replace: true,
    });
  }
  if (reply.error) throw refused("publish", reply);
  state.transaction(() => {
    state.publishedSignedPreKey = spk.id;
  });
  return Number(reply.one_time_prekeys);
}

/**
 * Fetches and verifies the bundle of `query` (an ID or a name). Returns null when the
 * client exists but has published no keys. Throws `E2EError` (`DIRECTORY_UNKNOWN`,
 * `DIRECTORY_RATE_LIMITED`, `BAD_SIGNATURE`, …).
 */
export async function fetchBundle(
  request: KeyRequester,
  query: string,
): Promise<FetchedBundle | null> {
  const reply = await request({ op: "fetch", client: query });
  if (reply.error === "no_keys") return null;
  if (reply.error) throw refused("fetch", reply);
  const id = String(reply.id).toLowerCase();
  if (/^[0-9a-f-]{36}$/i.test(query) && id !== query.toLowerCase()) {
    throw new E2EError("DIRECTORY_MISMATCH", "the directory answered for another client");
  }
  const bundle = decodeBundle(new Uint8Array(Buffer.from(String(reply.bundle), "base64")));
  verifyBundle(bundle, id); // signed for this very ID (unknown key-share defence)
  let rollover: RolloverLink[] = [];
  if (typeof reply.rollover === "string") {
    // A damaged chain only loses the rollover: the key-change rules then apply.
    try {
      rollover = decodeChain(new Uint8Array(Buffer.from(reply.rollover, "base64")));
    } catch {}
  }
  return { id, name: String(reply.name ?? ""), bundle, rollover };
}
