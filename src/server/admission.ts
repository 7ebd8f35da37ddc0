/**
 * Handshakes in flight and their bounds (docs/SECURITY.md): at most
 * `max_pending_per_prefix` from one address prefix (the newcomer is refused), at most
 * `max_pending_handshakes` in all (the oldest is dropped, so a slow flood cannot lock
 * everyone out), and none older than `connection_timeout`.
 */
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";

export class Admission {
  readonly #ctx: ServerContext;
  /** Handshakes in flight, oldest first. */
  readonly #pending = new Set<Connection>();
  readonly #perPrefix = new Map<string, number>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** Handshakes in flight. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Whether a new connection from `prefix` may start a handshake (false: refuse it,
   * counted and logged). When every place is taken, the oldest handshake is dropped.
   */
  admit(prefix: string, addr: string): boolean {
    const { settings: s, stats, log } = this.#ctx;
    if ((this.#perPrefix.get(prefix) ?? 0) >= s.max_pending_per_prefix) {
      // The newcomer is refused: only the crowding prefix pays.
      stats.handshakesRefused++;
      stats.refusedPrefix++;
      log.warn("too many handshakes from one prefix", { addr, prefix });
      return false;
    }
    if (this.#pending.size >= s.max_pending_handshakes) {
      const oldest = this.#pending.values().next().value as Connection;
      stats.handshakesRefused++;
      stats.refusedCapacity++;
      oldest.abort("handshake capacity reached (oldest dropped)");
      this.ended(oldest, false);
    }
    return true;
  }

  /** `conn` (admitted) began its handshake. */
  started(conn: Connection): void {
    this.#pending.add(conn);
    this.#perPrefix.set(conn.prefix, (this.#perPrefix.get(conn.prefix) ?? 0) + 1);
  }

  /** `conn`'s handshake ended (`ok`: in a session); a connection not pending is ignored. */
  ended(conn: Connection, ok: boolean): void {
    if (!this.#pending.delete(conn)) return;
    const n = (this.#perPrefix.get(conn.prefix) ?? 1) - 1;
    if (n > 0) this.#perPrefix.set(conn.prefix, n);
    else this.#perPrefix.delete(conn.prefix);
    if (ok) this.#ctx.stats.handshakesOk++;
  }

  /** Drops handshakes older than `connection_timeout` (`now`: performance.now()). */
  sweep(now: number): void {
    const limit = this.#ctx.settings.connection_timeout * 1000;
    for (const conn of this.#pending) {
      if (now - conn.openedAt < limit) break; // oldest first
      this.#ctx.stats.handshakeTimeouts++;
      conn.abort("connection timeout");
      this.ended(conn, false);
    }
  }

  /** Aborts every handshake in flight with `reason`. */
  abortAll(reason: string): void {
    for (const conn of [...this.#pending]) conn.abort(reason);
  }
}
