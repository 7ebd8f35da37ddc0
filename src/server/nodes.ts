/**
 * Server nodes' liveness, recorded in the store (a lease each node renews), so that a
 * tool reading the store — `backbone clients`, `backbone revoke` — can tell a running
 * server from one that crashed, and wait for every running one to carry out a
 * revocation. Several nodes on one shared store each hold their own lease.
 */
import { hostname } from "node:os";
import type { NodeLease, Store } from "../store/store.ts";
import { isAlive } from "./pidfile.ts";

/** How long a lease holds without renewal (ms), and how often a node renews it. */
export const LEASE_MS = 5000;
export const RENEW_MS = 1000;

/**
 * True while the node behind `lease` runs: its lease has not lapsed, and — on this
 * host — its process still exists (so a `kill -9` is noticed at once, not after the lease).
 */
export function nodeAlive(lease: NodeLease, now = Date.now()): boolean {
  if (lease.until <= now) return false;
  return lease.host !== hostname() || isAlive(lease.pid);
}

/** The running nodes on `store`. */
export async function liveNodes(store: Store): Promise<NodeLease[]> {
  const now = Date.now();
  return (await store.leases()).filter((l) => nodeAlive(l, now));
}

/** The last time any node renewed its lease (unix ms), 0 when none ever did. */
export async function lastLease(store: Store): Promise<number> {
  return Math.max(0, ...(await store.leases()).map((l) => l.renewedAt));
}

/** One node's lease, renewed by the server. */
export class Lease {
  readonly node = crypto.randomUUID();
  readonly #store: Store;
  /** The revocation serial this node has carried out. */
  appliedSerial = 0;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Renews the lease for LEASE_MS (or ends it, `ended`). */
  async renew(ended = false): Promise<void> {
    const now = Date.now();
    await this.#store.renewLease({
      node: this.node,
      host: hostname(),
      pid: process.pid,
      renewedAt: now,
      until: ended ? 0 : now + LEASE_MS,
      appliedSerial: this.appliedSerial,
    });
  }
}

/**
 * Waits until every running node has carried out revocation `serial` (or stopped).
 * Resolves with how many nodes confirmed; rejects after `timeoutMs`.
 */
export async function awaitRevocation(
  store: Store,
  serial: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nodes = await liveNodes(store);
    if (nodes.every((n) => n.appliedSerial >= serial)) return nodes.length;
    if (Date.now() > deadline) throw new Error("the running server did not confirm in time");
    await Bun.sleep(20);
  }
}
