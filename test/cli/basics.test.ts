/** The binary's help, version and usage errors: no server needed. */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { VERSION } from "../../src/version.ts";
import { cleanupAll, EXIT, expectError, sandbox } from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(20_000);

const COMMANDS = [
  "keygen",
  "serve",
  "chat",
  "send",
  "listen",
  "status",
  "clients",
  "revoke",
  "fingerprint",
];

// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for terminal escapes
const ESCAPE = /\x1b\[/;

describe("help and version", () => {
  test("--version prints the version and the protocol", async () => {
    await using sb = await sandbox();
    for (const flag of ["--version", "-V", "version"]) {
      expect(await sb.run([flag])).toEqual({
        code: EXIT.OK,
        stdout: `backbone ${VERSION} (backbone/1)\n`,
        stderr: "",
      });
    }
  });

  test("help lists every command, with a getting-started line", async () => {
    await using sb = await sandbox();
    const r = await sb.run(["help"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    expect(r.stdout).toStartWith(`backbone ${VERSION}`);
    for (const cmd of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} +\\S`, "m"));
    expect(r.stdout).toContain("Getting started:");
    // --help and -h show the same page.
    for (const args of [["--help"], ["-h"]]) expect(await sb.run(args)).toEqual(r);
    // No command at all is a usage error: the same page on stderr, exit 2.
    expect(await sb.run([])).toEqual({ code: EXIT.USAGE, stdout: "", stderr: r.stdout });
  });

  test("help keygen and keygen --help show keygen's options, without terminal escapes in a pipe", async () => {
    await using sb = await sandbox();
    const r = await sb.run(["help", "keygen"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    for (const opt of [
      "--name",
      "--data",
      "--server",
      "--out",
      "--bits",
      "--public-key",
      "--force",
    ])
      expect(r.stdout).toContain(opt);
    expect(r.stdout).toContain("backbone keygen");
    expect(r.stdout).not.toMatch(ESCAPE);
    expect(await sb.run(["keygen", "--help"])).toEqual(r);
    expect(await sb.run(["keygen", "-h"])).toEqual(r);
  });

  test("every command has a help page", async () => {
    await using sb = await sandbox();
    for (const cmd of COMMANDS) {
      const r = await sb.run([cmd, "--help"]);
      expect({ cmd, code: r.code, stderr: r.stderr }).toEqual({ cmd, code: EXIT.OK, stderr: "" });
      expect(r.stdout).toContain(`backbone ${cmd}`);
    }
  });
});

describe("usage errors: exit 2 and one line on stderr", () => {
  test("unknown command", async () => {
    await using sb = await sandbox();
    expectError(
      await sb.run(["frobnicate"]),
      EXIT.USAGE,
      /unknown command "frobnicate".*backbone help/,
    );
    expectError(await sb.run(["help", "frobnicate"]), EXIT.USAGE, /unknown command "frobnicate"/);
  });

  test("unknown option, with the command's help named", async () => {
    await using sb = await sandbox();
    expectError(
      await sb.run(["keygen", "--nmae", "alice"]),
      EXIT.USAGE,
      /^backbone: keygen: unknown option --nmae; did you mean --name\? \(see `backbone keygen --help`\)$/,
    );
    expectError(await sb.run(["send", "bob", "-x", "hi"]), EXIT.USAGE, /send: unknown option -x/);
  });

  test("missing argument, too many arguments, missing option value", async () => {
    await using sb = await sandbox();
    expectError(await sb.run(["chat"]), EXIT.USAGE, /chat: missing argument <peer>/);
    expectError(await sb.run(["send"]), EXIT.USAGE, /send: missing argument <to>/);
    expectError(await sb.run(["chat", "bob", "alice"]), EXIT.USAGE, /chat: too many arguments/);
    expectError(await sb.run(["keygen", "--name"]), EXIT.USAGE, /option --name needs a value/);
  });

  test("bad option values", async () => {
    await using sb = await sandbox();
    expectError(
      await sb.run(["serve", "--log-format", "xml"]),
      EXIT.USAGE,
      /--log-format must be one of text, json/,
    );
    expectError(
      await sb.run(["keygen", "--name", "alice", "--bits", "1024"]),
      EXIT.USAGE,
      /--bits must be one of 2048, 3072, 4096/,
    );
    expectError(
      await sb.run(["send", "bob", "hi", "--wait", "soon", "--identity", "x.identity"]),
      EXIT.USAGE,
      /--wait must be a number of seconds/,
    );
  });

  test("commands that read the data directory refuse a missing one", async () => {
    await using sb = await sandbox({ fresh: true });
    expectError(await sb.run(["clients"]), EXIT.USAGE, /no server data in .*data/);
    expectError(
      await sb.run(["fingerprint"]),
      EXIT.USAGE,
      /cannot read .*server\.pub: no such file/,
    );
  });
});
