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
  /** The session taking stored messages now, if any. */
  taker: Connection | null;
  /** Live messages routed to this client so far (see `liveFrom`). */
  routed: number;
}

/** Why a login was refused. */
export type AddResult = { ok: true; replaced: Connection | null } | { ok: false; reason: string };

export class SessionRegistry {
  readonly #byClient = new Map<string, ClientSessions>();
  /** Route number of each live message (per recipient), to tell which sessions got it. */
  readonly #routeSeq = new WeakMap<Uint8Array, number>();
  /** The route number at which each session started receiving live. */
  readonly #liveFrom = new WeakMap<Connection, number>();
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

  /** Open sessions of the client that receive live messages. */
  liveReceivers(key: string): Connection[] {
    return this.sessionsOf(key).filter((c) => c.routable && c.session.live);
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
      s = { conns: [], taker: null, routed: 0 };
      this.#byClient.set(conn.key, s);
    }
    if (replaced) {
      s.conns.splice(s.conns.indexOf(replaced), 1);
      this.#sessions--;
      if (s.taker === replaced) s.taker = null;
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
    if (s.taker === conn) s.taker = null;
    if (s.conns.length === 0) this.#byClient.delete(conn.key);
    return true;
  }

  /** Records that `message` is being posted live to every live receiver of `key`. */
  noteRouted(key: string, message: Uint8Array): void {
    const s = this.#byClient.get(key);
    if (!s) return;
    this.#routeSeq.set(message, ++s.routed);
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
    return this.#byClient.get(key)?.taker ?? null;
  }

  /**
   * Makes `conn` the taker of its client's stored messages if none is; returns whether
   * it now is. One taker at a time: a stored message never goes to two sessions.
   */
  claimTaker(conn: Connection): boolean {
    const s = this.#byClient.get(conn.key);
    if (!s || !conn.routable || !conn.session.stored) return false;
    if (s.taker && s.taker !== conn && s.taker.routable) return false;
    s.taker = conn;
    return true;
  }

  /** Gives up the taker role (delivery finished or the session ended). */
  releaseTaker(conn: Connection): void {
    const s = this.#byClient.get(conn.key);
    if (s?.taker === conn) s.taker = null;
  }

  /** The next open session that takes stored messages, to continue a delivery. */
  nextTaker(key: string): Connection | null {
    return this.sessionsOf(key).find((c) => c.routable && c.session.stored) ?? null;
  }
}
