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

/**
 * How long (ms) a message delivered here without Redis is kept, to be copied to a
 * session of its recipient that another node reports afterwards (the report takes a few
 * milliseconds; a new session may so get a message sent just before its login).
 */
export const FORWARD_WINDOW_MS = 100;
/** Most such messages kept per client. */
const FORWARD_MAX = 256;

export class LocalRoutes {
  readonly #self: string;
  /** Client ID → other nodes said to hold a live session of it. */
  readonly #remote = new Map<string, Set<string>>();
  /** Clients with a session here whose presence has been read. */
  readonly #watched = new Set<string>();
  /** Client ID → messages delivered here without Redis in the last FORWARD_WINDOW_MS. */
  readonly #recent = new Map<string, { at: number; plain: Uint8Array }[]>();
  #noted = 0;
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
    this.#recent.delete(client);
  }

  /** `plain` was delivered to `client`'s sessions here without Redis. */
  noteLocal(client: string, plain: Uint8Array): void {
    const now = performance.now();
    let list = this.#recent.get(client);
    if (!list) {
      list = [];
      this.#recent.set(client, list);
    }
    list.push({ at: now, plain });
    while (list.length > FORWARD_MAX || (list[0] && now - list[0].at > FORWARD_WINDOW_MS))
      list.shift();
    // Now and then, clients that received nothing lately are let go.
    if (++this.#noted % 4096 === 0)
      for (const [id, l] of this.#recent)
        if (now - (l.at(-1)?.at ?? 0) > FORWARD_WINDOW_MS) this.#recent.delete(id);
  }

  /** Takes the messages delivered here to `client` in the last FORWARD_WINDOW_MS. */
  takeRecent(client: string): Uint8Array[] {
    const list = this.#recent.get(client);
    this.#recent.delete(client);
    const now = performance.now();
    return (list ?? []).filter((m) => now - m.at <= FORWARD_WINDOW_MS).map((m) => m.plain);
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
