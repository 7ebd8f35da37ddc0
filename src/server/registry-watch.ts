/**
 * What a server does for the store's sake, on timers: notices registry changes made by
 * other processes (`backbone revoke`, another node's rooms), carries out revocations,
 * renews this node's lease (nodes.ts) and purges expired offline messages.
 */
import { encodeS2S, S2SType } from "../wire/message.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { Lease } from "./nodes.ts";

export class RegistryWatch {
  readonly #ctx: ServerContext;
  /** This node's lease in the store (nodes.ts): liveness and revocations carried out. */
  readonly lease: Lease;
  #version = -1;
  #check: Promise<void> | null = null;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    this.lease = new Lease(ctx.store);
  }

  /**
   * Takes the store as it is at start: nobody revoked can log in, so every revocation
   * so far counts as carried out. Then renews the lease.
   */
  async start(): Promise<void> {
    const { store } = this.#ctx;
    this.#version = await store.version();
    this.lease.appliedSerial = await store.revocationSerial();
    await this.renewLease();
  }

  /** Renews (or, `ended`, ends) this node's lease; a failure is logged, not thrown. */
  async renewLease(ended = false): Promise<void> {
    try {
      await this.lease.renew(ended);
    } catch (err) {
      this.#ctx.log.warn("lease not renewed", { error: String(err) });
    }
  }

  /**
   * Notices registry changes made by other processes (`backbone revoke`): every session
   * of a revoked client is stopped, the messages it had queued are dropped (counted,
   * logged), and the revocation serial is confirmed in this node's lease — which
   * `revoke` waits for. `force`: check even if the store's version looks unchanged.
   * Checks run one at a time, in call order.
   */
  check(force = false): Promise<void> {
    const next = (this.#check ?? Promise.resolve()).then(() => this.#run(force));
    this.#check = next;
    return next;
  }

  async #run(force: boolean): Promise<void> {
    const { store, router, log, stats } = this.#ctx;
    try {
      const version = await store.version();
      if (version === this.#version && !force) return;
      this.#version = version;
      router.rooms.invalidate(); // another process changed the store (rooms.ts)
      const serial = await store.revocationSerial();
      if (serial === this.lease.appliedSerial && !force) return;
      for (const conn of [...router.online.values()]) {
        const record = await store.getClient(conn.idText);
        if (!record || record.revokedAt !== null) this.#cutOff(conn);
      }
      await router.allStored(); // what they sent before the cut is in the store now
      for (const c of await store.listClients()) {
        if (c.revokedAt === null) continue;
        await router.rooms.forget(c.id); // out of every room (rooms.ts)
        const dropped = await store.dropFromSender(c.id);
        if (dropped > 0) {
          stats.discarded += dropped;
          log.warn("dropped messages of a revoked client", {
            id: c.id,
            name: c.name,
            count: dropped,
          });
        }
      }
      this.lease.appliedSerial = serial;
      await this.renewLease();
    } catch (err) {
      log.error("registry check failed", { error: String(err) });
    }
  }

  #cutOff(conn: Connection): void {
    this.#ctx.log.info("revoked", { id: conn.idText, name: conn.name });
    conn.post(encodeS2S(S2SType.STOP, new TextEncoder().encode("revoked")));
  }

  /** Deletes offline messages older than `queue_max_age`; a failure is logged, not thrown. */
  async expire(): Promise<void> {
    const { store, settings, log } = this.#ctx;
    try {
      const n = await store.expire(Math.floor(Date.now() / 1000) - settings.queue_max_age);
      if (n > 0) log.info("expired stored messages", { count: n });
    } catch (err) {
      log.error("expiry failed", { error: String(err) });
    }
  }
}
