/**
 * Stored messages one taker at a time in the whole cluster (docs/CLUSTER.md): the
 * session delivering a client's stored messages holds `bb:taker:{client}` (`SET NX PX`),
 * renewed every third of its length while it delivers and released with a check of its
 * token, so two nodes never deliver the same stored message. A session that finds it
 * held, or cannot reach Redis, tries again after TAKER_RETRY_MS.
 */
import type { Cluster } from "./cluster.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { storedArrived } from "./delivery.ts";

/** How long a stored-message taker lease holds without renewal (ms). */
export const TAKER_LEASE_MS = 10_000;
/**
 * How soon a session that found the taker lease held tries again (ms): the holder tells
 * it when it moved messages, but not after an empty run, and a holder that died tells
 * nobody (its lease then lapses).
 */
const TAKER_RETRY_MS = 250;

export class TakerLeases {
  readonly #ctx: ServerContext;
  readonly #cluster: Cluster;
  /** Renewal timers of the leases this node holds, by token. */
  readonly #renewals = new Map<string, ReturnType<typeof setInterval>>();

  constructor(ctx: ServerContext, cluster: Cluster) {
    this.#ctx = ctx;
    this.#cluster = cluster;
  }

  /**
   * Takes the lease of `conn`'s client. `busy`: another session delivers; `failed`:
   * Redis did not answer. Either way `conn` tries again after TAKER_RETRY_MS (or when
   * told by the holder).
   */
  async take(conn: Connection): Promise<"taken" | "busy" | "failed"> {
    const token = this.#token(conn);
    let ok = false;
    let failed = false;
    try {
      ok = await this.#cluster.takeStored(conn.idText, token, TAKER_LEASE_MS);
    } catch (err) {
      failed = true;
      this.#ctx.log.warn("taker lease not taken", { id: conn.idText, error: String(err) });
    }
    if (ok) {
      const t = setInterval(() => {
        this.#cluster
          .renewStored(conn.idText, token, TAKER_LEASE_MS)
          .catch((err) =>
            this.#ctx.log.warn("taker lease not renewed", { id: conn.idText, error: String(err) }),
          );
      }, TAKER_LEASE_MS / 3);
      t.unref?.();
      this.#renewals.set(token, t);
      return "taken";
    }
    const retry = setTimeout(() => {
      if (conn.phase === "open") storedArrived(this.#ctx, conn.key);
    }, TAKER_RETRY_MS);
    retry.unref?.();
    return failed ? "failed" : "busy";
  }

  /** Gives up the lease `conn` holds (if it still does). */
  async release(conn: Connection): Promise<void> {
    const token = this.#token(conn);
    clearInterval(this.#renewals.get(token));
    this.#renewals.delete(token);
    try {
      await this.#cluster.releaseStored(conn.idText, token);
    } catch (err) {
      this.#ctx.log.warn("taker lease not released", { id: conn.idText, error: String(err) });
    }
  }

  #token(conn: Connection): string {
    return `${this.#cluster.nodeId}/${conn.cid}`;
  }
}
