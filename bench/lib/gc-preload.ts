/**
 * Preloaded into a bench server (`bun --preload`): on SIGUSR2 it runs a full garbage
 * collection and prints one stdout line `bench-gc N {"heap":…,"extra":…,"rss":…}` —
 * N counts the signals; bytes: JS heap (`bun:jsc` heapStats().heapSize), memory held
 * outside the JS heap by its objects (extraMemorySize), and RSS right after. Lets the
 * connections scenario measure memory per client after GC, as the issue asks, without a
 * hook in the server itself.
 */
import { heapStats } from "bun:jsc";

let n = 0;
process.on("SIGUSR2", () => {
  Bun.gc(true);
  const h = heapStats();
  const line = {
    heap: h.heapSize,
    extra: h.extraMemorySize,
    rss: process.memoryUsage.rss(),
    ...(process.env.BENCH_GC_TYPES ? { types: h.objectTypeCounts } : {}),
  };
  process.stdout.write(`bench-gc ${++n} ${JSON.stringify(line)}\n`);
});
