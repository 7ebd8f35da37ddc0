/**
 * The fuzz harness behind test/hardening/fuzz.test.ts: seeded, reproducible cases run
 * in a few concurrent lanes against a real server, each case followed by a canary
 * check (two long-lived library clients exchange a message both ways; every few cases
 * a fresh library login), plus recorders for anything that escapes.
 *
 * Every case draws its bytes from its own PRNG, seeded from (seed, stage, index), so a
 * failing case is reproduced alone, whatever ran before it:
 *
 *   BACKBONE_FUZZ_SEED=S BACKBONE_FUZZ_CASE=c:17 bun test test/hardening/fuzz.test.ts
 *
 * Environment: BACKBONE_SLOW=1 runs many thousands of cases (and, without a seed, a
 * random one, printed); BACKBONE_FUZZ_SEED fixes the seed; BACKBONE_FUZZ_CASE
 * (`stage:index`) runs one case; BACKBONE_FUZZ_LOG=1 prints each case.
 */
import { type Client, connect } from "../../src/client/client.ts";
import type { Identity } from "../../src/client/identity.ts";
import type { LogEntry } from "./cluster.ts";
import { Prng } from "./prng.ts";

export const SLOW = process.env.BACKBONE_SLOW === "1";
/** The default run's seed: fixed, so CI runs the same cases every time. */
const DEFAULT_SEED = 20_260_101;

function seedFromEnv(): number {
  const text = process.env.BACKBONE_FUZZ_SEED;
  if (text !== undefined && text !== "") {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
      throw new Error(`BACKBONE_FUZZ_SEED must be an integer 0..2^32-1, not ${text}`);
    return n;
  }
  return SLOW ? (crypto.getRandomValues(new Uint32Array(1))[0] as number) : DEFAULT_SEED;
}

export const SEED = seedFromEnv();
/** BACKBONE_FUZZ_LOG=1 prints every case as it passes. */
const LOG = process.env.BACKBONE_FUZZ_LOG === "1";
/** `stage:index` of the one case to run, or null for all. */
export const ONLY = /^([a-z]+):(\d+)$/.exec(process.env.BACKBONE_FUZZ_CASE ?? "");

/** The PRNG of one case: independent of every other case and of the run's order. */
export function caseRng(seed: number, stage: string, index: number): Prng {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const c of `${stage}:${index}`) {
    h = Math.imul(h ^ (c.codePointAt(0) as number), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  return new Prng(Math.imul(h ^ (h >>> 16), 0xc2b2ae35) >>> 0);
}

/** One generated case: a one-line description and the run that checks its outcome. */
export interface FuzzCase {
  what: string;
  run(): Promise<void>;
}

export interface RunOptions {
  stage: string;
  count: number;
  lanes: number;
  /** Builds case `index` from its PRNG, to run on `lane`. */
  make(rng: Prng, index: number, lane: number): FuzzCase;
  /** Checks run after every case (the canary). */
  after(lane: number, done: number): Promise<void>;
}

/**
 * Runs `count` cases, case i on lane i mod lanes, lanes concurrently and each lane in
 * order. Stops at the first failure and throws it with the seed, the case and the
 * command that reproduces it. Returns how many cases ran.
 */
export async function runCases(o: RunOptions): Promise<number> {
  let ran = 0;
  let failure: Error | null = null;
  const wanted = (i: number) => !ONLY || (ONLY[1] === o.stage && Number(ONLY[2]) === i);
  const lane = async (l: number) => {
    for (let i = l; i < o.count && !failure; i += o.lanes) {
      if (!wanted(i)) continue;
      const c = o.make(caseRng(SEED, o.stage, i), i, l);
      try {
        await c.run();
        if (LOG) console.log(`${o.stage}:${i} ${c.what}`);
        await o.after(l, ++ran);
      } catch (err) {
        const repro = `BACKBONE_FUZZ_SEED=${SEED} BACKBONE_FUZZ_CASE=${o.stage}:${i} bun test test/hardening/fuzz.test.ts`;
        failure ??= new Error(
          `fuzz case ${o.stage}:${i} failed (seed ${SEED}): ${c.what}\n  ${(err as Error).message}\n  reproduce: ${repro}`,
          { cause: err },
        );
        console.error(failure.message);
      }
    }
  };
  await Promise.all(Array.from({ length: o.lanes }, (_, l) => lane(l)));
  if (failure) throw failure;
  return ran;
}

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a canary waits for its message (a condition, not a timing assertion). */
const CANARY_WAIT_MS = 5000;

/**
 * Two long-lived library clients that exchange a message both ways after every case,
 * and a fresh library login (per lane, its own identity) every `freshEvery` cases.
 */
export class Canary implements AsyncDisposable {
  readonly a: Client;
  readonly b: Client;
  /** Every disconnect either canary saw (there must be none). */
  readonly disconnects: string[] = [];
  readonly #server: string;
  readonly #fresh: Identity[];
  readonly #freshEvery: number;
  readonly #waiters = new Map<string, () => void>();
  #n = 0;
  freshLogins = 0;

  private constructor(a: Client, b: Client, server: string, fresh: Identity[], every: number) {
    this.a = a;
    this.b = b;
    this.#server = server;
    this.#fresh = fresh;
    this.#freshEvery = every;
    for (const c of [a, b]) {
      c.on("disconnect", (e) => this.disconnects.push(`${c.name}: ${e.reason}`));
      c.on("message", (m) => {
        // Fuzzed broadcasts and direct messages reach the canaries too: match exactly.
        const key = `${m.from}>${c.id}:${new TextDecoder().decode(m.data)}`;
        this.#waiters.get(key)?.();
      });
    }
  }

  /** Connects the two canaries; `fresh` holds one identity per lane for fresh logins. */
  static async start(
    server: string,
    a: Identity,
    b: Identity,
    fresh: Identity[],
    freshEvery = 16,
  ): Promise<Canary> {
    const opts = { server, reconnect: false } as const;
    const [ca, cb] = await Promise.all([
      connect({ identity: a, ...opts }),
      connect({ identity: b, ...opts }),
    ]);
    return new Canary(ca, cb, server, fresh, freshEvery);
  }

  #expect(from: Client, to: Client, token: string): Promise<void> {
    const key = `${from.id}>${to.id}:${token}`;
    const got = new Promise<void>((resolve) => this.#waiters.set(key, resolve));
    from.send(to.id, token);
    return within(got, CANARY_WAIT_MS, `canary message ${token}`).finally(() =>
      this.#waiters.delete(key),
    );
  }

  /** A round trip a → b → a, and every `freshEvery`-th time a fresh login on `lane`. */
  async check(lane: number, done: number): Promise<void> {
    if (this.disconnects.length > 0) throw new Error(`canary lost: ${this.disconnects[0]}`);
    const token = `canary ${lane} ${++this.#n}`;
    await this.#expect(this.a, this.b, token);
    await this.#expect(this.b, this.a, token);
    if (done % this.#freshEvery !== 0) return;
    const identity = this.#fresh[lane % this.#fresh.length] as Identity;
    const fresh = await connect({ identity, server: this.#server, reconnect: false });
    try {
      await within(fresh.ping(), CANARY_WAIT_MS, "fresh login ping");
      this.freshLogins++;
    } finally {
      await fresh.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all([this.a.close(), this.b.close()]);
  }
}

/**
 * Records uncaught exceptions and unhandled rejections of the test process (where the
 * in-process server runs). `bun test` also fails a test on them; this makes the
 * "none escaped" assertion explicit.
 */
export function recordEscapes(): { seen: string[] } & Disposable {
  const seen: string[] = [];
  const onException = (err: unknown) =>
    seen.push(`uncaughtException: ${(err as Error)?.stack ?? err}`);
  const onRejection = (err: unknown) =>
    seen.push(`unhandledRejection: ${(err as Error)?.stack ?? err}`);
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return {
    seen,
    [Symbol.dispose]() {
      process.off("uncaughtException", onException);
      process.off("unhandledRejection", onRejection);
    },
  };
}

/**
 * Server log entries that mean something escaped or broke: anything at level error,
 * and "socket error" — Bun hands an exception thrown inside a socket callback to the
 * socket's `error` handler (not to uncaughtException), which the server logs so.
 */
export function faultsIn(entries: readonly LogEntry[]): string[] {
  return entries
    .filter((e) => e.level === "error" || e.event === "socket error")
    .map((e) => `${e.level} ${e.event} ${JSON.stringify(e.fields)}`);
}

/**
 * The same for a server process's stderr (text log lines `TIME LEVEL event k=v…`): also
 * every line that is not a log line (a stack trace, a runtime warning).
 */
export function faultsInStderr(stderr: string): string[] {
  const faults: string[] = [];
  for (const line of stderr.split("\n")) {
    if (line.trim() === "") continue;
    const m = /^\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO|WARN|ERROR) +(\S.*)$/.exec(line);
    if (!m) faults.push(`not a log line: ${line}`);
    else if (m[1] === "ERROR" || (m[2] as string).startsWith("socket error")) faults.push(line);
  }
  return faults;
}
