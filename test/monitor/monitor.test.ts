/**
 * `serve --monitor`: /metrics read by real Prometheus tooling while real clients send,
 * /varz and /connz, /healthz turning 503 when the store's disk is full or the server
 * runs out of descriptors and 200 again after, the token rule, and no message
 * contents anywhere. The compiled binary, real sockets, a real SQLite file.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, copyFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, connect } from "../../src/client/client.ts";
import { cleanupAll, EXIT, expectError, type Sandbox, sandbox } from "../helpers/binary.ts";
import { fillDisk, onTmpfs, tmpfsMountable } from "../helpers/tmpfs.ts";
import { get, monitorUrl, scrape, serveMonitored, until } from "./helpers.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

/** Enrolls `names` with keygen; returns their IDs. */
async function enroll(sb: Sandbox, address: string, names: string[]) {
  const ids: Record<string, string> = {};
  for (const name of names) {
    const r = await sb.keygen(name, address);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  return ids;
}

const login = (sb: Sandbox, name: string) =>
  connect({ identity: join(sb.dir, `${name}.identity`), reconnect: false });

/** Something no endpoint may ever show: it travels only inside messages. */
const SECRET = "zebra-quartz-7f3a-message-body";

describe("metrics, varz and connz", () => {
  test("counters move with real traffic; promtool and the Python parser accept /metrics; no contents exposed", async () => {
    await using sb = await sandbox();
    const server = await serveMonitored(sb);
    const ids = await enroll(sb, server.address, ["alice", "bob", "carol"]);
    const before = await scrape(server.url);
    expect(before.value("backbone_sessions")).toBe(0);
    expect(
      before.samples.every((s) => typeof s.labels.node === "string" && s.labels.node !== ""),
    ).toBe(true);

    const clients: Client[] = [];
    try {
      const alice = await login(sb, "alice");
      const bob = await login(sb, "bob");
      clients.push(alice, bob);
      const got: string[] = [];
      bob.on("message", (m) => got.push(new TextDecoder().decode(m.data)));
      const notices: string[] = [];
      alice.on("notice", (n) => notices.push(n.status));
      for (let i = 0; i < 5; i++) alice.send(ids.bob as string, `${SECRET} ${i}`);
      for (let i = 0; i < 3; i++) alice.send(ids.carol as string, `${SECRET} stored ${i}`);
      alice.send("00000000-0000-4000-8000-000000000000", `${SECRET} to nobody`);
      alice.broadcast(`${SECRET} to all`);
      await until(
        async () => (got.length >= 6 && notices.length >= 4 ? true : undefined),
        "delivery and notices",
      );
      expect(notices.sort()).toEqual(["queued", "queued", "queued", "unknown"]);

      const after = await scrape(server.url);
      const d = (name: string, labels: Record<string, string> = {}) =>
        after.value(name, labels) - before.value(name, labels);
      expect({
        sessions: after.value("backbone_sessions"),
        connections: after.value("backbone_connections"),
        handshakesOk: d("backbone_handshakes_total", { outcome: "ok" }),
        direct: d("backbone_messages_received_total", { kind: "direct" }),
        broadcast: d("backbone_messages_received_total", { kind: "broadcast" }),
        room: d("backbone_messages_received_total", { kind: "room" }),
        deliveredDirect: d("backbone_messages_delivered_total", { kind: "direct" }),
        deliveredBroadcast: d("backbone_messages_delivered_total", { kind: "broadcast" }),
        stored: d("backbone_messages_stored_total"),
        unknown: d("backbone_messages_rejected_total", { reason: "unknown_recipient" }),
        queue: after.value("backbone_offline_queue_messages"),
      }).toEqual({
        sessions: 2,
        connections: 2,
        handshakesOk: 2,
        direct: 9,
        broadcast: 1,
        room: 0,
        deliveredDirect: 5,
        deliveredBroadcast: 1,
        stored: 3,
        unknown: 1,
        queue: 3,
      });
      expect(d("backbone_received_bytes_total")).toBeGreaterThan(10 * SECRET.length);
      expect(d("backbone_sent_bytes_total")).toBeGreaterThan(6 * SECRET.length);
      expect(d("backbone_received_frames_total")).toBeGreaterThanOrEqual(10);
      expect(after.value("process_resident_memory_bytes")).toBeGreaterThan(1e6);
      expect(after.value("backbone_up")).toBe(1);
      // The store latency histogram saw the offline writes.
      expect(
        after.value("backbone_store_latency_seconds_count", { op: "enqueue" }),
      ).toBeGreaterThanOrEqual(1);

      // /varz: NATS-shaped server figures.
      const varz = JSON.parse((await get(`${server.url}varz`)).body);
      expect(varz).toMatchObject({
        server_id: server.fingerprint,
        proto: "backbone/1",
        port: server.port,
        connections: 2,
        sessions: 2,
        offline_queue: 3,
        healthy: true,
        messages: { stored: 3, received: { direct: 9, broadcast: 1 } },
      });
      expect(varz.in_msgs).toBeGreaterThanOrEqual(10);

      // /connz: alice sent the most, so she leads sorted by msgs_from; paginated.
      const connz = JSON.parse((await get(`${server.url}connz?sort=msgs_from`)).body);
      expect(connz).toMatchObject({ total: 2, num_connections: 2, offset: 0, sort: "msgs_from" });
      expect(connz.connections.map((c: { name: string }) => c.name)).toEqual(["alice", "bob"]);
      expect(connz.connections[0]).toMatchObject({
        ip: "127.0.0.1",
        client_id: ids.alice,
        state: "open",
      });
      for (const key of [
        "cid",
        "port",
        "start",
        "in_msgs",
        "out_msgs",
        "in_bytes",
        "out_bytes",
        "pending_bytes",
        "idle",
        "uptime",
      ])
        expect(connz.connections[0]).toHaveProperty(key);
      const byTo = JSON.parse((await get(`${server.url}connz?sort=msgs_to&limit=1`)).body);
      expect(byTo).toMatchObject({ total: 2, num_connections: 1, limit: 1 });
      expect(byTo.connections[0].name).toBe("bob"); // bob was sent the most
      const second = JSON.parse(
        (await get(`${server.url}connz?sort=msgs_to&limit=1&offset=1`)).body,
      );
      expect(second.connections.map((c: { name: string }) => c.name)).toEqual(["alice"]);
      expect((await get(`${server.url}connz?sort=nonsense`)).status).toBe(400);
      expect((await get(`${server.url}connz?limit=-1`)).status).toBe(400);

      // A broadcast burst past broadcast_burst (200): refusals counted by reason and limit.
      const limited = () => notices.filter((n) => n === "rate_limited").length;
      for (let i = 0; i < 260; i++) alice.broadcast(`${SECRET} burst ${i}`);
      await until(async () => (limited() >= 50 ? true : undefined), "rate_limited notices");
      const burst = await until(async () => {
        const m = await scrape(server.url);
        return m.value("backbone_rate_limited_total", { limit: "broadcast" }) === limited()
          ? m
          : undefined;
      }, "the refusals counted");
      expect(burst.value("backbone_messages_rejected_total", { reason: "rate_limited" })).toBe(
        limited(),
      );

      // No endpoint shows what the messages said.
      for (const path of ["metrics", "varz", "connz", "healthz", ""]) {
        expect((await get(`${server.url}${path}`)).body).not.toContain("zebra-quartz");
      }
      expect((await get(`${server.url}nowhere`)).status).toBe(404);
      expect((await fetch(`${server.url}varz`, { method: "POST" })).status).toBe(405);
    } finally {
      for (const c of clients) await c.close();
    }
  });
});

describe("the token rule", () => {
  test("with a token: 401 without it or with a wrong one, 200 with Bearer or Basic", async () => {
    await using sb = await sandbox();
    const tokenFile = join(sb.dir, "monitor.token");
    const token = "f00dfeedc0ffee0123456789abcdef42";
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    // Non-loopback: all interfaces; the test reaches it on loopback only.
    const server = await sb.serve(["--monitor", "0.0.0.0:0", "--monitor-token-file", tokenFile]);
    const url = (await monitorUrl(server.proc)).replace("0.0.0.0", "127.0.0.1");
    for (const path of ["", "metrics", "varz", "connz", "healthz", "events"]) {
      const r = await get(`${url}${path}`);
      expect({ path, status: r.status }).toEqual({ path, status: 401 });
      expect(r.body).not.toContain("backbone_");
      expect(
        (await get(`${url}${path}`, { authorization: "Bearer wrong-token-wrong-token" })).status,
      ).toBe(401);
    }
    const bearer = await get(`${url}healthz`, { authorization: `Bearer ${token}` });
    expect(bearer).toMatchObject({ status: 200, body: "ok\n" });
    const basic = `Basic ${Buffer.from(`admin:${token}`).toString("base64")}`;
    expect((await get(`${url}varz`, { authorization: basic })).status).toBe(200);
    const r = await fetch(`${url}metrics`);
    expect(r.headers.get("www-authenticate")).toContain("Basic");
  });

  test("a non-loopback monitor without a token is refused with one line; so is a loose token file", async () => {
    await using sb = await sandbox();
    expectError(
      await sb.run(["serve", "--port", "0", "--host", "127.0.0.1", "--monitor", "0.0.0.0:0"]),
      EXIT.USAGE,
      /refusing to serve the monitor on non-loopback 0\.0\.0\.0:0 without a token/,
    );
    // Same from the config file.
    writeFileSync(join(sb.data, "config.toml"), 'monitor = "[::]:0"\n');
    expectError(
      await sb.run(["serve", "--port", "0", "--host", "127.0.0.1"]),
      EXIT.USAGE,
      /refusing to serve the monitor on non-loopback \[::\]:0 without a token \(set --monitor-token-file, or use 127\.0\.0\.1\)$/,
    );
    rmSync(join(sb.data, "config.toml"));
    const loose = join(sb.dir, "loose.token");
    writeFileSync(loose, "0123456789abcdef0123456789abcdef\n", { mode: 0o644 });
    chmodSync(loose, 0o644);
    expectError(
      await sb.run([
        "serve",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--monitor",
        "127.0.0.1:0",
        "--monitor-token-file",
        loose,
      ]),
      EXIT.USAGE,
      /permissions 0644 for '.*loose\.token' are too open/,
    );
    const short = join(sb.dir, "short.token");
    writeFileSync(short, "abc\n", { mode: 0o600 });
    expectError(
      await sb.run([
        "serve",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--monitor",
        "127.0.0.1:0",
        "--monitor-token-file",
        short,
      ]),
      EXIT.USAGE,
      /must be one word of at least 16 characters/,
    );
    expectError(
      await sb.run(["serve", "--port", "0", "--host", "127.0.0.1", "--monitor-token-file", short]),
      EXIT.USAGE,
      /a monitor token file is set but no monitor \(--monitor HOST:PORT\)$/,
    );
    expectError(
      await sb.run(["serve", "--port", "0", "--host", "127.0.0.1", "--monitor", "localhost"]),
      EXIT.USAGE,
      /invalid monitor address "localhost"/,
    );
  });

  test("loopback without a token: open; configured from the config file", async () => {
    await using sb = await sandbox();
    writeFileSync(join(sb.data, "config.toml"), 'monitor = "127.0.0.1:0"\n');
    const server = await sb.serve();
    const url = await monitorUrl(server.proc);
    expect(await get(`${url}healthz`)).toMatchObject({ status: 200, body: "ok\n" });
  });
});

describe("/healthz", () => {
  test.skipIf(!tmpfsMountable)(
    "503 while the store's disk is full, 200 again once it has room",
    async () => {
      await using sb = await sandbox();
      await onTmpfs("4m", async (mnt) => {
        try {
          for (const f of ["server.key", "server.pub"])
            copyFileSync(join(sb.data, f), join(mnt, f));
          chmodSync(join(mnt, "server.key"), 0o600);
          const server = await serveMonitored(sb, ["--data", mnt, "--monitor", "127.0.0.1:0"]);
          expect(await get(`${server.url}healthz`)).toMatchObject({ status: 200, body: "ok\n" });
          fillDisk(join(mnt, "filler"));
          const sick = await until(async () => {
            const r = await get(`${server.url}healthz`);
            return r.status === 503 ? r : undefined;
          }, "503");
          expect(sick.body).toMatch(/^store unwritable: (disk full \(\d+ KiB free\)|.*full.*)\n$/);
          const metrics = await scrape(server.url);
          expect(metrics.value("backbone_up")).toBe(0);
          rmSync(join(mnt, "filler"));
          await until(
            async () => ((await get(`${server.url}healthz`)).status === 200 ? true : undefined),
            "200 again",
          );
          server.proc.kill("SIGTERM");
          expect(await server.proc.exit()).toBe(EXIT.OK);
        } finally {
          sb.killAll(); // before the unmount: nothing may hold the mount
        }
      });
    },
  );

  test("503 while out of descriptors, 200 again once connections close", async () => {
    await using sb = await sandbox();
    const binary = join(import.meta.dir, "../../dist/backbone");
    // A low descriptor limit for the server only.
    const shell = Bun.spawn(
      [
        "sh",
        "-c",
        `ulimit -n 64 && exec "$0" serve --port 0 --host 127.0.0.1 --monitor 127.0.0.1:0`,
        binary,
      ],
      { cwd: sb.dir, env: sb.env, stdout: "pipe", stderr: "pipe" },
    );
    try {
      const reader = shell.stdout.getReader();
      let out = "";
      while (!/monitor on (http:\/\/\S+\/)/.test(out)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`serve exited: ${out}`);
        out += new TextDecoder().decode(value);
      }
      const url = /monitor on (http:\/\/\S+\/)/.exec(out)?.[1] as string;
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
      expect(await get(`${url}healthz`)).toMatchObject({ status: 200 });
      // Open handshakes (never answered) until fewer than 16 descriptors are left.
      const sockets: { end(): void }[] = [];
      try {
        const sick = await until(async () => {
          for (let i = 0; i < 2 && sockets.length < 60; i++) {
            // Refused once the server stops accepting for want of descriptors: that is
            // the state whose health is asked about next.
            const s = await Bun.connect({
              hostname: "127.0.0.1",
              port,
              socket: { data() {} },
            }).catch(() => null);
            if (!s) break;
            sockets.push(s);
          }
          const r = await get(`${url}healthz`);
          return r.status === 503 ? r : undefined;
        }, "503 out of descriptors");
        expect(sick.body).toMatch(
          /^out of descriptors \((\d+ of 64 in use(; not accepting)?|none left)\)\n$/,
        );
      } finally {
        for (const s of sockets) s.end();
      }
      await until(
        async () => ((await get(`${url}healthz`)).status === 200 ? true : undefined),
        "200 again",
      );
    } finally {
      shell.kill("SIGKILL");
      await shell.exited;
    }
  });
});
