/**
 * One client cannot stall everyone (docs/PROTOCOL.md § Limits):
 *
 * - Requests with a server-side cost (CLIENT_STATUS lookups, SERVER_STATUS, broadcast
 *   copies) are charged to a per-client work budget; past it the client's next frames
 *   are read later — every request still gets exactly one reply, in order, and the
 *   client is not taken for silent meanwhile.
 * - Input is handled in slices: a burst of expensive requests from one connection
 *   yields to the event loop between slices, so another client's HEARTBEAT and a new
 *   connection's challenge are served while the burst is still being worked through.
 *
 * How "while" is measured without timing anything: the number of the flooder's
 * replies that arrive between the victim's request and its answer. Before slices, the
 * server worked through a whole 512 KB read of the flooder's requests (~150 of them)
 * before it looked at anyone else. The server runs in its own process, so the
 * flooder's and victim's sockets are read by the test as the server writes them.
 */
import { describe, expect, test } from "bun:test";
import {
  type ControlMessage,
  ControlType,
  decodeJson,
  encodeControl,
} from "../../src/wire/message.ts";
import { startCluster } from "../helpers/cluster.ts";
import { makeDataDir, spawnServer } from "../helpers/processes.ts";
import { FramedSocket, isControl, RawClosedError, RawSession } from "../helpers/raw.ts";

/** A CLIENT_STATUS asking about 256 names (unknown: each is a lookup that misses). */
function statusRequest(tag: string): Uint8Array {
  return encodeControl(ControlType.CLIENT_STATUS, {
    clients: Array.from({ length: 256 }, (_, i) => `${tag}-${i}`),
  });
}

/** Reads `raw`'s messages in the background, counting CLIENT_STATUS replies. */
function countReplies(raw: RawSession, want: number) {
  const state = { replies: 0, tags: [] as string[], done: null as Promise<void> | null };
  state.done = (async () => {
    while (state.replies < want && !raw.sock.isClosed) {
      const m = await raw.nextMessage(20_000).catch((err) => {
        if (err instanceof RawClosedError) return null; // the test is over
        throw err;
      });
      if (!m) return;
      if (!isControl(m, ControlType.CLIENT_STATUS)) continue;
      state.replies++;
      const body = decodeJson((m as ControlMessage).body) as { clients: { query: string }[] };
      state.tags.push(body.clients[0]?.query.split("-")[0] ?? "");
    }
  })();
  return state;
}

describe("a client flooding CLIENT_STATUS (256 lookups each) while reading the replies", () => {
  for (const lifted of [false, true]) {
    const name = lifted ? "work budget lifted (slices alone)" : "default work budget";
    test(`${name}: another client's HEARTBEAT and a new connection's challenge are served within a few slices`, async () => {
      await using data = await makeDataDir();
      const settings = lifted ? { work_rate: 1e9, work_burst: 1e9 } : {};
      await using server = await spawnServer(data.dir, settings);
      const flooderId = await data.enroll("flooder", server.address);
      const victimId = await data.enroll("victim", server.address);
      await using flooder = await RawSession.login(server.port, flooderId);
      await using victim = await RawSession.login(server.port, victimId);

      const total = 1000; // ~3.3 MB of requests, ~1 s of lookups if served at once
      const seen = countReplies(flooder, total);
      const t0 = performance.now();
      for (let i = 0; i < total; i++) flooder.send(statusRequest(`r${i}`));
      while (seen.replies === 0) await Bun.sleep(1);
      await victim.heartbeat(20_000); // not measured: the test's own sends settle first

      // While the flood is served: pings and fresh connections, each measured in the
      // flooder's replies that arrived meanwhile.
      const during: number[] = [];
      for (let round = 0; round < 5 && seen.replies < total; round++) {
        const before = seen.replies;
        await victim.heartbeat(20_000);
        during.push(seen.replies - before);
        const dialedAt = seen.replies;
        await using fresh = await FramedSocket.dial(server.port);
        await fresh.nextFrame(20_000); // the challenge
        during.push(seen.replies - dialedAt);
      }
      const elapsed = (performance.now() - t0) / 1000;
      // A slice is 512 lookups (2 requests); a few slices may pass on a busy machine,
      // and the test's own process is busy too. Before slices: a whole read of the
      // flooder's socket (512 KB, ~150 requests) went first.
      during.sort((a, b) => a - b);
      expect(during.length).toBeGreaterThan(0);
      expect(during[Math.floor(during.length / 2)] as number).toBeLessThanOrEqual(8);
      expect(during.at(-1) as number).toBeLessThan(100);
      if (lifted) {
        await seen.done;
      } else {
        // Served at the default budget (work_rate 2048/s, burst 4096 lookups).
        expect(seen.replies * 256).toBeLessThanOrEqual(4096 + 2048 * elapsed + 2 * 256);
      }
      // Every request answered so far got exactly one reply, in order.
      expect(seen.tags).toEqual(Array.from({ length: seen.tags.length }, (_, i) => `r${i}`));
      console.log(
        `${name}: flooder replies during another's request (sorted): ${during.join(",")}; ${seen.replies} replies by the end, measured over ${elapsed.toFixed(2)} s`,
      );
    }, 30_000);
  }
});

test("past its work budget a client is served later, in order, and not taken for silent", async () => {
  const rate = 2560; // 10 requests of 256 lookups per second
  const burst = 1280; // 5 at once
  await using c = await startCluster({
    work_rate: rate,
    work_burst: burst,
    heartbeat_interval: 0.4,
    heartbeat_timeout: 1,
  });
  const victim = await c.client("victim");
  const flooder = await c.raw("flooder");
  const n = 20; // (20 × 256 − 1280) / 2560 = 1.5 s of debt, longer than heartbeat_timeout
  const t0 = performance.now();
  for (let i = 0; i < n; i++) flooder.send(statusRequest(`r${i}`));
  flooder.sendControl(ControlType.HEARTBEAT);
  const arrivals: number[] = [];
  const tags: string[] = [];
  let pings = 0;
  const pinging = (async () => {
    while (arrivals.length < n) {
      await victim.ping(); // others are served meanwhile
      pings++;
      await Bun.sleep(50);
    }
  })();
  for (;;) {
    const m = await flooder.nextMessage(10_000);
    if (isControl(m, ControlType.HEARTBEAT)) break; // after every reply: in order
    expect(isControl(m, ControlType.CLIENT_STATUS)).toBe(true);
    arrivals.push((performance.now() - t0) / 1000);
    const body = decodeJson((m as unknown as ControlMessage).body) as {
      clients: { query: string }[];
    };
    tags.push(body.clients[0]?.query.split("-")[0] ?? "");
  }
  await pinging;
  expect(tags).toEqual(Array.from({ length: n }, (_, i) => `r${i}`));
  // Never faster than the budget: by time t at most burst + rate × t lookups served
  // (the request that goes into debt included).
  for (const [k, t] of arrivals.entries()) {
    expect((k + 1) * 256).toBeLessThanOrEqual(burst + rate * t + 256);
  }
  // Delayed past heartbeat_timeout by the server itself: not stopped for silence.
  expect(flooder.sock.isClosed).toBe(false);
  expect(await flooder.heartbeat()).toEqual([]);
  expect(pings).toBeGreaterThan(3);
  console.log(
    `budget: ${n} requests served over ${arrivals.at(-1)?.toFixed(2)} s (bound ≥ ${((n * 256 - burst - 256) / rate).toFixed(2)} s), victim pings meanwhile ${pings}`,
  );
});
