/**
 * Room fan-out (docs/PROTOCOL.md § Rooms): one sender floods a room of N members
 * while two other clients exchange direct messages. Measures the copies per second the
 * server hands out (against the per-sender budget, `room_fanout_rate`, default 20,000/s)
 * and the direct messages' latency with and without the flood — the budget's purpose
 * is that the second does not grow much.
 *
 * Usage: bun bench/room-fanout.ts [--members N] [--messages M] [--probes P]
 * (defaults 200, 400, 200). A `backbone serve` process on 127.0.0.1, port 0, in a temp
 * directory; everything bounded in count and time. Prints one JSON line.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, connect } from "../src/client/client.ts";
import { parseIdentity } from "../src/client/identity.ts";
import { startBackbone } from "./lib/backbone.ts";
import { rssBytes } from "./lib/proc.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const MEMBERS = arg("members", 200);
const MESSAGES = arg("messages", 400);
const PROBES = arg("probes", 200);
const DEADLINE_MS = 120_000;

const dir = mkdtempSync(join(tmpdir(), "backbone-bench-rooms-"));
const server = await startBackbone(dir, MEMBERS + 3);
const deadline = setTimeout(() => {
  process.stderr.write("room-fanout: deadline passed\n");
  void server.stop().then(() => process.exit(1));
}, DEADLINE_MS);
try {
  const all: Client[] = [];
  for (const text of server.identities.slice(0, 3))
    all.push(await connect({ identity: await parseIdentity(text), reconnect: false }));
  const [sender, p1, p2] = all as [Client, Client, Client];
  await sender.rooms.create("bench", { public: true });
  // The members live on a worker thread: their decryption is not on the probe's loop.
  const worker = new Worker(new URL("./lib/room-members.ts", import.meta.url).href);
  const ready = Promise.withResolvers<void>();
  const allIn = Promise.withResolvers<number>();
  worker.onmessage = (e: MessageEvent) => {
    if (e.data.ready) ready.resolve();
    if (e.data.done) allIn.resolve(e.data.done);
  };
  worker.postMessage({
    identities: server.identities.slice(3),
    room: "bench",
    expect: MESSAGES * MEMBERS,
  });
  await ready.promise;

  /** Direct-message latency p1 → p2 (one process, one clock), P probes 5 ms apart. */
  async function probe(): Promise<{ p50: number; p99: number }> {
    const lat: number[] = [];
    const done = Promise.withResolvers<void>();
    const onMessage = (m: { data: Uint8Array }) => {
      lat.push(performance.now() - new DataView(m.data.buffer, m.data.byteOffset).getFloat64(0));
      if (lat.length === PROBES) done.resolve();
    };
    p2.on("message", onMessage);
    for (let i = 0; i < PROBES; i++) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, performance.now());
      p1.send(p2.id, b);
      await Bun.sleep(5);
    }
    await done.promise;
    p2.off("message", onMessage);
    lat.sort((a, b) => a - b);
    return {
      p50: lat[Math.floor(lat.length * 0.5)] as number,
      p99: lat[Math.floor(lat.length * 0.99)] as number,
    };
  }

  const quiet = await probe();
  const data = new Uint8Array(100);
  const t0 = performance.now();
  for (let i = 0; i < MESSAGES; i++) sender.send("#bench", data);
  const loaded = await probe();
  const copies = await allIn.promise;
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${JSON.stringify({
      members: MEMBERS,
      messages: MESSAGES,
      copies,
      copiesPerSec: Math.round(copies / seconds),
      seconds: Number(seconds.toFixed(2)),
      directLatencyQuietMs: { p50: +quiet.p50.toFixed(2), p99: +quiet.p99.toFixed(2) },
      directLatencyDuringFloodMs: { p50: +loaded.p50.toFixed(2), p99: +loaded.p99.toFixed(2) },
      serverRssMiB: Math.round(rssBytes(server.pid) / 2 ** 20),
    })}\n`,
  );
  await Promise.all(all.map((c) => c.close()));
  worker.terminate();
} finally {
  clearTimeout(deadline);
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
