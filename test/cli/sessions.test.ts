/**
 * Sessions through the compiled binary (docs/PROTOCOL.md § Sessions and delivery): one
 * identity in several processes at once — chat on a real terminal, send, status,
 * listen — and the fault cases: `kill -9` of a listener half-way through a backlog,
 * revocation, SIGTERM of the server while a client sends, `kill -9` of the server.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "../../src/client/client.ts";
import type { Notice } from "../../src/client/types.ts";
import { cleanupAll, EXIT, type Running, type Sandbox, sandbox } from "../helpers/binary.ts";
import { TcpProxy } from "../helpers/proxy.ts";
import { Terminal, TMUX } from "../helpers/tmux.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

async function setup(sb: Sandbox, names = ["alice", "bob"], serveArgs: string[] = []) {
  const server = await sb.serve(serveArgs);
  const ids: Record<string, string> = {};
  for (const name of names) {
    const r = await sb.keygen(name, server.address);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  return { server, ids };
}

/** The `data` of every JSON line a `listen --json` printed. */
function printed(p: Running): string[] {
  return p.lines.stdout.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l).data);
}

describe.skipIf(!TMUX)("one identity in several processes", () => {
  test("chat stays connected while send, status and listen run as the same identity", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb);
    using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"]);
    await term.waitFor(/^connected to .* as alice; talking to bob/);
    // One-shots as alice, and a message for alice stored while no listener… but the chat
    // receives: bob's message goes to it live.
    const send = await sb.run(["send", "bob", "from a one-shot", "--identity", "alice.identity"]);
    expect(send).toMatchObject({ code: EXIT.OK, stdout: "" });
    const status = await sb.run(["status", "--identity", "alice.identity"]);
    expect(status).toMatchObject({ code: EXIT.OK, stderr: "" });
    const listen = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr", 10_000, 4);
    await sb.run(["send", "alice", "to both alice sessions", "--identity", "bob.identity"]);
    await term.waitFor(/^\[\d\d:\d\d:\d\d\] bob: to both alice sessions$/);
    await listen.until(
      () => (printed(listen).includes("to both alice sessions") ? true : undefined),
      "listen to print it",
    );
    expect(term.alive()).toBe(true);
    expect(term.screen().join("\n")).not.toMatch(/connection lost|replaced/);
    listen.kill("SIGTERM");
    expect(await listen.exit()).toBe(EXIT.OK);
  });
});

describe("sessions of one identity (binary)", () => {
  test("send and status do not take stored messages; the next listen gets them", async () => {
    await using sb = await sandbox();
    await setup(sb);
    for (const text of ["stored-1", "stored-2"])
      await sb.run(["send", "alice", text, "--identity", "bob.identity"]);
    for (const args of [
      ["send", "bob", "hi", "--identity", "alice.identity"],
      ["status", "--identity", "alice.identity"],
      ["status", "--json", "--identity", "alice.identity"],
    ]) {
      const r = await sb.run(args);
      expect(r.code).toBe(EXIT.OK);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/stored-\d|message for you/);
    }
    const listen = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    await listen.until(() => (printed(listen).length >= 2 ? true : undefined), "the stored two");
    expect(printed(listen)).toEqual(["stored-1", "stored-2"]);
    listen.kill("SIGTERM");
    await listen.exit();
  });

  test("two listen processes of one identity both print a live message", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb);
    const a = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    const b = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr", 10_000, 2);
    await sb.run(["send", "alice", "live to both", "--identity", "bob.identity"]);
    for (const p of [a, b])
      await p.until(() => (printed(p).includes("live to both") ? true : undefined), "both");
    for (const p of [a, b]) {
      p.kill("SIGTERM");
      expect(await p.exit()).toBe(EXIT.OK);
    }
  });

  test("a stored backlog is printed once across two listeners, also when one is killed -9 half-way", async () => {
    await using sb = await sandbox();
    const senders = ["bob", "carol", "dave"];
    const { server, ids } = await setup(sb, ["alice", ...senders]);
    const PER = 1000; // queue_max_per_sender
    const N = PER * senders.length;
    for (const name of senders) {
      const c = await connect({ identity: join(sb.dir, `${name}.identity`) });
      for (let i = 0; i < PER; i++) c.send(ids.alice as string, `${name}-${i}`);
      await c.ping();
      await c.close();
    }
    const first = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    await first.until(() => (printed(first).length >= 1 ? true : undefined), "a first message");
    first.kill("SIGSTOP"); // frozen half-way: it holds the taker's role
    const second = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr", 10_000, 2);
    first.kill("SIGKILL");
    await first.exit();
    const killedAt = printed(first);
    expect(killedAt.length).toBeLessThan(N);
    await second
      .until(
        () => (new Set([...killedAt, ...printed(second)]).size >= N ? true : undefined),
        "the rest on the second listener",
        20_000,
      )
      .catch((err) => {
        throw new Error(`${err.message}\nfirst printed ${killedAt.length}`);
      });
    const all = [...killedAt, ...printed(second)];
    expect(new Set(all).size).toBe(N);
    // Printed by both can only be what the killed one had not acknowledged: its last batch.
    const both = printed(second).filter((m) => killedAt.includes(m));
    expect(both.length).toBeLessThanOrEqual(256);
    for (const m of both) expect(killedAt.indexOf(m)).toBeGreaterThanOrEqual(killedAt.length - 256);
    expect(all.length).toBe(N + both.length);
    // Each listener printed each sender's messages in order.
    for (const list of [killedAt, printed(second)]) {
      for (const name of senders) {
        const nums = list
          .filter((m) => m.startsWith(`${name}-`))
          .map((m) => Number(m.split("-")[1]));
        expect(nums).toEqual([...nums].sort((x, y) => x - y));
      }
    }
    second.kill("SIGTERM");
    await second.exit();
  });

  test("a listener whose connection died reconnects with its tag and replaces its ghost at once", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb);
    await using proxy = await TcpProxy.start(server.port);
    const listen = sb.start([
      "listen",
      "--json",
      "--server",
      proxy.address,
      "--identity",
      "alice.identity",
    ]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
    // The link goes dead for the listener; the server's side stays open and silent: a ghost.
    proxy.stall();
    for (const link of proxy.links) link.client?.terminate();
    // The listener reconnects (same process, same tag): the ghost goes at once, long
    // before heartbeat_timeout (45 s).
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr", 10_000, 2);
    await server.proc.waitFor(
      /INFO +disconnect .*name=alice .*reason="replaced by a new connection"/,
      "stderr",
      2000,
    );
    await sb.run(["send", "alice", "after the reconnect", "--identity", "bob.identity"]);
    await listen.until(
      () => (printed(listen).includes("after the reconnect") ? true : undefined),
      "the message on the reconnected listener",
    );
    listen.kill("SIGTERM");
    expect(await listen.exit()).toBe(EXIT.OK);
  });

  test("past max_sessions_per_client, status, chat, listen and send end at once with one line and exit 3 (no retry loop); the listener stays", async () => {
    await using sb = await sandbox();
    mkdirSync(sb.data, { recursive: true, mode: 0o700 });
    writeFileSync(join(sb.data, "config.toml"), "max_sessions_per_client = 1\n");
    const { server } = await setup(sb);
    const listen = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
    const line =
      "backbone: too many sessions of this identity at once (the server's max_sessions_per_client): end one of its chat or listen processes, or raise the limit in the server's config\n";
    // chat and listen would wait for an unreachable server forever, send --wait 600 ten
    // minutes: a refusal that retrying cannot change is no such case.
    for (const [args, stdin] of [
      [["status"], undefined],
      [["chat", "bob"], "hello\n"],
      [["listen"], undefined],
      [["send", "bob", "hello", "--wait", "600"], undefined],
    ] as const) {
      const r = await sb.run([...args, "--identity", "alice.identity"], stdin ? { stdin } : {});
      expect([args[0], r]).toEqual([args[0], { code: EXIT.UNREACHABLE, stdout: "", stderr: line }]);
    }
    await sb.run(["send", "alice", "still here", "--identity", "bob.identity"]);
    await listen.until(() => (printed(listen).includes("still here") ? true : undefined), "it");
    listen.kill("SIGTERM");
    expect(await listen.exit()).toBe(EXIT.OK);
  });

  test("revoke returns once every session is stopped and what the client queued is dropped", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb, ["alice", "bob", "carol"]);
    for (let i = 0; i < 3; i++)
      await sb.run(["send", "alice", `queued ${i}`, "--identity", "carol.identity"]);
    const listeners = [
      sb.start(["listen", "--identity", "carol.identity"]),
      sb.start(["chat", "bob", "--identity", "carol.identity"]),
    ];
    await server.proc.waitFor(/INFO +connect .*name=carol/, "stderr", 10_000, 5);
    const r = await sb.run(["revoke", "carol"]);
    const returnedAt = Date.now();
    expect(r.code).toBe(EXIT.OK);
    // The server logged both cut-offs and the drop before it confirmed.
    const logged = (re: RegExp) =>
      server.proc
        .waitFor(re, "stderr")
        .then((m) => Date.parse((m.input ?? "").split(" ")[0] ?? ""));
    for (const nth of [1, 2]) {
      const at = await server.proc.waitFor(/INFO +revoked .*name=carol/, "stderr", 5000, nth);
      expect(Date.parse(at.input.split(" ")[0] as string)).toBeLessThanOrEqual(returnedAt);
    }
    expect(
      await logged(/WARN +dropped messages of a revoked client .*name=carol count=3/),
    ).toBeLessThanOrEqual(returnedAt);
    expect(r.stdout).toMatch(/; the running server has stopped its sessions\n$/);
    for (const p of listeners) expect(await p.exit()).toBe(EXIT.AUTH);
    // alice never gets carol's queued messages.
    const alice = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    await sb.run(["send", "alice", "after", "--identity", "bob.identity"]);
    await alice.until(() => (printed(alice).includes("after") ? true : undefined), "bob's");
    expect(printed(alice)).toEqual(["after"]);
    alice.kill("SIGTERM");
    await alice.exit();
  });

  test("revoke with no server running says so", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb);
    server.proc.kill("SIGTERM");
    await server.proc.exit();
    const r = await sb.run(["revoke", "bob"]);
    expect(r).toMatchObject({ code: EXIT.OK, stderr: "" });
    expect(r.stdout).toMatch(/; no server is running/);
  });

  test("clients after kill -9 of the server: nobody online, last seen shown", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb);
    const listen = sb.start(["listen", "--identity", "alice.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
    for (
      let i = 0;
      i < 100 && !(await sb.run(["clients", "--json"])).stdout.includes('"online":true');
      i++
    )
      await Bun.sleep(20);
    server.proc.kill("SIGKILL");
    await server.proc.exit();
    listen.kill("SIGKILL");
    await listen.exit();
    const table = await sb.run(["clients"]);
    expect(table.code).toBe(EXIT.OK);
    expect(table.stdout).not.toMatch(/online|now/);
    expect(table.stdout).toMatch(/ alice +SHA256:\S+ +offline +\d+s ago\n/);
    expect(table.stderr).toMatch(/no server is running/);
    const json = await sb.run(["clients", "--json"]);
    for (const line of json.stdout.trimEnd().split("\n"))
      expect(JSON.parse(line)).toMatchObject({ online: false });
    expect(JSON.parse(json.stdout.split("\n")[0] as string).last_seen).toEqual(expect.any(Number));
  });
});

describe("server shutdown (SIGTERM) while a client sends", () => {
  /** The most messages the sending loop sends (a bound on the test's load). */
  const MAX_SENT = 20_000;

  test("every message is delivered or reported, across several restarts", async () => {
    await using sb = await sandbox();
    // How many messages go out depends on how long each restart takes (the loop keeps
    // sending meanwhile): on a loaded machine it passed the default queue limit for one
    // sender to one offline recipient (1000), and the server rightly refused the rest
    // ("you already have 1000 messages queued"). Limits are not what this test is about
    // (test/hardening/store-bounds.test.ts): they are set above what the loop can send.
    mkdirSync(sb.data, { recursive: true });
    writeFileSync(
      join(sb.data, "config.toml"),
      `queue_max_per_sender = ${MAX_SENT}\nqueue_max_messages = ${MAX_SENT}\n`,
    );
    const { server, ids } = await setup(sb);
    const port = server.port;
    const sender = await connect({
      identity: join(sb.dir, "alice.identity"),
      backoff: { initialMs: 20, maxMs: 100 },
    });
    const refused = new Set<string>();
    sender.on("notice", (n: Notice) => {
      if (n.status !== "queued") refused.add(n.reason);
    });
    let sent = 0;
    let sending = true;
    const loop = (async () => {
      while (sending && sent < MAX_SENT) {
        try {
          sender.send(ids.bob as string, `n${sent}`);
          sent++;
        } catch {
          // buffer full while the server is down: try again
        }
        await Bun.sleep(2);
      }
    })();
    let proc = server.proc;
    for (let round = 0; round < 5; round++) {
      const before = sent;
      while (sent < before + 100) await Bun.sleep(5);
      proc.kill("SIGTERM");
      expect(await proc.exit()).toBe(EXIT.OK);
      proc = sb.start(["serve", "--port", String(port), "--host", "127.0.0.1"]);
      await proc.waitFor(/^listening on /, "stdout", 10_000);
    }
    const last = sent;
    while (sent < last + 100) await Bun.sleep(5);
    sending = false;
    await loop;
    while (!sender.connected) await Bun.sleep(10);
    await sender.ping();
    expect(sender.pendingBytes).toBe(0);
    await sender.close();
    expect([...refused]).toEqual([]); // nothing refused: every message should be stored
    const bob = await connect({ identity: join(sb.dir, "bob.identity") });
    const got = new Set<string>();
    bob.on("message", (m) => got.add(new TextDecoder().decode(m.data)));
    const deadline = Date.now() + 20_000;
    while (got.size < sent && Date.now() < deadline) await bob.ping();
    const lost = Array.from({ length: sent }, (_, i) => `n${i}`).filter((m) => !got.has(m));
    expect(lost).toEqual([]);
    await bob.close();
  });
});
