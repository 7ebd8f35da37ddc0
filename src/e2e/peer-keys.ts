/**
 * Recording the identity keys of peers as the E2E manager (./session-manager.ts) meets
 * them (docs/E2E.md § Trust, § Key rollover): trust on first use, key changes, a
 * rollover chain a fetched bundle came with, and whether a key is the verified one.
 * Each records in `known_peers` and emits the manager's events.
 */
import type { Client } from "../client/client.ts";
import type { FetchedBundle } from "./directory.ts";
import { identityFingerprint } from "./fingerprint.ts";
import type { Observation } from "./known-peers.ts";
import type { E2EEvents } from "./manager-types.ts";
import { fillName } from "./peer-checks.ts";
import { followRollover } from "./rollover.ts";
import type { E2EState } from "./state.ts";

/** What the parts of the E2E layer need of the manager. */
export interface E2EHost {
  readonly state: E2EState;
  /** The attached client, null before `attach`. */
  readonly client: Client | null;
  emit<K extends keyof E2EEvents>(event: K, ...args: E2EEvents[K]): boolean;
}

/**
 * Records `fp` (`SHA256:…`) as the key of peer `id` (`name` when known): emits
 * `newPeer` or `keyChanged`, saves `known_peers` when anything changed, and asks the
 * server for the name of a peer first seen by ID. Call inside a transaction.
 */
export function observePeer(
  host: E2EHost,
  id: string,
  name: string | undefined,
  fp: string,
): Observation {
  const { state } = host;
  const o = state.knownPeers.observe(id, name, fp, state.now());
  if (!o.peer.name) void fillName(host.client, state, id);
  if (o.status !== "same" || name) state.saveKnownPeers();
  if (o.status === "new") host.emit("newPeer", { id, fingerprint: fp });
  if (o.status === "changed") {
    host.emit("keyChanged", { id, previous: o.previous, fingerprint: fp, blocked: o.blocked });
  }
  return o;
}

/** True when `fp` is the verified key of `id`, with no changed key pending. */
export function isVerified(state: E2EState, id: string, fp: string): boolean {
  const p = state.knownPeers.get(id);
  return Boolean(p?.verified && !p.pending && p.fingerprint === fp);
}

/** Follows the rollover chain a fetched bundle came with (before observing its key). */
export function followFetched(host: E2EHost, fetched: FetchedBundle): void {
  const { state } = host;
  const moved = followRollover(
    state.knownPeers,
    fetched.id,
    fetched.bundle.identity,
    fetched.rollover,
    state.now(),
  );
  if (!moved) return;
  state.saveKnownPeers();
  host.emit("keyRolledOver", moved);
}

/**
 * Records the key of a fetched bundle as the key of peer `id` (the one asked for): its
 * rollover chain first, then the key itself. Call inside a transaction.
 */
export function adoptFetched(host: E2EHost, fetched: FetchedBundle, id = fetched.id): void {
  followFetched(host, fetched);
  observePeer(host, id, fetched.name, identityFingerprint(fetched.bundle.identity));
}
