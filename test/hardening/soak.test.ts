/**
 * Soak (docs/PROTOCOL.md § What is guaranteed): N library clients, each behind its own
 * TCP proxy, send M messages to random others in batches while being disconnected at
 * random — closed and reconnected gracefully, or cut abruptly at the proxy (the library
 * reconnects by itself), sometimes kept away for a while. Counted end to end: sent,
 * delivered (live and stored), answered NOTICE queued, rejected, and lost — which must
 * be 0 for every message the server acknowledged as queued — with no duplicate and
 * each sender's messages in order.
 *
 * Default 8 clients × 300 messages; BACKBONE_SLOW=1 runs 50 × 5000.
 *
 * The one rule the disconnects follow: a client is only disconnected once the store
 * holds nothing more for it and a HEARTBEAT has come back after the last stored batch.
 * A message already written to a connection that then breaks may be lost (there is no
 * end-to-end acknowledgement); this keeps such losses to live messages, which the
 * protocol does not promise, and which are counted as `unconfirmed`.
 */
import { expect, test } from "bun:test";
import { type Client, connect } from "../../src/client/client.ts";
import type { Identity } from "../../src/client/identity.ts";
import { startCluster, until } from "../helpers/cluster.ts";
import { Ledger, type Peer } from "../helpers/ledger.ts";
import { Prng } from "../helpers/prng.ts";
import { TcpProxy } from "../helpers/proxy.ts";
import { integrity } from "../helpers/store-check.ts";

const SLOW = process.env.BACKBONE_SLOW === "1";
const CLIENTS = SLOW ? 50 : 8;
const MESSAGES = SLOW ? 5000 : 300;
/** Wall-clock bound of the sending phase. */
const LIMIT_MS = SLOW ? 20 * 60_000 : 25_000;
const SEED = 0x5eed;

test(
  `soak: ${CLIENTS} clients × ${MESSAGES} messages with random disconnects lose nothing queued`,
  async () => {
    await using c = await startCluster({
      handshake_rate: 100_000,
      handshake_burst: 100_000,
      max_pending_per_prefix: 10_000,
    });
    const prng = new Prng(SEED);
    const ledger = new Ledger();
    const names = Array.from({ length: CLIENTS }, (_, i) => `c${i}`);
    const ids: Identity[] = await Promise.all(names.map((n) => c.enroll(n)));
    const peers: Peer[] = ids.map((id) => ({ id: id.id, name: id.name }));
    const proxies = await Promise.all(ids.map(() => TcpProxy.start(c.server.port)));
    const open = async (i: number): Promise<Client> => {
      const cl = await connect({
        identity: { ...(ids[i] as Identity), server: (proxies[i] as TcpProxy).address },
        backoff: { initialMs: 20, maxMs: 200 },
      });
      ledger.watch(cl, names[i] as string);
      return cl;
    };
    const clients = await Promise.all(ids.map((_, i) => open(i)));
    const tally = { graceful: 0, cut: 0, kept_away: 0 };
    const end = performance.now() + LIMIT_MS;

    /** The disconnect rule (see above): nothing stored left for `i`, and a barrier. */
    const quiet = async (i: number): Promise<boolean> => {
      const id = (peers[i] as Peer).id;
      try {
        await until(async () => (await c.store.peek(id, 1)).length === 0, 5000, "stored delivery");
        await (clients[i] as Client).ping();
        return true;
      } catch {
        return false;
      }
    };

    const agent = async (i: number) => {
      const me = names[i] as string;
      let sent = 0;
      while (sent < MESSAGES && performance.now() < end) {
        const cl = clients[i] as Client;
        if (!cl.connected) {
          await Bun.sleep(5);
          continue;
        }
        const to = new Set<Peer>();
        const k = prng.int(1, Math.min(4, CLIENTS - 1, MESSAGES - sent));
        while (to.size < k) {
          const p = prng.pick(peers);
          if (p.name !== me) to.add(p);
        }
        await ledger.batch(cl, me, [...to], prng.int(0, 300));
        sent += k;
        if (!prng.chance(0.04) || !(await quiet(i))) continue;
        const away = prng.chance(0.3) ? prng.int(20, 150) : 0;
        if (prng.chance(0.5)) {
          tally.graceful++;
          await cl.close();
          if (away) await Bun.sleep(away);
          clients[i] = await open(i);
        } else {
          tally.cut++;
          const proxy = proxies[i] as TcpProxy;
          if (away) proxy.refuse(true);
          proxy.cutAll(); // both sides reset; the library reconnects on its own
          if (away) {
            await Bun.sleep(away);
            proxy.refuse(false);
          }
        }
        if (away) tally.kept_away++;
      }
      return sent;
    };

    const t0 = performance.now();
    const sentBy = await Promise.all(names.map((_, i) => agent(i)));
    await until(() => clients.every((cl) => cl.connected), 10_000, "every client back");
    await until(() => ledger.missing().length === 0, 20_000, "every queued message");
    await Promise.all(clients.map((cl) => cl.ping()));
    const seconds = (performance.now() - t0) / 1000;
    const sum = ledger.summary();
    console.log(
      `${ledger.line("soak")} clients=${CLIENTS} graceful=${tally.graceful} cuts=${tally.cut} kept_away=${tally.kept_away} seconds=${seconds.toFixed(1)}`,
    );
    expect(sentBy.reduce((a, b) => a + b, 0)).toBe(CLIENTS * MESSAGES); // not cut short by time
    expect(ledger.problems).toEqual([]);
    expect(sum.lost).toBe(0);
    expect(sum.duplicates).toBe(0);
    expect(sum.outOfOrder).toBe(0);
    expect(sum.delivered + sum.rejected + sum.unconfirmed).toBe(sum.sent);
    expect(sum.queued).toBeGreaterThan(0);
    expect(tally.graceful + tally.cut).toBeGreaterThan(CLIENTS);
    expect(await c.store.pendingCount()).toBe(0);
    for (const cl of clients) await cl.close();
    for (const p of proxies) await p.close();
    expect(integrity(`${c.dir}/backbone.db`)).toBe("ok");
  },
  SLOW ? 30 * 60_000 : 60_000,
);
