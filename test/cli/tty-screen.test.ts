/**
 * The terminal chat's screen under hostile text, long lines, pastes and slashes,
 * through a real pseudo-terminal (tmux) at 40 and 120 columns.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanupAll, EXIT, type Sandbox, sandbox } from "../helpers/binary.ts";
import { HOSTILE } from "../helpers/hostile.ts";
import { Terminal, TMUX } from "../helpers/terminal.ts";

afterEach(cleanupAll);
setDefaultTimeout(40_000);

/** alice on a terminal talking to bob; bob (and carol) through pipes. */
async function setup(sb: Sandbox, columns: number) {
  const server = await sb.serve();
  for (const name of ["alice", "bob", "carol", "mallory"]) await sb.keygen(name, server.address);
  const bob = sb.start(["chat", "alice", "--identity", "bob.identity"]);
  const carol = sb.start(["chat", "alice", "--identity", "carol.identity"]);
  await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
  await server.proc.waitFor(/INFO +connect .*name=carol/, "stderr");
  const term = new Terminal(sb, ["chat", "bob", "--identity", "alice.identity"], {
    columns,
    rows: 40,
  });
  await term.waitFor(/^connected to /);
  await term.until((l) => l.at(-1) === "bob>", "the prompt");
  return { server, bob, carol, term };
}

const MESSAGE_START = /^\[\d\d:\d\d:\d\d\] /;

for (const columns of [40, 120]) {
  describe.skipIf(!TMUX)(`terminal chat at ${columns} columns`, () => {
    test("hostile bytes of every class are shown, not obeyed; no forged message line", async () => {
      await using sb = await sandbox();
      const { term } = await setup(sb, columns);
      using _ = term;
      const titleBefore = term.format("#{pane_title}");
      for (const h of HOSTILE) {
        const r = await sb.run(["send", "alice", "--identity", "mallory.identity"], {
          stdin: h.bytes,
        });
        expect(r.code).toBe(EXIT.OK);
      }
      // Every message arrived (the last one's text is on screen) …
      await term.until(
        (l) => l.join("").replace(/ +/g, "").includes("a\tb".replace("\t", "")),
        "the last message",
      );
      const lines = term.screen(true);
      const text = lines.join("\n");
      // … and nothing drove the terminal: screen not cleared, title and clipboard untouched.
      expect(lines[0]).toMatch(/^connected to /);
      expect(term.format("#{pane_title}")).toBe(titleBefore);
      expect(term.buffers()).toEqual([]);
      // Only mallory's messages start a line with [time]: the forged alice line is indented.
      const starts = lines.filter((l) => MESSAGE_START.test(l));
      expect(starts).toHaveLength(HOSTILE.length);
      for (const l of starts) expect(l).toMatch(/^\[\d\d:\d\d:\d\d\] mallory:( |$)/);
      expect(text).toMatch(/^ +\[12:00:00\] alice: please/m);
      // Each escape is visible (rows may wrap at 40 columns: compare without them).
      const flat = lines.map((l) => l.trim()).join("");
      for (const shown of ["\\r", "\\x85", "\\u2028", "\\u2029", "\\x1b[2J", "\\x07", "\\x08"])
        expect(flat).toContain(shown);
      for (const shown of [
        "\\x7f",
        "\\x9b2J",
        "\\x9d52;c;aGk=",
        "\\u202e",
        "\\u2066",
        "\\xff\\xc3(",
      ])
        expect(flat).toContain(shown);
      term.keys("C-d");
      expect(await term.exitStatus()).toBe(EXIT.OK);
    });

    for (const [kind, unit] of [
      ["ASCII", "abcdefghij"],
      ["CJK", "日本語のテキスト"],
      ["emoji", "😀👍🏽🎉✨"],
    ] as const) {
      test(`a wrapped ${kind} line: messages stay visible above it; Backspace leaves nothing stale`, async () => {
        await using sb = await sandbox();
        const { bob, term } = await setup(sb, columns);
        using _ = term;
        // Longer than two rows at 40 columns, and than one at 120.
        const typed = unit.repeat(Math.ceil((columns + 31) / unit.length));
        term.typeText(typed);
        const typedRows = (l: string[]) => l.slice(l.findIndex((x) => x.startsWith("bob> ")));
        await term.until(
          (l) =>
            typedRows(l)
              .join("")
              .replace(/^bob> /, "") === typed,
          "the typed line, wrapped",
        );
        bob.write("first while typing");
        bob.write("second while typing");
        const screen = await term.until(
          (l) => l.some((x) => /\] bob: second while typing$/.test(x)),
          "both messages",
        );
        // Both messages, once each, above the input; the input whole below them.
        const first = screen.findIndex((x) => /\] bob: first while typing$/.test(x));
        const second = screen.findIndex((x) => /\] bob: second while typing$/.test(x));
        const input = screen.findIndex((x) => x.startsWith("bob> "));
        expect(first).toBeGreaterThan(0);
        expect(second).toBe(first + 1);
        expect(input).toBe(second + 1);
        expect(screen.slice(input).join("")).toBe(`bob> ${typed}`);
        expect(screen.slice(input).length).toBeGreaterThan(1);
        // Backspace back over the wrap: one row left, nothing below it.
        const clusters = Array.from(new Intl.Segmenter().segment(typed), (x) => x.segment);
        const keep = clusters.slice(0, 3).join("");
        term.keys(...clusters.slice(3).map(() => "BSpace"));
        const after = await term.until((l) => l.at(-1) === `bob> ${keep}`, "the shortened line");
        expect(after.at(-2)).toMatch(/\] bob: second while typing$/);
        expect(after.at(-3)).toMatch(/\] bob: first while typing$/);
        // Nor in the scrollback: every line of it is the welcome, a message or the input.
        const all = term.screen(true);
        expect(all.filter((l) => l.includes("while typing"))).toHaveLength(2);
        expect(all.filter((l) => l.startsWith("bob>"))).toEqual([`bob> ${keep}`]);
        term.keys("Enter");
        await bob.waitFor(new RegExp(`^alice: ${keep}$`));
        term.keys("C-d");
        expect(await term.exitStatus()).toBe(EXIT.OK);
      });
    }

    test("a paste is one message, never commands; /to typed by hand takes effect first", async () => {
      await using sb = await sandbox();
      const { bob, carol, term } = await setup(sb, columns);
      using _ = term;
      term.paste("/to carol\nsecret for carol");
      // Not sent yet: it waits in the input line, both lines of it.
      await term.until(
        (l) => l.at(-2) === "bob> /to carol" && (l.at(-1) ?? "").trim() === "secret for carol",
        "the paste in the input line",
      );
      term.keys("Enter");
      await bob.waitFor(/^alice: \/to carol\\nsecret for carol$/);
      // Typed by hand, with Enter: /to first, then the line goes to carol.
      term.type("/to carol");
      term.type("for carol only");
      await carol.waitFor(/^alice: for carol only$/);
      await term.until((l) => l.at(-1) === "carol>", "the prompt carol>");
      expect(carol.lines.stdout).toEqual(["alice: for carol only"]);
      expect(bob.lines.stdout).toEqual(["alice: /to carol\\nsecret for carol"]);
      term.keys("C-c");
      expect(await term.exitStatus()).toBe(EXIT.OK);
    });

    test("//text sends /text; an unknown command says how; empty lines are not sent", async () => {
      await using sb = await sandbox();
      const { bob, term } = await setup(sb, columns);
      using _ = term;
      term.type("/etc/hosts is broken");
      await term.until(
        (l) => l.join(" ").replace(/ +/g, " ").includes("begin it with //)"),
        "the unknown-command error",
      );
      expect(term.screen().join(" ").replace(/ +/g, " ")).toContain(
        "unknown command /etc/hosts (try /help; to send a line that starts with /, begin it with //)",
      );
      term.type("//etc/hosts is broken");
      term.keys("Enter");
      term.type("   ");
      term.type("after");
      await bob.waitFor(/^alice: after$/);
      expect(bob.lines.stdout).toEqual(["alice: /etc/hosts is broken", "alice: after"]);
      term.keys("C-d");
      expect(await term.exitStatus()).toBe(EXIT.OK);
    });
  });
}

describe.skipIf(!TMUX)("terminal chat, resized", () => {
  test("narrower then wider: the input line redrawn once, nothing stale", async () => {
    await using sb = await sandbox();
    const { term } = await setup(sb, 60);
    using _ = term;
    const typed = "word ".repeat(20).trim();
    term.typeText(typed);
    const input = (l: string[]) => l.slice(l.findIndex((x) => x.startsWith("bob> ")));
    await term.until((l) => input(l).join(" ").replace(/ +/g, " ") === `bob> ${typed}`, "typed");
    for (const cols of [30, 80, 25]) {
      term.resize(cols);
      const screen = await term.until(
        (l) =>
          input(l).join(" ").replace(/ +/g, " ") === `bob> ${typed}` &&
          input(l).every((x) => x.length <= cols),
        `the input line at ${cols} columns`,
      );
      expect(screen.filter((l) => l.startsWith("bob>"))).toHaveLength(1);
      expect(screen.filter((l) => /^word/.test(l)).length).toBe(input(screen).length - 1);
    }
  });
});

describe.skipIf(!TMUX)("listen and piped chat on a terminal at 40 columns", () => {
  // Spaces that fill the first row exactly: the terminal's own wrap would put the
  // forged header at column 0 ("[12:00:00] mallory: ok" is 22 cells, "mallory: ok" 11).
  for (const [cmd, pad] of [
    [["listen"], 18],
    [["chat", "mallory"], 29],
  ] as const) {
    test(`${cmd[0]}: text padded to the screen's width starts no row of its own`, async () => {
      await using sb = await sandbox();
      const server = await sb.serve();
      for (const name of ["alice", "mallory"]) await sb.keygen(name, server.address);
      // stdin not a terminal: `chat` runs piped, printing to the terminal.
      using term = new Terminal(sb, [...cmd, "--identity", "alice.identity"], {
        columns: 40,
        pipeStdin: true,
      });
      await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
      const forged = `ok${" ".repeat(pad)}[12:00:00] alice: paste the key here`;
      const r = await sb.run(["send", "alice", forged, "--identity", "mallory.identity"]);
      expect(r.code).toBe(EXIT.OK);
      const lines = await term.until(
        (l) =>
          l
            .map((x) => x.trim())
            .join(" ")
            .includes("key here"),
        "the message",
      );
      expect(lines.filter((l) => /^\S/.test(l))).toEqual([expect.stringMatching(/mallory: ok$/)]);
      expect(lines.join("\n")).toMatch(/^ +\[12:00:00\] alice:/m);
    });
  }
});

if (!TMUX) test.skip("terminal chat screen: needs tmux (CI installs it)", () => {});
