/**
 * When a node of a cluster may deliver a direct message without asking Redis
 * (docs/CLUSTER.md § Local delivery): the recipient has a live session here, none on
 * another node as far as this node knows, and no earlier message of the same sender is
 * still on its way through Redis (else the local one would overtake it).
 *
 * What this node knows of other nodes' live sessions of a client: read from presence
 * when the client's first session here registers, then kept current by the `presence`
 * commands every node sends to the others when a client's live sessions there start or
 * end. Anything unsure — a read not finished, a node that died — sends the message
 * through ROUTE, which decides in Redis.
 */
import type { ClusterSession } from "./cluster.ts";
import type { Connection } from "./connection.ts";

export class LocalRoutes {
  readonly #self: string;
  /** Client ID → other nodes said to hold a live session of it. */
  readonly #remote = new Map<string, Set<string>>();
  /** Clients with a session here whose presence has been read. */
  readonly #watched = new Set<string>();
  /** Messages of each sender on their way through Redis. */
  readonly #inflight = new WeakMap<Connection, number>();

  constructor(self: string) {
    this.#self = self;
  }

  /** The client's presence as read after a session of it registered here. */
  read(client: string, sessions: ClusterSession[]): void {
    for (const s of sessions) if (s.live && s.node !== this.#self) this.told(client, s.node, true);
    this.#watched.add(client);
  }

  /** Node `node` says whether it holds a live session of `client` now. */
  told(client: string, node: string, live: boolean): void {
    if (node === this.#self) return;
    let nodes = this.#remote.get(client);
    if (live) {
      if (!nodes) {
        nodes = new Set();
        this.#remote.set(client, nodes);
      }
      nodes.add(node);
    } else if (nodes) {
      nodes.delete(node);
      if (nodes.size === 0) this.#remote.delete(client);
    }
  }

  /** No session of `client` is left here: what was known is read again next time. */
  forget(client: string): void {
    this.#watched.delete(client);
    this.#remote.delete(client);
  }

  /** True when a message for `client` may go to its live sessions here only. */
  localOnly(client: string): boolean {
    return this.#watched.has(client) && !this.#remote.has(client);
  }

  /** A message of `from` starts its way through Redis. */
  begin(from: Connection): void {
    this.#inflight.set(from, (this.#inflight.get(from) ?? 0) + 1);
  }

  /** …and is done (delivered, held or refused). */
  end(from: Connection): void {
    const n = (this.#inflight.get(from) ?? 1) - 1;
    if (n > 0) this.#inflight.set(from, n);
    else this.#inflight.delete(from);
  }

  /** True while a message of `from` is on its way through Redis. */
  busy(from: Connection): boolean {
    return this.#inflight.has(from);
  }
}
