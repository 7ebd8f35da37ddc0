/**
 * `chat` on a terminal, through a real pseudo-terminal: tmux runs the binary in a
 * detached session; keys go in with `send-keys`, the screen comes back with
 * `capture-pane`. Needs tmux (CI installs it).
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanupAll, EXIT, type Sandbox, sandbox, WAIT_MS } from "../helpers/binary.ts";
import { Terminal, TMUX } from "../helpers/terminal.ts";

afterEach(cleanupAll);
setDefaultTimeout(30_000);

async function setup(sb: Sandbox) {
  const server = await sb.serve();
  await sb.keygen("alice", server.address);
  const r = await sb.keygen("bob", server.address);
  return { server, bobId: /id: +(\S+)/.exec(r.stdout)?.[1] as string };
}

/** The chat is up: connected and the peer found (the prompt shows before that). */
const CONNECTED = /^connected to .* talking to bob/;

describe.skipIf(!TMUX)("chat on a terminal (tmux)", () => {
  test("prompt, messages both ways shown above it, slash commands, /quit", async () => {
    await using sb = await sandbox();
    const { server, bobId } = await setup(sb);
    // Sent while alice is away: shown as such when she comes.
    await sb.run(["send", "alice", "left while you were out", "--identity", "bob.identity"]);
    const bob = sb.start(["chat", "alice", "--identity", "bob.identity"]);
    // bob's second login (the first was `send`'s).
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr", WAIT_MS, 2);

    using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"]);
    const welcome = await term.waitFor(
      new RegExp(
        `^connected to ${server.address} as alice; talking to bob \\(/help for commands\\)$`,
      ),
    );
    // alice had never run, so had no E2E keys: bob's message went in plaintext, and says so.
    const stored = await term.waitFor(
      /^\[\d\d:\d\d:\d\d\] bob \(while you were away\) \(not end-to-end encrypted\): left while you were out$/,
    );
    expect(stored.at).toBeGreaterThan(welcome.at);
    await term.until((l) => l.at(-1) === "bob>", "the prompt below the message");

    // A line typed is sent to the peer.
    term.type("hello bob");
    await bob.waitFor(/^alice: hello bob$/);

    // The peer's reply appears above the prompt, with the sender's name.
    bob.write("hi alice");
    const reply = /^\[\d\d:\d\d:\d\d\] bob: hi alice$/;
    const screen = await term.until(
      (l) => l.at(-1) === "bob>" && reply.test(l.at(-2) ?? ""),
      "the reply just above the prompt",
    );
    expect(screen.at(-3)).toBe("bob> hello bob");

    // What is being typed survives a message arriving meanwhile.
    term.keys("-l", "half a thou");
    await term.waitFor(/^bob> half a thou$/);
    bob.write("interruption");
    const interruption = /^\[\d\d:\d\d:\d\d\] bob: interruption$/;
    await term.until(
      (l) => l.at(-1) === "bob> half a thou" && interruption.test(l.at(-2) ?? ""),
      "the message above the line being typed",
    );
    term.keys("-l", "ght");
    term.keys("Enter");
    await bob.waitFor(/^alice: half a thought$/);

    term.type("/help");
    for (const cmd of ["/to ID|NAME", "/who", "/status", "/help", "/quit"])
      await term.waitFor(new RegExp(`^${cmd.replace("|", "\\|")} +\\S`));

    term.type("/who");
    await term.waitFor(/^you are alice \([0-9a-f-]{36}\)$/);
    await term.waitFor(new RegExp(`^talking to bob \\(${bobId}\\): online$`));

    term.type("/status");
    await term.waitFor(new RegExp(`^server ${server.address}: 2 of 2 clients online, up \\d+s, `));

    term.type("/frobnicate");
    await term.waitFor(/^unknown command \/frobnicate \(try \/help; to send a line that starts/);

    // The peer leaves: shown within the presence check interval.
    bob.endInput();
    expect(await bob.exit()).toBe(EXIT.OK);
    await term.waitFor(/^\* bob is offline$/);
    term.type("are you there?");
    await term.waitFor(
      /^\* bob is offline: your message is stored and will be delivered when they log in$/,
    );

    term.type("/quit");
    expect(await term.exitStatus()).toBe(EXIT.OK);
    await server.proc.waitFor(
      /INFO +disconnect .*name=alice .*reason="client stop: bye"/,
      "stderr",
    );
    expect(bob.lines.stdout).toEqual(["alice: hello bob", "alice: half a thought"]);
  });

  test("Ctrl-D leaves with exit 0", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb);
    using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"]);
    await term.waitFor(CONNECTED);
    term.keys("C-d");
    expect(await term.exitStatus()).toBe(EXIT.OK);
    await server.proc.waitFor(/INFO +disconnect .*name=alice /, "stderr");
  });

  test("/to switches the peer, and the prompt with it", async () => {
    await using sb = await sandbox();
    const { server } = await setup(sb);
    await sb.keygen("carol", server.address);
    const carol = sb.start(["chat", "alice", "--identity", "carol.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=carol/, "stderr");
    using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"]);
    await term.waitFor(CONNECTED);
    term.type("/to nobody");
    await term.waitFor(/^no client "nobody"$/);
    term.type("/to carol");
    await term.waitFor(/^\* now talking to carol$/);
    await term.until((l) => l.at(-1) === "carol>", "the prompt carol>");
    term.type("hi carol");
    await carol.waitFor(/^alice: hi carol$/);
    term.keys("C-c");
    expect(await term.exitStatus()).toBe(EXIT.OK);
  });
});

if (!TMUX)
  test.skip("chat on a terminal: needs tmux, which is not installed (CI installs it)", () => {});
