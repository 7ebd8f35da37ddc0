/**
 * `serve --store redis://…` through the compiled binary, on a real redis-server: the
 * same commands as on the embedded store (keygen, send, listen, revoke, clients with
 * `--store`), the server key recorded in Redis, and the refusals.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { connect } from "../../src/client/client.ts";
import { loadIdentity } from "../../src/client/identity.ts";
import { cleanupAll, EXIT, expectError, sandbox } from "../helpers/binary.ts";
import { notices, until } from "../helpers/cluster.ts";
import { startRedis } from "../helpers/redis.ts";
import { nodeData, sharedPortNodes } from "../helpers/two-nodes.ts";

afterEach(cleanupAll);

describe("serve on Redis", () => {
  test("keygen, live and stored delivery, revoke and clients, all through --store", async () => {
    await using sb = await sandbox();
    await using redis = await startRedis();
    const store = ["--store", redis.url];
    const server = await sb.serve(store);
    // Redis without appendonly/fsync always: said once in the log.
    await server.proc.waitFor(/WARN +redis persistence is appendonly=no/, "stderr");
    for (const name of ["alice", "bob", "carol"]) await sb.keygen(name, server.address, store);

    const asAlice = ["--no-e2e", "--identity", "alice.identity"];
    const offline = await sb.run(["send", "bob", "while away", ...asAlice]);
    expect(offline).toMatchObject({ code: EXIT.OK, stderr: expect.stringContaining("stored") });
    const bob = sb.start(["listen", "--no-e2e", "--identity", "bob.identity"]);
    await bob.waitFor(/alice \(while you were away\): while away$/);
    expect((await sb.run(["send", "bob", "live now", ...asAlice])).code).toBe(EXIT.OK);
    await bob.waitFor(/alice: live now$/);

    const list = await sb.run(["clients", "--json", ...store]);
    const rows = list.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows.map((r) => r.name).sort()).toEqual(["alice", "bob", "carol"]);
    expect(rows.find((r) => r.name === "bob")?.online).toBe(true);

    // Given only the data directory, the tools find the store its server runs on.
    const revoked = await sb.run(["revoke", "carol"]);
    expect(revoked.code).toBe(EXIT.OK);
    expect(revoked.stdout).toContain("the running server has stopped its sessions");
    expectError(
      await sb.run(["status", "--identity", "carol.identity"]),
      EXIT.AUTH,
      /authentication failed|revoked/,
    );
  });

  test("a second server with another key is refused, naming both; one with the same key joins as a second node", async () => {
    await using sb = await sandbox();
    await using redis = await startRedis();
    const first = await sb.serve(["--store", redis.url]);
    const other = join(sb.dir, "other-data");
    mkdirSync(other, { mode: 0o700 });
    const r = await sb.run(["serve", "--port", "0", "--data", other, "--store", redis.url]);
    expect(r.code).toBe(EXIT.SERVER_KEY);
    expect(r.stderr).toContain(`present key ${first.fingerprint}`);
    expect(r.stderr).toMatch(/but this one has SHA256:\S+ \(in .*other-data\)/);
    // One error line (after the log lines of a first start, which then leaves no key behind).
    expect(r.stderr.split("\n").filter((l) => l.startsWith("backbone:"))).toHaveLength(1);
    expect(existsSync(join(other, "server.key"))).toBe(false);

    // The same key (the first node's key files copied) while the first runs.
    const twinData = nodeData(sb, "twin-data");
    // It joins as a second node of the cluster (test/cli/cluster.test.ts), same key.
    const twin = await sb.serve(["--data", twinData, "--store", redis.url]);
    expect(twin.fingerprint).toBe(first.fingerprint);
  });

  test("--store that is not a Redis address: one line", async () => {
    await using sb = await sandbox();
    expectError(
      await sb.run(["clients", "--store", "/tmp/somewhere"]),
      EXIT.USAGE,
      /^backbone: --store: "\/tmp\/somewhere" is not a store address/,
    );
  });

  test("several nodes on one machine share one port with --reuse-port; the kernel spreads the logins", async () => {
    await using sb = await sandbox();
    await using redis = await startRedis();
    const { port, a, b } = await sharedPortNodes(sb, redis.url);
    await sb.keygen("alice", `127.0.0.1:${port}`, ["--store", redis.url]);
    for (let i = 0; i < 16; i++) {
      expect((await sb.run(["status", "--identity", "alice.identity"])).code).toBe(EXIT.OK);
    }
    const logins = (p: typeof a) =>
      p.lines.stderr.filter((l) => /INFO +connect .*name=alice/.test(l)).length;
    expect(logins(a) + logins(b)).toBe(16);
    expect(logins(a)).toBeGreaterThan(0);
    expect(logins(b)).toBeGreaterThan(0);
    // Without --reuse-port a taken port is still refused.
    const third = await sb.run([
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--data",
      join(sb.dir, "c"),
    ]);
    expect(third.code).toBe(EXIT.USAGE);
    expect(third.stderr).toContain(`port ${port} is already in use`);
  });

  test("kill -9 of the node a client is on: it reconnects through the shared port to the other; nothing answered queued is lost", async () => {
    await using sb = await sandbox();
    await using redis = await startRedis({ appendonly: "yes", appendfsync: "always" });
    const { port, a, b } = await sharedPortNodes(sb, redis.url);
    for (const name of ["alice", "carol"])
      await sb.keygen(name, `127.0.0.1:${port}`, ["--store", redis.url]);
    const identity = await loadIdentity(join(sb.dir, "alice.identity"));
    const alice = await connect({ identity, backoff: { initialMs: 50, maxMs: 200 } });
    const carolId = (await alice.resolve("carol")) as string;
    const queued = notices(alice);
    for (let i = 0; i < 10; i++) alice.send(carolId, `before ${i}`);
    await until(() => queued.length === 10, 10_000, "10 queued");
    // The node alice is on dies; she comes back through the same port to the other one.
    const onA = a.lines.stderr.some((l) => /INFO +connect .*name=alice/.test(l));
    const reconnected = new Promise<void>((resolve) => alice.once("connect", () => resolve()));
    (onA ? a : b).proc.kill("SIGKILL");
    await reconnected;
    for (let i = 0; i < 10; i++) alice.send(carolId, `after ${i}`);
    await until(() => queued.length === 20, 15_000, "20 queued");
    expect(queued.every((n) => n.status === "queued")).toBe(true);
    const got: string[] = [];
    const carol = await connect({
      identity: await loadIdentity(join(sb.dir, "carol.identity")),
      incoming: (m) => {
        got.push(new TextDecoder().decode(m.data));
        return m;
      },
    });
    await until(() => got.length === 20, 15_000, "carol's 20 messages");
    expect(got).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `before ${i}`),
      ...Array.from({ length: 10 }, (_, i) => `after ${i}`),
    ]);
    await alice.close();
    await carol.close();
  });

  test("Redis unreachable: a login is refused with STOP service unavailable (one clear line, exit 3); back, it works", async () => {
    await using sb = await sandbox();
    await using redis = await startRedis({ appendonly: "yes", appendfsync: "always" });
    const server = await sb.serve(["--store", redis.url]);
    await sb.keygen("alice", server.address, ["--store", redis.url]);
    expect((await sb.run(["status", "--identity", "alice.identity"])).code).toBe(EXIT.OK);
    await redis.stop();
    const r = await sb.run(["status", "--identity", "alice.identity"]);
    expectError(
      r,
      EXIT.UNREACHABLE,
      /^backbone: the server cannot read its registry now \(its store is unreachable\); try again later$/,
    );
    await server.proc.waitFor(/WARN +login refused: the store is unavailable/, "stderr");
    await redis.start();
    let code = -1;
    for (let i = 0; i < 40 && code !== EXIT.OK; i++) {
      code = (await sb.run(["status", "--identity", "alice.identity"])).code;
      if (code !== EXIT.OK) await Bun.sleep(250);
    }
    expect(code).toBe(EXIT.OK);
  });
});
