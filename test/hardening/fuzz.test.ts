/**
 * Seeded, reproducible fuzzing of a real server on loopback (docs/PROTOCOL.md
 * § Handshake step 5, § Encrypted frames, § Messages). Four stages:
 *   a. random bytes before or instead of the response;
 *   b. the response mutated (random, bit flips, truncated, cut, extended, spliced),
 *      or whole with junk after it;
 *   c. raw frames after authentication (sizes 0, 1, 65535, junk, cut headers, every split);
 *   d. sealed frames of garbage message_data (every byte 0, any length, random JSON).
 * After every case the canaries (two library clients) exchange a message both ways,
 * every 16th case per lane a fresh client logs in, and nothing may have escaped: no
 * uncaught exception or unhandled rejection, no error in the server's log. The same
 * generators then run against the server in its own process, whose stderr must stay
 * clean. A failing case prints its seed and the command that replays it alone.
 *
 * BACKBONE_SLOW=1 runs ~6000 cases (a random seed unless BACKBONE_FUZZ_SEED is set).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Identity } from "../../src/client/identity.ts";
import type { RsaPublicKey } from "../../src/crypto/rsa.ts";
import type { ServerSettings } from "../../src/server/settings.ts";
import { type Cluster, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import {
  Canary,
  type FuzzCase,
  faultsIn,
  faultsInStderr,
  recordEscapes,
  runCases,
  SEED,
  SLOW,
} from "../helpers/fuzz.ts";
import { type FuzzTarget, preAuthCase, responseCase } from "../helpers/fuzz-handshake.ts";
import { garbageCase, rawFrameCase } from "../helpers/fuzz-session.ts";
import type { Prng } from "../helpers/prng.ts";
import { makeDataDir, spawnServer } from "../helpers/processes.ts";

const LANES = 6;
const SCALE = SLOW ? 10 : 1;
/** Room for every case: no rate limit or store bound may change an expected answer. */
const SETTINGS = {
  connection_timeout: 1,
  heartbeat_interval: 2,
  heartbeat_timeout: 30,
  max_message_size: 60_000,
  handshake_rate: 1_000_000,
  handshake_burst: 1_000_000,
  max_pending_per_prefix: 1000,
  max_pending_handshakes: 1000,
  broadcast_rate: 1_000_000,
  broadcast_burst: 1_000_000,
  queue_max_messages: 1_000_000_000,
  queue_max_bytes: 1_000_000_000_000,
  queue_max_per_sender: 1_000_000_000,
} satisfies Partial<ServerSettings>;
const CHALLENGE_SIZE = 2048; // the default

type Make = (t: FuzzTarget, lane: Identity, rng: Prng, index: number) => FuzzCase;
const STAGES: [string, string, number, Make][] = [
  ["a", "bytes before or instead of the response", 120, (t, _l, rng) => preAuthCase(t, rng)],
  ["b", "mutated responses", 100, (t, l, rng) => responseCase(t, l, rng)],
  ["c", "raw frames after authentication", 120, (t, l, rng) => rawFrameCase(t, l, rng)],
  ["d", "sealed garbage message_data", 256, (t, l, rng, i) => garbageCase(t, l, rng, i)],
];
/** Cases per stage against the server process. */
const PROCESS_CASES = 30;

const ran = new Map<string, number>();

/** Enrolls everything a run needs: lanes, canaries, an offline and a revoked client. */
async function makeTarget(
  port: number,
  serverKey: RsaPublicKey,
  enroll: (name: string) => Promise<Identity>,
  revoke: (id: string) => Promise<unknown>,
) {
  const lanes = await Promise.all(Array.from({ length: LANES }, (_, i) => enroll(`lane-${i}`)));
  const fresh = await Promise.all(Array.from({ length: LANES }, (_, i) => enroll(`fresh-${i}`)));
  const [canaryA, canaryB, offline, revoked] = await Promise.all(
    ["canary-a", "canary-b", "offline", "revoked"].map(enroll),
  );
  await revoke((revoked as Identity).id);
  const target: FuzzTarget = {
    port,
    serverKey,
    challengeFrameBytes: 2 + 2 + serverKey.spki.length + CHALLENGE_SIZE,
    maxMessageSize: SETTINGS.max_message_size,
    lanes,
    canaryA: canaryA as Identity,
    canaryB: canaryB as Identity,
    offline: offline as Identity,
    revoked: revoked as Identity,
  };
  return { target, fresh };
}

/** Runs one stage's cases; `check` runs after each (canary and escape checks). */
function runStage(
  stage: (typeof STAGES)[number],
  count: number,
  target: FuzzTarget,
  check: (lane: number, done: number) => Promise<void>,
): Promise<number> {
  const [name, , , make] = stage;
  return runCases({
    stage: name,
    count,
    lanes: LANES,
    make: (rng, index, lane) => make(target, target.lanes[lane] as Identity, rng, index),
    after: check,
  });
}

describe("fuzz: in-process server", () => {
  let c: Cluster;
  let target: FuzzTarget;
  let canary: Canary;
  const log = new MemoryLog();
  const escapes = recordEscapes();
  let logChecked = 0;

  beforeAll(async () => {
    c = await startCluster(SETTINGS, log);
    const made = await makeTarget(
      c.server.port,
      c.server.key.publicKey,
      (name) => c.enroll(name),
      (id) => c.store.revokeClient(id, Math.floor(Date.now() / 1000)),
    );
    target = made.target;
    canary = await Canary.start(c.address, target.canaryA, target.canaryB, made.fresh);
  });

  afterAll(async () => {
    await canary?.[Symbol.asyncDispose]();
    await c?.[Symbol.asyncDispose]();
    escapes[Symbol.dispose]();
  });

  /** After every case: the canaries, then nothing escaped and nothing logged as an error. */
  async function check(lane: number, done: number): Promise<void> {
    await canary.check(lane, done);
    const faults = faultsIn(log.entries.slice(logChecked));
    logChecked = log.entries.length;
    if (faults.length > 0 || escapes.seen.length > 0)
      throw new Error(`escaped: ${[...faults, ...escapes.seen].join("\n")}`);
  }

  for (const stage of STAGES) {
    const [name, title, count] = stage;
    test(
      `stage ${name}: ${title} (${count * SCALE} cases, seed ${SEED})`,
      async () => {
        ran.set(name, await runStage(stage, count * SCALE, target, check));
        // Every fuzzed connection is gone; only the canaries remain, never disconnected.
        await until(() => c.server.connectionCount === 2, 5000, "fuzzed connections to close");
        expect(c.server.router.online.size).toBe(2);
        expect(canary.disconnects).toEqual([]);
        expect(escapes.seen).toEqual([]);
        expect(faultsIn(log.entries)).toEqual([]);
      },
      SLOW ? 3_600_000 : 60_000,
    );
  }
});

describe("fuzz: server process", () => {
  test(
    `the same generators against a server in its own process (seed ${SEED})`,
    async () => {
      await using dir = await makeDataDir();
      await using proc = await spawnServer(dir.dir, {
        ...SETTINGS,
        log_level: "debug", // "socket error" (an exception inside a socket callback) is debug
      });
      const { target, fresh } = await makeTarget(
        proc.port,
        dir.key.publicKey,
        (name) => dir.enroll(name, proc.address),
        (id) => dir.store.revokeClient(id, Math.floor(Date.now() / 1000)),
      );
      await using canary = await Canary.start(proc.address, target.canaryA, target.canaryB, fresh);
      const check = async (lane: number, done: number) => {
        await canary.check(lane, done);
        if (proc.proc.exitCode !== null) throw new Error(`server exited:\n${proc.log()}`);
      };
      let total = 0;
      for (const stage of STAGES)
        total += await runStage(stage, PROCESS_CASES * SCALE, target, check);
      ran.set("process", total);
      expect(proc.proc.exitCode).toBeNull();
      expect(proc.proc.signalCode).toBeNull();
      expect(canary.disconnects).toEqual([]);
      expect(faultsInStderr(proc.log())).toEqual([]);
      expect(proc.log()).toContain("WARN  protocol error"); // the log did record the fuzzing
    },
    SLOW ? 3_600_000 : 60_000,
  );
});

afterAll(() => {
  const total = [...ran.values()].reduce((a, b) => a + b, 0);
  console.log(`fuzz: ${total} cases, seed ${SEED}`);
  console.log(`fuzz stages: ${[...ran].map(([k, v]) => `${k}=${v}`).join(" ")}`);
});
