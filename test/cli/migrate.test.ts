/**
 * `backbone migrate` through the compiled binary, with a real server and a real
 * redis-server: a data directory's clients and held messages copied to Redis and back
 * to a new data directory, and delivered from there.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { RedisStore } from "../../src/store/redis/store.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { cleanupAll, EXIT, expectError, sandbox } from "../helpers/binary.ts";
import { startRedis } from "../helpers/redis.ts";

afterEach(cleanupAll);

describe("migrate", () => {
  test("a data directory to Redis and back keeps every client and held message", async () => {
    await using sb = await sandbox();
    await using redis = await startRedis();
    const server = await sb.serve();
    for (const name of ["alice", "bob", "carol"]) await sb.keygen(name, server.address);
    for (const text of ["one", "two", "three"]) {
      const r = await sb.run(["send", "bob", text, "--identity", "alice.identity"]);
      expect(r.stderr).toContain("stored");
    }
    const asAlice = ["--identity", "alice.identity"];
    expect((await sb.run(["room", "create", "ops", ...asAlice])).code).toBe(EXIT.OK);
    expect((await sb.run(["room", "invite", "ops", "bob", ...asAlice])).code).toBe(EXIT.OK);
    expect((await sb.run(["revoke", "carol"])).code).toBe(EXIT.OK);

    // Refused while the server runs on the source.
    const busy = await sb.run(["migrate", "--from", sb.data, "--to", redis.url]);
    expectError(
      busy,
      EXIT.USAGE,
      /^backbone: a server \(pid \d+\) is running on .*; stop it first$/,
    );
    server.proc.kill("SIGTERM");
    expect(await server.proc.exit()).toBe(0);

    const there = await sb.run(["migrate", "--from", sb.data, "--to", redis.url]);
    expect(there).toMatchObject({ code: EXIT.OK, stderr: "" });
    expect(there.stdout).toContain(
      "copied 3 clients (1 E2E key bundle), 1 room and 3 held messages for 1 recipient",
    );

    const source = new SqliteStore(join(sb.data, "backbone.db"));
    const copy = await RedisStore.open(redis.url);
    const strip = (c: { online: boolean }) => ({ ...c, online: false });
    expect((await copy.listClients()).map(strip)).toEqual((await source.listClients()).map(strip));
    const bob = (await source.findClient("bob"))?.id as string;
    const held = (m: { sender: string; queuedAt: number; data: Uint8Array }) => ({
      sender: m.sender,
      queuedAt: m.queuedAt,
      data: new TextDecoder().decode(m.data),
    });
    expect((await copy.peek(bob, 10)).map(held)).toEqual((await source.peek(bob, 10)).map(held));
    // alice's E2E bundle (published by her first send) came along, prekeys and all.
    const aliceId = (await source.findClient("alice"))?.id as string;
    expect(await copy.keys.exportKeys(aliceId)).toEqual(await source.keys?.exportKeys(aliceId));
    expect(await copy.keys.countKeys(aliceId)).toBeGreaterThan(0);
    expect(await copy.rooms.getRoom("ops")).toEqual(await source.rooms.getRoom("ops"));
    expect(await copy.rooms.roomMembers("ops")).toEqual(await source.rooms.roomMembers("ops"));
    expect((await copy.rooms.roomMembers("ops")).map((m) => m.state)).toEqual([
      "member",
      "invited",
    ]);
    source.close();
    copy.close();

    // Into a store that is not empty: refused, nothing written.
    const again = await sb.run(["migrate", "--from", sb.data, "--to", redis.url]);
    expectError(again, EXIT.USAGE, /^backbone: the target already holds 3 clients and 3 messages/);

    // Back to a new data directory, which a server then serves with the same key.
    const back = join(sb.dir, "data2");
    const home = await sb.run(["migrate", "--from", redis.url, "--to", back]);
    expect(home.code).toBe(EXIT.OK);
    for (const f of ["server.key", "server.pub"]) copyFileSync(join(sb.data, f), join(back, f));
    const server2 = await sb.serve(["--data", back, "--port", String(server.port)]);
    const listen = sb.start(["listen", "--identity", "bob.identity"]);
    await listen.until(() => (listen.lines.stdout.length >= 3 ? true : undefined), "3 messages");
    expect(
      listen.lines.stdout.map((l) => l.replace(/^.*alice \(while you were away\): /, "")),
    ).toEqual(["one", "two", "three"]);
    const carol = await sb.run(["status", "--identity", "carol.identity"]);
    expect(carol.code).toBe(EXIT.AUTH); // still revoked
    void server2;
  });

  test("one-line refusals: a missing source, the same store twice", async () => {
    await using sb = await sandbox();
    mkdirSync(join(sb.dir, "empty"));
    const missing = await sb.run([
      "migrate",
      "--from",
      join(sb.dir, "empty"),
      "--to",
      join(sb.dir, "x"),
    ]);
    expectError(missing, EXIT.USAGE, /^backbone: no server data in .*empty$/);
    const same = await sb.run(["migrate", "--from", sb.data, "--to", sb.data]);
    expectError(same, EXIT.USAGE, /^backbone: --from and --to name the same store$/);
  });
});
