/**
 * What goes wrong, as a user sees it: a revoked client, identity files missing, ambiguous
 * or too open, an unreachable server, a server whose key changed. Each with its exit code
 * and its one clear message.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupAll, EXIT, expectError, freePort, sandbox } from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(20_000);

describe("revoke", () => {
  test("cuts a running chat off (exit 4); the identity no longer authenticates", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    await sb.keygen("alice", server.address);
    const bob = await sb.keygen("bob", server.address);
    const bobId = /id: +(\S+)/.exec(bob.stdout)?.[1] as string;
    const chat = sb.start(["chat", "alice", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");

    expect(await sb.run(["revoke", "bob"])).toEqual({
      code: EXIT.OK,
      stdout: `revoked client "bob" (${bobId}); the running server has stopped its sessions\n`,
      stderr: "",
    });
    // Cut off at once, although its input is still open.
    expect(await chat.exit()).toBe(EXIT.AUTH);
    expect(chat.text("stderr")).toMatch(/^connection lost \(revoked\)$/m);

    expectError(
      await sb.run(["send", "alice", "hi", "--identity", "bob.identity"]),
      EXIT.AUTH,
      /^backbone: authentication failed \(unknown or revoked client, or wrong key\)$/,
    );
    // Revoking again is harmless; an unknown client is a usage error.
    expect(await sb.run(["revoke", bobId])).toEqual({
      code: EXIT.OK,
      stdout: `client "bob" (${bobId}) was already revoked\n`,
      stderr: "",
    });
    expectError(await sb.run(["revoke", "nobody"]), EXIT.USAGE, /^backbone: no client "nobody"$/);
    // The list shows it.
    expect((await sb.run(["clients"])).stdout).toMatch(/ bob +SHA256:\S+ +revoked /);
  });
});

describe("finding the identity file", () => {
  test("none here and none given: exit 2, saying how to give one", async () => {
    await using sb = await sandbox();
    expectError(
      await sb.run(["status"]),
      EXIT.USAGE,
      /^backbone: no identity: pass --identity FILE, set BACKBONE_IDENTITY, or run in a directory with one \*\.identity file$/,
    );
    expectError(
      await sb.run(["send", "bob", "hi", "--identity", "nope.identity"]),
      EXIT.USAGE,
      /^backbone: cannot read nope\.identity: no such file$/,
    );
  });

  test("the only *.identity file here, else BACKBONE_IDENTITY, else a refusal listing them", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    mkdirSync(join(sb.dir, "alice"));
    mkdirSync(join(sb.dir, "both"));
    await sb.keygen("alice", server.address, ["--out", "alice/alice.identity"]);
    await sb.keygen("bob", server.address, ["--out", "both/bob.identity"]);
    copyFileSync(join(sb.dir, "alice/alice.identity"), join(sb.dir, "both/alice.identity"));

    // One file in the directory: used.
    const one = await sb.run(["status", "--json"], { cwd: join(sb.dir, "alice") });
    expect({ code: one.code, stderr: one.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    expect(JSON.parse(one.stdout).server_key).toBe(server.fingerprint);

    // Two: refused, both named.
    const both = join(sb.dir, "both");
    expectError(
      await sb.run(["status"], { cwd: both }),
      EXIT.USAGE,
      /^backbone: several identity files here \(alice\.identity, bob\.identity\): choose one with --identity FILE$/,
    );
    // BACKBONE_IDENTITY chooses.
    const env = await sb.run(["send", "alice", "from env"], {
      cwd: both,
      env: { BACKBONE_IDENTITY: "bob.identity" },
    });
    expect(env).toEqual({ code: EXIT.OK, stdout: "", stderr: expect.stringContaining("stored") });
    // --identity wins over BACKBONE_IDENTITY.
    const flag = await sb.run(["send", "alice", "from flag", "--identity", "bob.identity"], {
      cwd: both,
      env: { BACKBONE_IDENTITY: "nope.identity" },
    });
    expect(flag).toEqual({ code: EXIT.OK, stdout: "", stderr: expect.stringContaining("stored") });
    // Both came from bob.
    const listen = sb.start(["listen", "--json"], { cwd: join(sb.dir, "alice") });
    await listen.waitFor(/"name":"bob".*"data":"from flag"/);
    expect(listen.lines.stdout.map((l) => JSON.parse(l).data)).toEqual(["from env", "from flag"]);
  });

  test("an identity readable by others is refused with the chmod fix", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    await sb.keygen("alice", server.address);
    chmodSync(join(sb.dir, "alice.identity"), 0o644);
    expectError(
      await sb.run(["status", "--identity", "alice.identity"]),
      EXIT.USAGE,
      /^backbone: permissions 0644 for 'alice\.identity' are too open: .*\(fix: chmod 600 'alice\.identity'\)$/,
    );
    chmodSync(join(sb.dir, "alice.identity"), 0o600);
    expect((await sb.run(["status", "--identity", "alice.identity"])).code).toBe(EXIT.OK);
  });

  test("a damaged identity file is named and explained", async () => {
    await using sb = await sandbox();
    await sb.keygen("alice", "127.0.0.1:7447");
    const text = readFileSync(join(sb.dir, "alice.identity"), "utf8");
    writeFileSync(join(sb.dir, "alice.identity"), text.replace(/^id: .*$/m, "id: 42"));
    expectError(
      await sb.run(["status", "--identity", "alice.identity"]),
      EXIT.USAGE,
      /^backbone: alice\.identity: "id" is not a UUID$/,
    );
  });
});

describe("an unreachable server", () => {
  test("send --wait 1 gives up with exit 3", async () => {
    await using sb = await sandbox();
    const port = freePort();
    await sb.keygen("alice", `127.0.0.1:${port}`);
    const started = Date.now();
    expectError(
      await sb.run(["send", "bob", "hi", "--wait", "1", "--identity", "alice.identity"]),
      EXIT.UNREACHABLE,
      new RegExp(`^backbone: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused$`),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expectError(
      await sb.run(["status", "--identity", "alice.identity"]),
      EXIT.UNREACHABLE,
      /cannot connect to .*: connection refused$/,
    );
  });

  test("chat and listen keep retrying with a countdown, and connect once the server is up", async () => {
    await using sb = await sandbox();
    const port = freePort();
    mkdirSync(sb.data, { recursive: true });
    writeFileSync(join(sb.data, "config.toml"), `port = ${port}\nhost = "127.0.0.1"\n`);
    await sb.keygen("alice", `127.0.0.1:${port}`);
    await sb.keygen("bob", `127.0.0.1:${port}`);
    const chat = sb.start(["chat", "bob", "--identity", "alice.identity"]);
    const listen = sb.start(["listen", "--identity", "bob.identity"]);
    await listen.waitFor(/; retrying in \d+ s$/, "stderr");
    await chat.waitFor(
      new RegExp(
        `^cannot connect to 127\\.0\\.0\\.1:${port}: connection refused; retrying in \\d+ s$`,
      ),
      "stderr",
    );
    const server = sb.start(["serve"]);
    await server.waitFor(new RegExp(`^listening on 127\\.0\\.0\\.1:${port} `));
    await server.waitFor(/INFO +connect .*name=alice/, "stderr", 10_000);
    await server.waitFor(/INFO +connect .*name=bob/, "stderr", 10_000);
    chat.write("made it");
    await listen.waitFor(/^\[\d\d:\d\d:\d\d\] alice: made it$/);
  });
});

describe("a server whose key changed", () => {
  test("is refused with exit 5, naming both keys", async () => {
    await using sb = await sandbox();
    const real = await sb.serve();
    await sb.keygen("alice", real.address);
    // Another server (another data directory, so another key) where alice expects hers.
    const other = await sb.serve(["--data", join(sb.dir, "other")]);
    expect(other.fingerprint).not.toBe(real.fingerprint);
    const text = readFileSync(join(sb.dir, "alice.identity"), "utf8");
    writeFileSync(
      join(sb.dir, "alice.identity"),
      text.replace(`server: ${real.address}`, `server: ${other.address}`),
    );

    for (const args of [
      ["status", "--identity", "alice.identity"],
      ["send", "bob", "hi", "--identity", "alice.identity"],
      ["chat", "bob", "--identity", "alice.identity"],
    ]) {
      const r = await sb.run(args, { stdin: "hello\n" });
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({
        args,
        code: EXIT.SERVER_KEY,
        stdout: "",
      });
      expect(r.stderr).toContain("WARNING: SERVER IDENTIFICATION HAS CHANGED!");
      expect(r.stderr).toMatch(
        new RegExp(`^backbone: The pinned server key is +${esc(real.fingerprint)}$`, "m"),
      );
      expect(r.stderr).toMatch(
        new RegExp(`^backbone: the server presented +${esc(other.fingerprint)}$`, "m"),
      );
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
    // --server to the same impostor is refused alike; the real one still works.
    expect(
      (await sb.run(["status", "--identity", "alice.identity", "--server", other.address])).code,
    ).toBe(EXIT.SERVER_KEY);
    const ok = await sb.run(["status", "--identity", "alice.identity", "--server", real.address]);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
  });
});

function esc(s: string): string {
  return s.replace(/[+/.]/g, "\\$&");
}
