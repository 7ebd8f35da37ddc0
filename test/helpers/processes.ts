/**
 * Servers in their own processes (test/helpers/server-process.ts), for tests that need
 * a real crash (`kill -9`) or a frozen server (SIGSTOP), and a data directory that
 * outlives them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { Identity } from "../../src/client/identity.ts";
import { writeSecretFile } from "../../src/crypto/keyfile.ts";
import { toPem } from "../../src/crypto/pem.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import { dataPaths } from "../../src/server/datadir.ts";
import type { ServerSettings } from "../../src/server/settings.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { enrollIdentity } from "./cluster.ts";

const SCRIPT = join(import.meta.dir, "server-process.ts");
/** How long a server process may take to print its address. */
const START_TIMEOUT_MS = 10_000;

/** A data directory (key and store) shared by successive server processes. */
export interface DataDir extends AsyncDisposable {
  dir: string;
  key: RsaPrivateKey;
  /** The test's own connection to the store (as the CLI would open it). */
  store: SqliteStore;
  /** Registers a client; its identity points at `server` (host:port). */
  enroll(name: string, server: string): Promise<Identity>;
}

/** A fresh data directory with a 2048-bit server key and an empty store. */
export async function makeDataDir(): Promise<DataDir> {
  const dir = mkdtempSync(join(tmpdir(), "backbone-proc-"));
  const pair = await generateRsaKeyPair(2048);
  writeSecretFile(dataPaths(dir).key, toPem("PRIVATE KEY", pair.privatePkcs8));
  const key = await RsaPrivateKey.fromPkcs8(pair.privatePkcs8);
  const store = new SqliteStore(dataPaths(dir).db);
  return {
    dir,
    key,
    store,
    enroll: (name, server) => enrollIdentity(store, key, server, name),
    async [Symbol.asyncDispose]() {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ServerProcess extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  port: number;
  /** `127.0.0.1:PORT`. */
  address: string;
  /** What the process wrote to stderr so far (its log), for failure messages. */
  log(): string;
  /** Resolves with the exit code (or signal number) once the process is gone. */
  exited: Promise<number>;
  /** SIGCONT (in case it was stopped), then SIGKILL, and wait for it to go. */
  kill(): Promise<void>;
}

/**
 * Starts a server process on `dir` and waits for its `listening on HOST:PORT` line.
 * Settings default to host 127.0.0.1 and port 0. Dispose (or `kill`) always ends it.
 */
export async function spawnServer(
  dir: string,
  settings: Partial<ServerSettings> = {},
): Promise<ServerProcess> {
  const proc = Bun.spawn([process.execPath, SCRIPT, dir, JSON.stringify(settings)], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env },
  });
  let stderr = "";
  // Both pipes are drained for the process's whole life, so it can never block on them.
  void (async () => {
    for await (const chunk of proc.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const listening = Promise.withResolvers<number>();
  void (async () => {
    let stdout = "";
    for await (const chunk of proc.stdout) {
      stdout += new TextDecoder().decode(chunk);
      const m = /listening on \S+:(\d+)\n/.exec(stdout);
      if (m) listening.resolve(Number(m[1]));
    }
    listening.reject(new Error(`server process ended before listening:\n${stderr}`));
  })();
  const timer = setTimeout(
    () => listening.reject(new Error(`server process did not start:\n${stderr}`)),
    START_TIMEOUT_MS,
  );
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGCONT");
      proc.kill("SIGKILL");
    }
    await proc.exited;
  };
  let port: number;
  try {
    port = await listening.promise;
  } catch (err) {
    await kill();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    proc,
    port,
    address: `127.0.0.1:${port}`,
    log: () => stderr,
    exited: proc.exited,
    kill,
    [Symbol.asyncDispose]: kill,
  };
}
