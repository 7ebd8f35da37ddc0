/**
 * Sessions (docs/PROTOCOL.md § Sessions and delivery): several connections of one
 * client ID at once, each with its own tag and receive choices, and the delivery policy
 * across them — live messages to every session that receives live, stored messages to
 * one taker at a time.
 *
 * `SessionRegistry` is the one place that knows which connections a client has. It is
 * in memory for one node; a cluster on a shared store keeps the same interface with
 * the registry and the taker role held as leases in the store.
 */
import type { Connection } from "./connection.ts";

/** What a session said at login. `tag` null: a client that sent no SESSION (legacy). */
export interface SessionInfo {
  /** The client's session tag as lowercase hex (16 bytes), or null for "no tag". */
  readonly tag: string | null;
  /** Receives live direct and broadcast messages. */
  readonly live: boolean;
  /** Takes stored (offline) messages. */
  readonly stored: boolean;
}

/** A connection that sent no SESSION: one untagged session, receiving everything (as before sessions). */
export const LEGACY_SESSION: SessionInfo = { tag: null, live: true, stored: true };

/** One client's sessions, oldest first. */
interface ClientSessions {
  conns: Connection[];
  /** Live messages routed to this client so far (see `liveFrom`). */
  routed: number;
}

/** Why a login was refused. */
export type AddResult = { ok: true; replaced: Connection | null } | { ok: false; reason: string };

/**
 * What the server core needs of the session registry. One node keeps it in memory
 * (`SessionRegistry`); several nodes on a shared store implement the same with the
 * sessions of each client ID and its taker role as leases in the store, and live
 * delivery fanned out to the nodes that hold a receiving session.
 */
export interface Sessions {
  /** Clients with at least one session, and sessions in all. */
  readonly size: number;
  readonly sessionCount: number;
  has(key: string): boolean;
  get(key: string): Connection | undefined;
  values(): IterableIterator<Connection>;
  sessionsOf(key: string): readonly Connection[];
  receiving(key: string): boolean;
  receivingClients(): number;
  liveReceivers(key: string): readonly Connection[];
  add(conn: Connection, limit: number): AddResult;
  remove(conn: Connection): boolean;
  noteRouted(key: string, message: Uint8Array): void;
  notReceivedElsewhere(conn: Connection, messages: Uint8Array[]): Uint8Array[];
  taker(key: string): Connection | null;
  claimTaker(conn: Connection): boolean;
  releaseTaker(conn: Connection): void;
  nextTaker(key: string): Connection | null;
}

const NONE: readonly Connection[] = Object.freeze([]);

export class SessionRegistry implements Sessions {
  readonly #byClient = new Map<string, ClientSessions>();
  /** Route number of each live message (per recipient), to tell which sessions got it. */
  readonly #routeSeq = new WeakMap<Uint8Array, number>();
  /** The route number at which each session started receiving live. */
  readonly #liveFrom = new WeakMap<Connection, number>();
  /**
   * The session taking each client's stored messages. It keeps the role until its
   * delivery run has finished — also after its connection ended, also past the
   * client's last session — so two runs never overlap.
   */
  readonly #takers = new Map<string, Connection>();
  #sessions = 0;

  /** Clients with at least one session. */
  get size(): number {
    return this.#byClient.size;
  }

  /** Sessions of every client. */
  get sessionCount(): number {
    return this.#sessions;
  }

  has(key: string): boolean {
    return this.#byClient.has(key);
  }

  /** The newest session of a client. */
  get(key: string): Connection | undefined {
    return this.#byClient.get(key)?.conns.at(-1);
  }

  /** Every session of every client. */
  *values(): IterableIterator<Connection> {
    for (const s of this.#byClient.values()) yield* s.conns;
  }

  sessionsOf(key: string): readonly Connection[] {
    return this.#byClient.get(key)?.conns ?? [];
  }

  /** True while some open session of the client receives messages (presence: online). */
  receiving(key: string): boolean {
    return this.sessionsOf(key).some((c) => c.routable && (c.session.live || c.session.stored));
  }

  /** Clients with an open session that receives messages (SERVER_STATUS clients_online). */
  receivingClients(): number {
    let n = 0;
    for (const key of this.#byClient.keys()) if (this.receiving(key)) n++;
    return n;
  }

  /** Open sessions of the client that receive live messages (read only: do not change it). */
  liveReceivers(key: string): readonly Connection[] {
    const conns = this.sessionsOf(key);
    // The common case, one session: no array made per routed message.
    if (conns.length === 1) {
      const c = conns[0] as Connection;
      return c.routable && c.session.live ? conns : NONE;
    }
    return conns.filter((c) => c.routable && c.session.live);
  }

  /**
   * Adds `conn`. A session with the same tag (or, without a tag, the untagged one) is
   * replaced; past `limit` sessions the newcomer is refused.
   */
  add(conn: Connection, limit: number): AddResult {
    let s = this.#byClient.get(conn.key);
    const tag = conn.session.tag;
    const replaced = s?.conns.find((c) => c !== conn && c.session.tag === tag) ?? null;
    const others = (s?.conns.length ?? 0) - (replaced ? 1 : 0);
    if (others >= limit) return { ok: false, reason: "too many sessions" };
    if (!s) {
      s = { conns: [], routed: 0 };
      this.#byClient.set(conn.key, s);
    }
    if (replaced) {
      s.conns.splice(s.conns.indexOf(replaced), 1);
      this.#sessions--;
    }
    s.conns.push(conn);
    this.#sessions++;
    this.#liveFrom.set(conn, s.routed);
    return { ok: true, replaced };
  }

  /** Removes `conn`; returns whether it was registered. */
  remove(conn: Connection): boolean {
    const s = this.#byClient.get(conn.key);
    const i = s?.conns.indexOf(conn) ?? -1;
    if (!s || i < 0) return false;
    s.conns.splice(i, 1);
    this.#sessions--;
    if (s.conns.length === 0) this.#byClient.delete(conn.key);
    return true;
  }

  /** Records that `message` is being posted live to every live receiver of `key`. */
  noteRouted(key: string, message: Uint8Array): void {
    const s = this.#byClient.get(key);
    if (!s) return;
    s.routed++;
    // Only a client with several sessions can later ask which of them got a message; a
    // message without a number counts as received by no other session, which is true
    // when it was routed while the client had one. (A WeakMap entry per relayed
    // message was 10% of the server's time at 400k msgs/s.)
    if (s.conns.length > 1) this.#routeSeq.set(message, s.routed);
  }

  /**
   * Of the live messages a closing session never delivered, those no other live
   * session of the client has received a copy of (they are to be stored).
   */
  notReceivedElsewhere(conn: Connection, messages: Uint8Array[]): Uint8Array[] {
    const others = this.liveReceivers(conn.key).filter((c) => c !== conn);
    if (others.length === 0) return messages;
    const from = Math.min(...others.map((c) => this.#liveFrom.get(c) ?? Infinity));
    return messages.filter((m) => {
      const seq = this.#routeSeq.get(m);
      return seq === undefined || seq <= from;
    });
  }

  // ---- the stored-message taker -------------------------------------------------------

  /** The session taking stored messages for `key`, if one is. */
  taker(key: string): Connection | null {
    return this.#takers.get(key) ?? null;
  }

  /**
   * Makes `conn` the taker of its client's stored messages if no session is; returns
   * whether it became it. One taker at a time: a stored message never goes to two
   * sessions. (Several nodes: a lease on the client ID in the shared store.)
   */
  claimTaker(conn: Connection): boolean {
    if (!conn.routable || !conn.session.stored || this.#takers.has(conn.key)) return false;
    this.#takers.set(conn.key, conn);
    return true;
  }

  /** Gives up the taker role once its delivery run has finished. */
  releaseTaker(conn: Connection): void {
    if (this.#takers.get(conn.key) === conn) this.#takers.delete(conn.key);
  }

  /** The next open session that takes stored messages, to continue a delivery. */
  nextTaker(key: string): Connection | null {
    return this.sessionsOf(key).find((c) => c.routable && c.session.stored) ?? null;
  }
}
