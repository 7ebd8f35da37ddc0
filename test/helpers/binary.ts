/**
 * The compiled `backbone` executable, driven as a user would: built once per test
 * process when missing or older than the sources, then spawned in a temporary working
 * directory with its own data directory. Every process a sandbox starts is killed when
 * the sandbox is disposed (`await using`) or by `cleanupAll` (in `afterEach`).
 *
 *   await using sb = await sandbox();
 *   const server = await sb.serve();
 *   await sb.keygen("alice", server.address);
 *   const r = await sb.run(["status", "--identity", "alice.identity"]);
 *   expect(r).toMatchObject({ code: 0, stderr: "" });
 */

import { expect } from "bun:test";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = join(import.meta.dir, "..", "..");
export const BINARY = join(ROOT, "dist", "backbone");

/** How long a one-shot command may run before the test fails. */
const RUN_TIMEOUT_MS = 15_000;
/** Default wait for a line of output. */
export const WAIT_MS = 5_000;

/** Exit codes (src/cli/common.ts), repeated here so a test reads as the README does. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  AUTH: 4,
  SERVER_KEY: 5,
  UNDELIVERABLE: 6,
  REFUSED: 10,
  IDENTITY_ELSEWHERE: 11,
} as const;

// ---- building ---------------------------------------------------------------------

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function isStale(): boolean {
  let built: number;
  try {
    built = statSync(BINARY).mtimeMs;
  } catch {
    return true;
  }
  return Math.max(newestMtime(join(ROOT, "src")), newestMtime(join(ROOT, "build.ts"))) > built;
}

let building: Promise<void> | undefined;

/** Builds dist/backbone with `bun build.ts` if it is missing or older than src/ (once per process). */
export function ensureBinary(): Promise<void> {
  building ??= (async () => {
    if (!isStale()) return;
    const proc = Bun.spawn([process.execPath, "build.ts"], {
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, out, err] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    if (code !== 0) throw new Error(`bun build.ts failed (exit ${code}):\n${out}${err}`);
  })();
  return building;
}

// ---- processes --------------------------------------------------------------------

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The command line that runs the binary with `args`: with `shell` (e.g. `"ulimit -n 64"`
 * or `"umask 000"`), through bash, which runs it first and then execs the binary in
 * its place (same PID).
 */
export function commandLine(args: string[], shell?: string): string[] {
  return shell ? ["bash", "-c", `${shell}; exec "$0" "$@"`, BINARY, ...args] : [BINARY, ...args];
}

export interface SpawnOptions {
  /** Shell commands run before the binary, in the same process (see `commandLine`). */
  shell?: string;
  /** Added to (or, as `undefined`, removed from) the sandbox's environment. */
  env?: Record<string, string | undefined>;
  cwd?: string;
}

export interface RunOptions extends SpawnOptions {
  /** Fed to stdin (default: nothing, as `< /dev/null`). */
  stdin?: string | Uint8Array;
}

type Stream = "stdout" | "stderr";

/** A running `backbone` process with its output collected line by line. */
export class Running {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  readonly lines: Record<Stream, string[]> = { stdout: [], stderr: [] };
  readonly #waiters = new Set<() => void>();
  readonly #pumps: Promise<void>[];
  readonly args: string[];
  #exitCode: number | undefined;
  /** Both output streams read to their end. */
  #drained = false;

  constructor(args: string[], opts: { env: Record<string, string>; cwd: string; shell?: string }) {
    this.args = args;
    this.proc = Bun.spawn(commandLine(args, opts.shell), {
      cwd: opts.cwd,
      env: opts.env,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.#pumps = [this.#pump("stdout"), this.#pump("stderr")];
    void this.proc.exited.then((code) => {
      this.#exitCode = code;
      this.#wake();
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  async #pump(stream: Stream): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of this.proc[stream]) {
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      this.lines[stream].push(...parts);
      this.#wake();
    }
    partial += decoder.decode();
    if (partial) this.lines[stream].push(partial);
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** All of a stream so far. */
  text(stream: Stream = "stdout"): string {
    return this.lines[stream].join("\n");
  }

  /** What the process has written so far, for failure messages. */
  describe(): string {
    return `backbone ${this.args.join(" ")}\n--- stdout:\n${this.text("stdout")}\n--- stderr:\n${this.text("stderr")}`;
  }

  /** Waits until `test` holds, rechecking on every line of output and at exit. */
  async until<T>(test: () => T | undefined, what: string, timeoutMs = WAIT_MS): Promise<T> {
    const found = test();
    if (found !== undefined) return found;
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = test();
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (this.#exitCode !== undefined && this.#drained) {
          done();
          reject(new Error(`exited (${this.#exitCode}) before ${what}\n${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.describe()}`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      void Promise.all(this.#pumps).then(() => {
        this.#drained = true;
        check();
      });
    });
  }

  /**
   * The `nth` line of `stream` matching `re` (already written or still to come): use
   * `nth` when an earlier process could have written the same line (a server's log).
   */
  waitFor(
    re: RegExp,
    stream: Stream = "stdout",
    timeoutMs = WAIT_MS,
    nth = 1,
  ): Promise<RegExpExecArray> {
    return this.until(
      () => {
        let seen = 0;
        for (const line of this.lines[stream]) {
          const m = re.exec(line);
          if (m && ++seen === nth) return m;
        }
        return undefined;
      },
      `${nth > 1 ? `match #${nth} of ` : ""}${re} on ${stream}`,
      timeoutMs,
    );
  }

  /** Writes a line to stdin. */
  write(line: string): void {
    this.proc.stdin.write(`${line}\n`);
    this.proc.stdin.flush();
  }

  /** Closes stdin (end of input). */
  endInput(): void {
    this.proc.stdin.end();
  }

  kill(signal: NodeJS.Signals | number = "SIGTERM"): void {
    if (this.#exitCode === undefined) this.proc.kill(signal);
  }

  /** The exit code, once all output has been read; fails after `timeoutMs`. */
  async exit(timeoutMs = WAIT_MS): Promise<number> {
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`still running after ${timeoutMs} ms\n${this.describe()}`)),
        timeoutMs,
      );
    });
    try {
      const code = await Promise.race([this.proc.exited, timeout]);
      await Promise.all(this.#pumps);
      return code;
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---- sandboxes --------------------------------------------------------------------

const live = new Set<Sandbox>();

export interface ServerInfo {
  proc: Running;
  port: number;
  /** `127.0.0.1:PORT`. */
  address: string;
  /** The server key's `SHA256:…` fingerprint as printed at start. */
  fingerprint: string;
}

/** A temporary working directory and data directory, and the processes run in them. */
export class Sandbox implements AsyncDisposable {
  /** The working directory (where identity files are written). */
  readonly dir: string;
  /** `BACKBONE_DATA`. */
  readonly data: string;
  readonly env: Record<string, string>;
  readonly #procs = new Set<Running>();

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "backbone-cli-"));
    this.data = join(this.dir, "data");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !k.startsWith("BACKBONE_")) env[k] = v;
    }
    // Nothing of the user's: no home directory, no identity or data directory.
    env.HOME = this.dir;
    env.XDG_DATA_HOME = join(this.dir, "xdg");
    env.XDG_STATE_HOME = join(this.dir, "xdg-state"); // E2E state (docs/E2E.md)
    env.BACKBONE_DATA = this.data;
    this.env = env;
    live.add(this);
  }

  #spawnOpts(opts: SpawnOptions): { env: Record<string, string>; cwd: string } {
    const env = { ...this.env };
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    return { env, cwd: opts.cwd ?? this.dir };
  }

  /** Runs a command to its end. */
  async run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const proc = Bun.spawn(commandLine(args, opts.shell), {
      ...this.#spawnOpts(opts),
      stdin:
        opts.stdin === undefined
          ? "ignore"
          : typeof opts.stdin === "string"
            ? new TextEncoder().encode(opts.stdin)
            : opts.stdin,
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), RUN_TIMEOUT_MS);
    try {
      const [code, stdout, stderr] = await Promise.all([
        proc.exited,
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
      ]);
      if (proc.signalCode === "SIGKILL")
        throw new Error(`backbone ${args.join(" ")} still running after ${RUN_TIMEOUT_MS} ms`);
      return { code, stdout, stderr };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts a long-running command (serve, chat, listen). */
  start(args: string[], opts: SpawnOptions = {}): Running {
    const p = new Running(args, { ...this.#spawnOpts(opts), shell: opts.shell });
    this.#procs.add(p);
    return p;
  }

  /** `serve --port 0 --host 127.0.0.1 …`, once it prints its address. */
  async serve(extra: string[] = [], opts: SpawnOptions = {}): Promise<ServerInfo> {
    const proc = this.start(["serve", "--port", "0", "--host", "127.0.0.1", ...extra], opts);
    const m = await proc.waitFor(
      /^listening on 127\.0\.0\.1:(\d+) \(server key (SHA256:[A-Za-z0-9+/]+)\)$/,
      "stdout",
      10_000,
    );
    const port = Number(m[1]);
    return { proc, port, address: `127.0.0.1:${port}`, fingerprint: m[2] as string };
  }

  /** `keygen --name NAME --bits 2048 --server SERVER`; fails the test unless it succeeds. */
  async keygen(name: string, server: string, extra: string[] = []): Promise<RunResult> {
    const r = await this.run([
      "keygen",
      "--name",
      name,
      "--bits",
      "2048",
      "--server",
      server,
      ...extra,
    ]);
    if (r.code !== 0) throw new Error(`keygen ${name} failed (${r.code}): ${r.stderr}`);
    return r;
  }

  /** Sends SIGKILL to every process this sandbox started that still runs. */
  killAll(): void {
    for (const p of this.#procs) p.kill("SIGKILL");
  }

  /** Kills every process this sandbox started and removes its directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    live.delete(this);
    this.killAll();
    const procs = [...this.#procs];
    this.#procs.clear();
    await Promise.all(procs.map((p) => p.proc.exited));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface KeyFiles {
  key: Uint8Array;
  pub: Uint8Array;
}
let serverKeyFiles: Promise<KeyFiles> | undefined;

/**
 * A server key pair made once per test process by the binary itself (its first
 * `keygen`), kept in memory. Copying it saves each sandbox the RSA-3072 key generation
 * (up to a second on a busy machine).
 */
function sharedServerKey(): Promise<KeyFiles> {
  serverKeyFiles ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "backbone-cli-key-"));
    try {
      const data = join(dir, "data");
      const args = ["keygen", "--name", "seed", "--bits", "2048", "--data", data];
      const proc = Bun.spawn([BINARY, ...args, "--out", join(dir, "seed.identity")], {
        cwd: dir,
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      if (code !== 0) throw new Error(`making a server key failed (${code}): ${err}`);
      return {
        key: readFileSync(join(data, "server.key")),
        pub: readFileSync(join(data, "server.pub")),
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return serverKeyFiles;
}

export interface SandboxOptions {
  /**
   * Start without a data directory, so that the first `serve` or `keygen` creates it
   * and a new server key. By default the data directory already holds a server key
   * (the same in every sandbox of this process) and nothing else.
   */
  fresh?: boolean;
}

/** A new sandbox, once the binary is built. */
export async function sandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  await ensureBinary();
  const key = opts.fresh ? undefined : await sharedServerKey();
  const sb = new Sandbox();
  if (key) {
    mkdirSync(sb.data, { mode: 0o700 });
    writeFileSync(join(sb.data, "server.key"), key.key, { mode: 0o600 });
    writeFileSync(join(sb.data, "server.pub"), key.pub, { mode: 0o644 });
  }
  return sb;
}

/** Disposes every sandbox still open (for `afterEach`, after a failed or timed-out test). */
export async function cleanupAll(): Promise<void> {
  await Promise.all([...live].map((s) => s[Symbol.asyncDispose]()));
}

/** A TCP port free at the time of asking (for tests that start a server later). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

/**
 * A failed command as the CLI promises it: the exit code, nothing on stdout, and one
 * line `backbone: …` on stderr matching `message`, with no stack trace.
 */
export function expectError(r: RunResult, code: number, message: RegExp): void {
  const lines = r.stderr.trimEnd().split("\n");
  expect({ code: r.code, stdout: r.stdout, lines: lines.length }).toEqual({
    code,
    stdout: "",
    lines: 1,
  });
  expect(lines[0]).toMatch(/^backbone: /);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

/**
 * Waits until client `id` has published its E2E keys in the sandbox's server store (a
 * client's first E2E-enabled run does so right after login, in the background), so a
 * test's next message to it is end-to-end encrypted rather than sent in plaintext.
 */
export async function keysPublished(sb: Sandbox, id: string, timeoutMs = 10_000): Promise<void> {
  const { SqliteStore } = await import("../../src/store/sqlite.ts");
  const { dataPaths } = await import("../../src/server/datadir.ts");
  const store = new SqliteStore(dataPaths(sb.data).db, { readonly: true });
  try {
    const end = performance.now() + timeoutMs;
    while ((await store.keys.countKeys(id)) === null) {
      if (performance.now() > end) throw new Error(`timed out waiting for ${id}'s E2E keys`);
      await Bun.sleep(10);
    }
  } finally {
    store.close();
  }
}
