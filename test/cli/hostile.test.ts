/**
 * Text a peer or the server controls, as the line-oriented commands show it: one message
 * is one line (`listen`, piped `chat`, `send`'s stderr notes), and nothing in it drives
 * the terminal (C0, DEL, C1, line separators, bidi controls all shown as escapes;
 * invalid UTF-8 shown byte by byte, never as U+FFFD).
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanupAll, EXIT, expectError, type Sandbox, sandbox } from "../helpers/binary.ts";
import { HOSTILE, utf8 } from "../helpers/hostile.ts";

afterEach(cleanupAll);
setDefaultTimeout(30_000);

async function trio(sb: Sandbox) {
  const server = await sb.serve();
  for (const name of ["alice", "bob", "mallory"]) await sb.keygen(name, server.address);
  return server;
}

async function sendAs(sb: Sandbox, from: string, to: string, bytes: Uint8Array): Promise<void> {
  const r = await sb.run(["send", to, "--no-e2e", "--identity", `${from}.identity`], {
    stdin: bytes,
  });
  expect(r.code).toBe(EXIT.OK);
  expect(r.stderr).toMatch(/^(|\S+ is offline: stored for delivery at its next login\n)$/);
}

describe("one message, one line, nothing that drives the terminal", () => {
  test("listen: every hostile class escaped, one line per message", async () => {
    await using sb = await sandbox();
    const server = await trio(sb);
    const bob = sb.start(["listen", "--no-e2e", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
    for (const h of HOSTILE) await sendAs(sb, "mallory", "bob", h.bytes);
    await bob.until(
      () => (bob.lines.stdout.length >= HOSTILE.length ? true : undefined),
      `${HOSTILE.length} lines`,
    );
    const shown = bob.lines.stdout.map((l) => /^\[\d\d:\d\d:\d\d\] mallory: (.*)$/s.exec(l)?.[1]);
    expect(shown).toEqual(HOSTILE.map((h) => h.shown));
  });

  test("listen --json: valid JSON, one line, C1 and separators as \\u escapes", async () => {
    await using sb = await sandbox();
    const server = await trio(sb);
    const bob = sb.start(["listen", "--json", "--no-e2e", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
    const text = "a\u009b2J\u2028b\u202ec\nd";
    await sendAs(sb, "mallory", "bob", utf8(text));
    const m = await bob.waitFor(/^\{.*\}$/);
    expect(m[0]).not.toMatch(/[\u007f-\u009f\u2028\u2029\u202a-\u202e]/);
    expect(JSON.parse(m[0]).data).toBe(text);
  });

  test("piped chat: every hostile class escaped, one line per message", async () => {
    await using sb = await sandbox();
    const server = await trio(sb);
    const bob = sb.start(["chat", "mallory", "--no-e2e", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
    for (const h of HOSTILE) await sendAs(sb, "mallory", "bob", h.bytes);
    await bob.until(
      () => (bob.lines.stdout.length >= HOSTILE.length ? true : undefined),
      `${HOSTILE.length} lines`,
    );
    expect(bob.lines.stdout).toEqual(HOSTILE.map((h) => `mallory: ${h.shown}`));
  });

  test("send takes no stored message; listen shows each as one escaped line", async () => {
    await using sb = await sandbox();
    await trio(sb);
    // Stored for alice while she is away: her `send` (a session that receives nothing)
    // neither shows nor takes them; her next `listen` gets them, one line each.
    await sendAs(sb, "mallory", "alice", HOSTILE[0]?.bytes as Uint8Array);
    await sendAs(sb, "mallory", "alice", HOSTILE[7]?.bytes as Uint8Array);
    const r = await sb.run(["send", "bob", "hi", "--no-e2e", "--identity", "alice.identity"]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stderr.trimEnd().split("\n")).toEqual([
      "bob is offline: stored for delivery at its next login",
    ]);
    const listen = sb.start(["listen", "--no-e2e", "--identity", "alice.identity"]);
    await listen.until(() => (listen.lines.stdout.length >= 2 ? true : undefined), "two lines");
    expect(listen.lines.stdout[0]).toEndWith(`: ${HOSTILE[0]?.shown}`);
    expect(listen.lines.stdout[1]).toEndWith(`: ${HOSTILE[7]?.shown}`);
  });
});

describe("messages that cannot be sent", () => {
  test("send: an empty message is a usage error, from arguments or stdin", async () => {
    await using sb = await sandbox();
    const server = await trio(sb);
    const id = ["--identity", "alice.identity"];
    const empty = /^backbone: empty message: nothing to send/;
    expectError(await sb.run(["send", "bob", "", ...id]), EXIT.USAGE, empty);
    expectError(await sb.run(["send", "bob", ...id], { stdin: "" }), EXIT.USAGE, empty);
    expectError(await sb.run(["send", "bob", ...id], { stdin: "\n" }), EXIT.USAGE, empty);
    // Nothing reached the server: bob has nothing stored.
    const bob = sb.start(["listen", "--no-e2e", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
    await sendAs(sb, "alice", "bob", utf8("marker"));
    await bob.waitFor(/alice: marker$/);
    expect(bob.lines.stdout).toHaveLength(1);
  });

  test("send: a message over the server's size limit exits 6 (refused)", async () => {
    await using sb = await sandbox();
    await trio(sb);
    const r = await sb.run(["send", "bob", "--no-e2e", "--identity", "alice.identity"], {
      stdin: "x".repeat(70_000),
    });
    expectError(r, EXIT.UNDELIVERABLE, /^backbone: not sent: message of 70000 bytes exceeds/);
  });

  test("piped chat: a line over the limit is reported and skipped; the rest go", async () => {
    await using sb = await sandbox();
    const server = await trio(sb);
    const bob = sb.start(["chat", "alice", "--no-e2e", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
    const r = await sb.run(["chat", "bob", "--no-e2e", "--identity", "alice.identity"], {
      stdin: `before\n${"y".repeat(70_000)}\nafter\n`,
    });
    expect(r.code).toBe(EXIT.UNDELIVERABLE);
    expect(r.stderr).toMatch(
      /^backbone: line 2 not sent: message of 70000 bytes exceeds the server's limit of \d+\n$/,
    );
    await bob.waitFor(/^alice: after$/);
    expect(bob.lines.stdout).toEqual(["alice: before", "alice: after"]);
  });
});

describe("revoked while running", () => {
  for (const cmd of [["listen"], ["chat", "bob"]]) {
    test(`${cmd[0]}: says why and exits 4`, async () => {
      await using sb = await sandbox();
      const server = await trio(sb);
      const alice = sb.start([...cmd, "--identity", "alice.identity"]);
      await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
      const r = await sb.run(["revoke", "alice"]);
      expect(r.code).toBe(EXIT.OK);
      expect(await alice.exit(10_000)).toBe(EXIT.AUTH);
      expect(alice.lines.stderr.filter((l) => l !== "")).toEqual([
        "backbone: the server ended the session: this client has been revoked",
      ]);
    });
  }
});
