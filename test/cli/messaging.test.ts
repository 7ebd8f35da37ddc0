/** Messages between processes: chat through pipes, send, listen, and the status commands. */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanupAll, EXIT, expectError, type Sandbox, sandbox } from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(20_000);

/** A server and two enrolled clients, alice and bob, identity files in the sandbox. */
async function twoClients(sb: Sandbox) {
  const server = await sb.serve();
  const ids: Record<string, string> = {};
  for (const name of ["alice", "bob"]) {
    const r = await sb.keygen(name, server.address);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  return { server, ids };
}

describe("chat through pipes", () => {
  test("two chat processes exchange messages both ways", async () => {
    await using sb = await sandbox();
    const { server } = await twoClients(sb);
    const alice = sb.start(["chat", "bob", "--identity", "alice.identity"]);
    const bob = sb.start(["chat", "alice", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");

    alice.write("hello bob");
    await bob.waitFor(/^alice: hello bob$/);
    bob.write("hi alice, ünïcödé ✓");
    await alice.waitFor(/^bob: hi alice, ünïcödé ✓$/);
    alice.write("second line");
    alice.write(""); // empty lines are not sent
    alice.write("third line");
    await bob.waitFor(/^alice: third line$/);
    // A control character is shown, not obeyed.
    bob.write("bell\x07 and \x1b[2J");
    await alice.waitFor(/^bob: bell\\x07 and \\x1b\[2J$/);

    // End of input: each sends what it has and exits 0.
    alice.endInput();
    bob.endInput();
    expect(await alice.exit()).toBe(EXIT.OK);
    expect(await bob.exit()).toBe(EXIT.OK);
    expect(bob.lines.stdout).toEqual([
      "alice: hello bob",
      "alice: second line",
      "alice: third line",
    ]);
    expect(alice.lines.stdout).toEqual(["bob: hi alice, ünïcödé ✓", "bob: bell\\x07 and \\x1b[2J"]);
    expect(alice.text("stderr")).toBe("");
    expect(bob.text("stderr")).toBe("");
  });

  test("a peer that is offline: stored, and delivered when it connects", async () => {
    await using sb = await sandbox();
    await twoClients(sb);
    const alice = sb.start(["chat", "bob", "--identity", "alice.identity"]);
    alice.write("are you there?");
    await alice.waitFor(
      /^bob is offline: your message is stored and will be delivered when they log in$/,
      "stderr",
    );
    const bob = sb.start(["chat", "alice", "--identity", "bob.identity"]);
    await bob.waitFor(/^alice: are you there\?$/);
    bob.write("now I am");
    await alice.waitFor(/^bob: now I am$/);
  });

  test("an unknown peer: exit 6", async () => {
    await using sb = await sandbox();
    await twoClients(sb);
    expectError(
      await sb.run(["chat", "carol", "--identity", "alice.identity"], { stdin: "hi\n" }),
      EXIT.UNDELIVERABLE,
      /^backbone: no client "carol"$/,
    );
  });
});

describe("send and listen", () => {
  test("send to an offline client is stored; listen --json prints it when it connects", async () => {
    await using sb = await sandbox();
    const { ids } = await twoClients(sb);
    const sent = await sb.run([
      "send",
      "bob",
      "hello",
      "while",
      "away",
      "--identity",
      "alice.identity",
    ]);
    expect(sent).toEqual({
      code: EXIT.OK,
      stdout: "",
      stderr: "bob is offline: stored for delivery at its next login\n",
    });
    // From stdin, one trailing newline dropped; by ID rather than name.
    const piped = await sb.run(["send", ids.bob as string, "--identity", "alice.identity"], {
      stdin: "line one\nline two\n",
    });
    expect({ code: piped.code, stdout: piped.stdout }).toEqual({ code: EXIT.OK, stdout: "" });
    expect(piped.stderr).toContain("is offline: stored");

    const before = Date.now();
    const listen = sb.start(["listen", "--json", "--identity", "bob.identity"]);
    await listen.until(() => (listen.lines.stdout.length >= 2 ? true : undefined), "two messages");
    const [first, second] = listen.lines.stdout.map((l) => JSON.parse(l));
    expect(first).toEqual({
      from: ids.alice,
      name: "alice",
      time: expect.any(String),
      kind: "stored",
      data: "hello while away",
    });
    expect(second).toMatchObject({ kind: "stored", data: "line one\nline two" });
    // The time is when it was sent, not when it arrived.
    expect(Date.parse(first.time)).toBeLessThanOrEqual(before);

    // Live messages follow, in order; binary data comes base64-encoded.
    const live = await sb.run(["send", "bob", "now live", "--identity", "alice.identity"]);
    expect(live).toEqual({ code: EXIT.OK, stdout: "", stderr: "" });
    await listen.waitFor(/"data":"now live"/);
    expect(JSON.parse(listen.lines.stdout[2] as string)).toMatchObject({
      name: "alice",
      kind: "direct",
    });
    const bytes = new Uint8Array([0xff, 0xfe, 0x00, 0x41]);
    await sb.run(["send", "bob", "--identity", "alice.identity"], { stdin: bytes });
    const bin = JSON.parse((await listen.waitFor(/"encoding":"base64"/)).input);
    expect(bin.data).toBe(Buffer.from(bytes).toString("base64"));

    listen.kill("SIGTERM");
    expect(await listen.exit()).toBe(EXIT.OK);
    expect(listen.text("stderr")).toBe("");
  });

  test("listen without --json: one readable line per message", async () => {
    await using sb = await sandbox();
    await twoClients(sb);
    await sb.run(["send", "bob", "while you were out", "--identity", "alice.identity"]);
    const listen = sb.start(["listen", "--identity", "bob.identity"]);
    await listen.waitFor(/^\[\d\d:\d\d:\d\d\] alice \(while you were away\): while you were out$/);
    await sb.run(["send", "bob", "and now", "--identity", "alice.identity"]);
    await listen.waitFor(/^\[\d\d:\d\d:\d\d\] alice: and now$/);
  });

  test("send to an unknown recipient: exit 6, nothing sent", async () => {
    await using sb = await sandbox();
    await twoClients(sb);
    expectError(
      await sb.run(["send", "carol", "hi", "--identity", "alice.identity"]),
      EXIT.UNDELIVERABLE,
      /^backbone: no client "carol"$/,
    );
    const status = await sb.run(["status", "--json", "--identity", "alice.identity"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ messages_routed: 0, messages_queued: 0 });
  });
});

describe("clients and status", () => {
  test("clients shows who is online and when the others were last seen", async () => {
    await using sb = await sandbox();
    const { server, ids } = await twoClients(sb);
    await sb.keygen("carol", server.address);
    await sb.run(["status", "--identity", "bob.identity"]); // bob was here, and left
    const alice = sb.start(["listen", "--identity", "alice.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
    // Presence is written in batches (up to 50 ms after the login).
    for (
      let i = 0;
      i < 50 && !(await sb.run(["clients", "--json"])).stdout.includes('"online":true');
      i++
    )
      await Bun.sleep(20);

    const table = await sb.run(["clients"]);
    expect({ code: table.code, stderr: table.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    const rows = table.stdout.trimEnd().split("\n");
    expect(rows[0]).toMatch(/^ID +NAME +KEY +STATUS +LAST SEEN$/);
    expect(rows).toHaveLength(4);
    const row = (name: string) => rows.find((r) => r.split(/ +/)[1] === name) ?? "";
    expect(row("alice")).toMatch(new RegExp(`^${ids.alice} +alice +SHA256:\\S+ +online +now$`));
    expect(row("bob")).toMatch(/ bob +SHA256:\S+ +offline +\d+s ago$/);
    expect(row("carol")).toMatch(/ carol +SHA256:\S+ +offline +never$/);

    const json = await sb.run(["clients", "--json"]);
    expect({ code: json.code, stderr: json.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    const list = json.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    const byName = Object.fromEntries(list.map((c) => [c.name, c]));
    expect(byName.alice).toMatchObject({ id: ids.alice, online: true, revoked: null });
    expect(byName.bob).toMatchObject({ online: false, last_seen: expect.any(Number) });
    expect(byName.carol).toMatchObject({ online: false, last_seen: null });
    expect(byName.alice.fingerprint).toMatch(/^SHA256:/);

    alice.kill("SIGTERM");
    await alice.exit();
  });

  test("clients on an empty registry says how to add one", async () => {
    await using sb = await sandbox();
    await sb.serve();
    expect(await sb.run(["clients"])).toEqual({
      code: EXIT.OK,
      stdout: "no clients yet (add one with `backbone keygen --name NAME`)\n",
      stderr: "",
    });
    expect(await sb.run(["clients", "--json"])).toEqual({ code: EXIT.OK, stdout: "", stderr: "" });
  });

  test("status and status --json", async () => {
    await using sb = await sandbox();
    const { server } = await twoClients(sb);
    await sb.run(["send", "bob", "queued", "--identity", "alice.identity"]);
    const r = await sb.run(["status", "--identity", "alice.identity"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    const field = (k: string) => new RegExp(`^${k}: +(.*)$`, "m").exec(r.stdout)?.[1];
    expect(field("server")).toMatch(
      new RegExp(`^${server.address} \\(backbone/1, backbone \\d+\\.\\d+\\.\\d+\\)$`),
    );
    expect(field("server key")).toBe(server.fingerprint);
    expect(field("uptime")).toMatch(/^\d+s$/);
    // status receives nothing, so it does not make alice online.
    expect(field("clients online")).toBe("0 of 2 registered");
    expect(field("messages queued")).toMatch(/^1 held for offline clients/);

    // status as bob neither sees nor takes bob's stored message (a session that
    // receives nothing): it stays queued for his next listen or chat.
    const j = await sb.run(["status", "--json", "--identity", "bob.identity"]);
    expect({ code: j.code, stderr: j.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    expect(JSON.parse(j.stdout)).toMatchObject({
      protocol: "backbone/1",
      server_key: server.fingerprint,
      clients_registered: 2,
      clients_online: 0,
      messages_stored: 1,
      messages_queued: 1,
    });
  });
});
