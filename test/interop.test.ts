/**
 * Interoperability: test/interop/backbone_client.py, a client written in Python from
 * docs/PROTOCOL.md alone (with the `cryptography` library), against our real server.
 * The Python client talks to the server through a proxy that splits every chunk the
 * server writes, so it must reassemble frames across TCP reads.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newClientId } from "../src/ids.ts";
import { enrollClient } from "../src/server/enroll.ts";
import {
  type Cluster,
  inbox,
  MemoryLog,
  notices,
  startCluster,
  testServerKey,
  until,
} from "./helpers/cluster.ts";

/** The interpreter (BACKBONE_PYTHON overrides, e.g. /usr/bin/python3 for Debian's). */
const PYTHON = process.env.BACKBONE_PYTHON ?? "python3";
const CLIENT = join(import.meta.dir, "interop", "backbone_client.py");
const STORED = 300;
const VECTORS = join(import.meta.dir, "vectors", "handshake.json");
const hasPython = (() => {
  try {
    const opts = { stdout: "ignore", stderr: "ignore" } as const;
    return Bun.spawnSync([PYTHON, "-c", "import cryptography"], opts).exitCode === 0;
  } catch {
    return false; // no python3 at all
  }
})();

/** The Python client as a child process, driven line by line. */
class PyClient {
  readonly lines: string[] = [];
  #seen = 0;
  readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  readonly #exited: Promise<number>;
  readonly #reading: Promise<void>;

  constructor(identityFile: string, server?: string) {
    this.proc = Bun.spawn([PYTHON, CLIENT, identityFile, ...(server ? [server] : [])], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.#exited = this.proc.exited;
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of this.proc.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      this.lines.push(...parts);
    }
  }

  /** Sends one command line. */
  cmd(line: string): void {
    this.proc.stdin.write(`${line}\n`);
    this.proc.stdin.flush();
  }

  /** Waits for the next output line (after those already taken) starting with `prefix`. */
  async next(prefix: string, ms = 5000): Promise<string> {
    let found = -1;
    await until(
      () => {
        found = this.lines.findIndex((l, i) => i >= this.#seen && l.startsWith(prefix));
        return found >= 0;
      },
      ms,
      `a line starting with ${JSON.stringify(prefix)} (got ${JSON.stringify(this.lines)})`,
    );
    this.#seen = found + 1;
    return this.lines[found] as string;
  }

  /** The JSON of the next line `<prefix> <json>`. */
  async json(prefix: string): Promise<Record<string, unknown>> {
    const line = await this.next(`${prefix} `);
    return JSON.parse(line.slice(prefix.length + 1));
  }

  /** The exit status, once the process has ended and all its output is in `lines`. */
  async exited(): Promise<number> {
    const code = await this.#exited;
    await this.#reading;
    return code;
  }

  async stderr(): Promise<string> {
    return new Response(this.proc.stderr).text();
  }

  kill(): void {
    this.proc.kill();
  }
}

/**
 * A proxy that forwards client → server bytes as they come and server → client bytes
 * in pieces (1 byte, then the rest in two halves, a few milliseconds apart), so every
 * frame header and payload the client reads is split across TCP reads.
 */
async function splittingProxy(port: number): Promise<{ address: string; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = createConnection({ host: "127.0.0.1", port, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    let chain = Promise.resolve();
    const pause = () => new Promise((r) => setTimeout(r, 3));
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      chain = chain.then(async () => {
        const half = 1 + Math.floor((chunk.length - 1) / 2);
        for (const piece of [chunk.subarray(0, 1), chunk.subarray(1, half), chunk.subarray(half)]) {
          if (piece.length === 0 || client.destroyed) continue;
          client.write(piece);
          await pause();
        }
      });
    });
    upstream.on("end", () => void chain.then(() => client.end()));
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", () => sockets.delete(client));
    upstream.on("close", () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no proxy address");
  return {
    address: `127.0.0.1:${address.port}`,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

function fingerprint(spkiDer: Uint8Array): string {
  return `SHA256:${createHash("sha256").update(spkiDer).digest("base64").replace(/=+$/, "")}`;
}

if (!hasPython) {
  test.skip("python3-cryptography not installed; .ci/run installs it", () => {});
}

describe.skipIf(!hasPython)("a Python client written from docs/PROTOCOL.md", () => {
  const log = new MemoryLog();
  let c: Cluster;
  let dir: string;
  let proxy: { address: string; close(): void };
  const started: PyClient[] = [];

  /** Enrolls `name` with its own key and writes its identity file (mode 0600). */
  async function identityFile(name: string): Promise<{ id: string; file: string; text: string }> {
    const { record, identityText } = await enrollClient(c.store, {
      name,
      server: c.address,
      serverKey: await testServerKey(),
      bits: 2048,
    });
    const file = join(dir, `${name}.identity`);
    writeFileSync(file, identityText, { mode: 0o600 });
    chmodSync(file, 0o600);
    return { id: record.id, file, text: identityText };
  }

  function python(file: string, server?: string): PyClient {
    const py = new PyClient(file, server);
    started.push(py);
    return py;
  }

  beforeAll(async () => {
    // Short heartbeats: the Python client must keep its session alive by itself.
    c = await startCluster({ heartbeat_interval: 0.3, heartbeat_timeout: 1.5 }, log);
    dir = mkdtempSync(join(tmpdir(), "backbone-interop-"));
    proxy = await splittingProxy(c.server.port);
  });

  afterAll(async () => {
    for (const py of started) py.kill();
    proxy?.close();
    await c?.[Symbol.asyncDispose]();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("its key schedule reproduces test/vectors/handshake.json", () => {
    const run = Bun.spawnSync([PYTHON, CLIENT, "--vectors", VECTORS]);
    expect(run.stderr.toString()).toBe("");
    expect(run.stdout.toString()).toBe("ok server-2048\nok server-3072\nok server-4096\n");
    expect(run.exitCode).toBe(0);
  }, 10_000);

  test("a whole session: stored, direct, broadcast, status, notices, ping, quit", async () => {
    const alice = await c.client("alice");
    const fromPy = inbox(alice);
    const py = await identityFile("py");
    const bob = await c.enroll("bob"); // registered, never online

    // Stored while the Python client is offline: more than one batch of acknowledged
    // delivery (at most 256), so the rest comes only if its ACKs are right.
    const queued = notices(alice);
    for (let i = 0; i < STORED; i++) alice.send(py.id, `stored ${i}`);
    await alice.ping();
    expect(queued.length).toBe(STORED);
    expect(queued.every((n) => n.status === "queued")).toBe(true);
    expect(await c.store.pendingCount()).toBe(STORED);

    const p = python(py.file, proxy.address);
    const config = await p.json("CONFIG");
    expect(config).toEqual({
      heartbeat_interval: 0.3,
      heartbeat_timeout: 1.5,
      connection_timeout: 10,
      max_message_size: 65498,
    });
    for (let i = 0; i < STORED; i++) {
      expect(await p.next("MSG ")).toBe(`MSG stored ${alice.id} stored ${i}`);
    }
    // Acknowledged delivery (ACK 0, then the running count): the store is empty.
    await until(async () => (await c.store.pendingCount()) === 0, 3000, "the store to empty");

    // Direct messages both ways, in order; text with non-ASCII and an escaped newline.
    for (let i = 0; i < 5; i++) p.cmd(`send ${alice.id} from python ${i} ✓`);
    for (let i = 0; i < 5; i++) alice.send(py.id, `to python ${i} é\nnext line`);
    for (let i = 0; i < 5; i++) {
      expect(await p.next("MSG ")).toBe(`MSG direct ${alice.id} to python ${i} é\\nnext line`);
    }
    await until(() => fromPy.length === 5, 3000, "five messages from python");
    expect(fromPy).toEqual(
      Array.from({ length: 5 }, (_, i) => ({
        from: py.id,
        text: `from python ${i} ✓`,
        kind: "direct",
      })),
    );

    // The largest message, both ways (many TCP reads, split by the proxy).
    const big = "x".repeat(65498);
    alice.send(py.id, big);
    expect(await p.next("MSG ")).toBe(`MSG direct ${alice.id} ${big}`);
    p.cmd(`send ${alice.id} ${big}`);
    await until(() => fromPy.length === 6, 3000, "the large message");
    expect(fromPy[5]?.text).toBe(big);

    // Broadcasts both ways.
    alice.broadcast("all hands");
    expect(await p.next("MSG ")).toBe(`MSG broadcast ${alice.id} all hands`);
    p.cmd("broadcast hello everyone");
    await until(() => fromPy.length === 7, 3000, "the broadcast");
    expect(fromPy[6]).toEqual({ from: py.id, text: "hello everyone", kind: "broadcast" });

    // SERVER_STATUS and CLIENT_STATUS.
    p.cmd("status");
    const status = await p.json("STATUS");
    expect(status).toMatchObject({
      protocol: "backbone/1",
      server_key: c.server.key.publicKey.fingerprint,
      clients_online: 2,
      clients_registered: 3,
      messages_queued: 0,
      messages_stored: STORED,
      messages_discarded: 0, // its ACKs were well-formed (a bad one is discarded and counted)
    });
    for (const key of ["version", "time", "uptime", "messages_routed", "connections"]) {
      expect(status).toHaveProperty(key);
    }
    p.cmd(`clients alice ${py.id} BOB nobody`);
    expect(await p.json("CLIENTS")).toEqual({
      clients: [
        { id: alice.id, name: "alice", online: true, last_seen: expect.any(Number) },
        { id: py.id, name: "py", online: true, last_seen: expect.any(Number) },
        { id: bob.id, name: "bob", online: false, last_seen: null },
        { query: "nobody", error: "unknown" },
      ],
    });

    // NOTICEs: queued for an offline registered client, unknown for an unknown ID.
    p.cmd(`send ${bob.id} for later`);
    expect(await p.json("NOTICE")).toMatchObject({ address: bob.id, status: "queued" });
    const stranger = newClientId();
    p.cmd(`send ${stranger} hello?`);
    expect(await p.json("NOTICE")).toMatchObject({ address: stranger, status: "unknown" });

    // Idle for several heartbeat timeouts: its heartbeats keep the session up.
    await Bun.sleep(2500);
    p.cmd("ping");
    expect(await p.next("pong")).toBe("pong");
    expect(p.lines.filter((l) => l.startsWith("STOP") || l.startsWith("ERROR"))).toEqual([]);
    expect((await alice.clientStatus([py.id]))[0]).toMatchObject({ online: true });

    // quit: STOP, exit 0, and the server logs the client off.
    p.cmd("quit");
    const code = await p.exited();
    const errors = p.lines.filter((l) => l.startsWith("ERROR"));
    expect({ code, errors, stderr: await p.stderr() }).toEqual({ code: 0, errors: [], stderr: "" });
    await until(() => log.find("disconnect").some((e) => e.fields.id === py.id), 3000, "logoff");
    expect(log.find("disconnect").find((e) => e.fields.id === py.id)?.fields).toMatchObject({
      name: "py",
      reason: "client stop: bye",
    });
    expect((await alice.clientStatus([py.id]))[0]).toMatchObject({ online: false });
    await alice.close();
  }, 20_000);

  test("a second login with the same identity: the first gets STOP and exits 0", async () => {
    const py = await identityFile("twice");
    const first = python(py.file, proxy.address);
    await first.next("CONFIG ");
    const second = python(py.file);
    await second.next("CONFIG ");
    expect(await first.exited()).toBe(0);
    expect(first.lines.at(-1)).toBe("STOP replaced by a new connection");
    expect(await first.stderr()).toBe("");
    second.cmd("ping");
    await second.next("pong");
    second.proc.stdin.end(); // end of input: STOP, exit 0
    expect(await second.exited()).toBe(0);
    expect(second.lines.filter((l) => l.startsWith("ERROR"))).toEqual([]);
  }, 10_000);

  test("a server key other than the pinned one: error naming both, nothing sent", async () => {
    const py = await identityFile("pinned-elsewhere");
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    const otherPem = other.export({ type: "spki", format: "pem" }).toString();
    const otherDer = other.export({ type: "spki", format: "der" });
    const edited = py.text.replace(
      /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----\n?/,
      otherPem,
    );
    expect(edited).not.toBe(py.text);
    writeFileSync(py.file, edited);
    const failures = log.find("auth failed").length;
    const p = python(py.file);
    expect(await p.exited()).not.toBe(0);
    expect(p.lines).toEqual([
      `ERROR server key mismatch expected ${fingerprint(otherDer)} got ${c.server.key.publicKey.fingerprint} (possible man-in-the-middle)`,
    ]);
    expect(log.find("auth failed").length).toBe(failures);
  }, 10_000);

  test("a revoked client is refused: authentication failed", async () => {
    const py = await identityFile("revoked");
    await c.store.revokeClient(py.id, Math.floor(Date.now() / 1000));
    const p = python(py.file);
    expect(await p.exited()).toBe(1);
    expect(p.lines).toEqual(["ERROR authentication failed"]);
  }, 10_000);
  test("a client that knows nothing of rooms is unaffected by them, even when invited", async () => {
    const alice = await c.client("ralice");
    const carol = await c.client("rcarol");
    const py = await identityFile("rpy");
    const p = python(py.file, proxy.address);
    await p.json("CONFIG");
    await alice.rooms.create("interop", { public: true });
    await carol.rooms.join("interop");
    // An invitation event (ROOM, 0x17) goes to the invitee: it discards it (reserved).
    await alice.rooms.invite("interop", py.id);
    const gotCarol = inbox(carol);
    for (let i = 0; i < 3; i++) alice.send("#interop", `room ${i}`);
    alice.send(py.id, "direct after the room");
    expect(await p.next("MSG ")).toBe(`MSG direct ${alice.id} direct after the room`);
    await until(() => gotCarol.length === 3, 3000, "the room messages");
    p.cmd("ping");
    await p.next("pong");
    expect(p.lines.filter((l) => l.startsWith("ERROR") || l.startsWith("MSG"))).toEqual([
      `MSG direct ${alice.id} direct after the room`,
    ]);
  });
});
