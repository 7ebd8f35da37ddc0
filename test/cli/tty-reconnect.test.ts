/**
 * The terminal chat while the server is away, through a real pseudo-terminal (tmux):
 * the countdown is a status line apart from the input line, what is typed stays and
 * is sent once connected, and Ctrl-C / Ctrl-D work at any moment.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanupAll, EXIT, freePort, type Sandbox, sandbox } from "../helpers/binary.ts";
import { Terminal, TMUX } from "../helpers/terminal.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

/** How long a reconnect may take (the client's backoff grows to a few seconds). */
const RECONNECT_MS = 15_000;
const COUNTDOWN = /^\* retrying in \d+ s: /;
/** The screen as one string, rows joined (a note may wrap at 40 columns). */
const joined = (l: string[]) => l.map((x) => x.trim()).join(" ");

/** `serve` on a chosen port (to come back on the same one). */
async function serveOn(sb: Sandbox, port: number) {
  const proc = sb.start(["serve", "--port", String(port), "--host", "127.0.0.1"]);
  await proc.waitFor(/^listening on /, "stdout", 10_000);
  return proc;
}

async function enroll(sb: Sandbox, port: number): Promise<void> {
  for (const name of ["alice", "bob"]) await sb.keygen(name, `127.0.0.1:${port}`);
}

/** The screen's last row and the one above it. */
const bottom = (l: string[]) => ({ input: l.at(-1) ?? "", above: l.at(-2) ?? "" });

for (const columns of [40, 120]) {
  describe.skipIf(!TMUX)(`terminal chat at ${columns} columns, server away`, () => {
    test("a restart: status line apart, typed text kept and sent after reconnecting", async () => {
      await using sb = await sandbox();
      const port = freePort();
      await enroll(sb, port);
      let server = await serveOn(sb, port);
      const bob = sb.start(["chat", "alice", "--identity", "bob.identity"]);
      await server.waitFor(/INFO +connect .*name=bob/, "stderr");
      using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"], { columns });
      await term.waitFor(/^connected to /);
      term.typeText("kept");

      server.kill("SIGTERM");
      await server.exit(10_000);
      // The countdown on its own row, the line being typed below it, untouched.
      await term.until((l) => {
        const b = bottom(l);
        return b.input === "bob> kept" && COUNTDOWN.test(b.above);
      }, "the countdown above the input line");
      term.typeText(" while down");
      await term.until((l) => bottom(l).input === "bob> kept while down", "more typed text");
      term.keys("Enter");
      await term.until(
        (l) =>
          joined(l).includes("* not connected: what you send goes out once the connection is back"),
        "the note that the line waits",
      );
      term.typeText("half");
      await term.until((l) => {
        const b = bottom(l);
        return b.input === "bob> half" && COUNTDOWN.test(b.above);
      }, "the next line, countdown still above it");

      server = await serveOn(sb, port);
      await term.waitFor(/^\* reconnected$/, RECONNECT_MS);
      // No status line any more, and the prompt is back without pressing anything.
      const after = await term.until((l) => bottom(l).input === "bob> half", "the prompt");
      expect(after.filter((l) => COUNTDOWN.test(l))).toEqual([]);
      await bob.waitFor(/^alice: kept while down$/, "stdout", RECONNECT_MS);

      // Ctrl-C first clears the half-typed line, then leaves: exit 0, a newline after.
      term.keys("C-c");
      await term.until((l) => bottom(l).input === "bob>", "the cleared line");
      expect(term.dead()).toBe(false);
      term.keys("C-c");
      expect(await term.exitStatus()).toBe(EXIT.OK);
      const last = term.screen(true);
      expect(last.at(-1)).not.toMatch(/^bob>.*\S.*Pane is dead/);
      expect(last.some((l) => l === "bob>")).toBe(true);
    });

    test("down at start: prompt and typed text shown, held lines sent once it comes", async () => {
      await using sb = await sandbox();
      const port = freePort();
      await enroll(sb, port);
      using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"], { columns });
      await term.until(
        (l) => bottom(l).input === "bob>" && COUNTDOWN.test(bottom(l).above),
        "countdown",
      );
      term.typeText("invisible no more");
      await term.until((l) => bottom(l).input === "bob> invisible no more", "typed text");
      term.keys("C-c"); // clears, does not leave
      await term.until((l) => bottom(l).input === "bob>", "the cleared line");
      term.type("held until connected");
      await term.until((l) => joined(l).includes("* held: it goes out once connected"), "held");

      const server = await serveOn(sb, port);
      const bob = sb.start(["chat", "alice", "--identity", "bob.identity"]);
      await server.waitFor(/INFO +connect .*name=bob/, "stderr");
      await bob.waitFor(/^alice: held until connected$/, "stdout", RECONNECT_MS);
      await term.waitFor(/^connected to /);
      term.keys("C-d");
      expect(await term.exitStatus()).toBe(EXIT.OK);
    });

    test("down at start: Ctrl-D leaves at once (exit 0); Ctrl-C with a held line exits 3", async () => {
      await using sb = await sandbox();
      const port = freePort();
      await enroll(sb, port);
      {
        using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"], { columns });
        await term.until((l) => COUNTDOWN.test(bottom(l).above), "the countdown");
        term.keys("C-d");
        expect(await term.exitStatus()).toBe(EXIT.OK);
        // The status line is gone, the prompt line stays, the output ended with a newline.
        // (tmux may move the screen into the scrollback when it marks the pane dead.)
        const screen = term.screen(true).filter((l) => l !== "");
        expect(screen.filter((l) => COUNTDOWN.test(l))).toEqual([]);
        expect(screen[0]).toBe("bob>");
      }
      {
        using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"], { columns });
        await term.until((l) => COUNTDOWN.test(bottom(l).above), "the countdown");
        term.type("never sent");
        await term.until((l) => joined(l).includes("* held: it goes out once connected"), "held");
        term.keys("C-c");
        expect(await term.exitStatus()).toBe(EXIT.UNREACHABLE);
        // (Compared without spaces: the terminal wraps the line at 40 columns.)
        const text = term.screen(true).join("").replace(/\s+/g, "");
        const message = "backbone: left before the server was reached: 1 line(s) not sent";
        expect(text).toContain(message.replace(/\s+/g, ""));
      }
    });
  });
}

describe.skipIf(!TMUX)("terminal chat, revoked while running", () => {
  test("says why on its own line and exits 4", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    for (const name of ["alice", "bob"]) await sb.keygen(name, server.address);
    using term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"], { columns: 40 });
    await term.waitFor(/^connected to /);
    term.typeText("half typed");
    await term.waitFor(/half typed/); // on the line before the revocation, not racing it
    expect((await sb.run(["revoke", "alice"])).code).toBe(EXIT.OK);
    expect(await term.exitStatus()).toBe(EXIT.AUTH);
    const text = term.screen(true).join("").replace(/\s+/g, "");
    expect(text).toContain("bob>halftyped");
    expect(text).toContain("backbone:theserverendedthesession:thisclienthasbeenrevoked");
  });
});

describe.skipIf(!TMUX)("send on a terminal, server unreachable", () => {
  test("counts down while it waits, then one error line of its own (exit 3)", async () => {
    await using sb = await sandbox();
    const port = freePort();
    await enroll(sb, port);
    using term = new Terminal(
      sb,
      ["send", "bob", "hi", "--wait", "3", "--identity", "alice.identity"],
      {
        columns: 120,
      },
    );
    await term.waitFor(/^cannot connect to 127\.0\.0\.1:\d+: .*; retrying in \d+ s$/);
    expect(await term.exitStatus(10_000)).toBe(EXIT.UNREACHABLE);
    const lines = term.screen(true).filter((l) => l !== "" && !l.startsWith("Pane is dead"));
    expect(lines).toEqual([expect.stringMatching(/^backbone: cannot connect to 127\.0\.0\.1:\d+/)]);
  });
});

if (!TMUX) test.skip("terminal chat, server away: needs tmux (CI installs it)", () => {});
