/**
 * The terminal chat when its terminal goes away (window closed, SSH dropped): it must
 * leave — a chat left running on a dead terminal stays logged in and takes the client's
 * messages where nobody sees them. The compiled binary in a real tmux pseudo-terminal.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { cleanupAll, sandbox } from "../helpers/binary.ts";
import { Terminal, TMUX } from "../helpers/terminal.ts";

afterEach(cleanupAll);

describe.skipIf(!TMUX)("terminal chat, terminal closed", () => {
  test("closing the terminal ends the chat's session at once", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    for (const name of ["alice", "bob"]) await sb.keygen(name, server.address);
    const term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"]);
    await term.until((l) => l.some((x) => x.includes("connected to")), "the chat to connect");
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
    term[Symbol.dispose](); // the terminal is gone: its processes get SIGHUP
    await server.proc.waitFor(/INFO +disconnect .*name=alice/, "stderr", 5_000);
    // Nothing of alice's is taken by a ghost: a message to her now is stored.
    const r = await sb.run([
      "send",
      "alice",
      "are you there?",
      "--no-e2e",
      "--identity",
      "bob.identity",
    ]);
    expect(r.stderr).toContain("alice is offline: stored for delivery at its next login");
  });
});
