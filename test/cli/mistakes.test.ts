/**
 * The mistakes people make with paths and command names, each answered with one line
 * and exit 2 (usage): a port already taken, --data naming a file, --identity or --out
 * naming a directory, a missing directory, a mistyped command or option.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupAll, EXIT, expectError, type RunResult, sandbox } from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(30_000);

/** Like expectError, for `serve`, whose log lines may come first on stderr. */
function expectLastLine(r: RunResult, code: number, message: RegExp): void {
  const lines = r.stderr.trimEnd().split("\n");
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code, stdout: "" });
  expect(lines.at(-1)).toMatch(/^backbone: /);
  expect(lines.at(-1)).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(lines.filter((l) => l.startsWith("backbone: "))).toHaveLength(1);
}

describe("serve on a port already taken", () => {
  test("says the port is taken and how to choose another; a first start leaves no key behind", async () => {
    await using sb = await sandbox({ fresh: true });
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const port = String(holder.port);
      const data = join(sb.dir, "new", "data");
      const r = await sb.run(["serve", "--host", "127.0.0.1", "--port", port, "--data", data]);
      expectLastLine(
        r,
        EXIT.USAGE,
        new RegExp(
          `^backbone: cannot listen on 127\\.0\\.0\\.1:${port}: port ${port} is already in use .*; choose another with --port N \\(or port = N in config\\.toml\\)$`,
        ),
      );
      // The directories made for this start are gone with the key made for it.
      expect(existsSync(join(sb.dir, "new"))).toBe(false);

      // A data directory that existed keeps what it had, and gets no new key.
      const kept = join(sb.dir, "kept");
      mkdirSync(kept, { mode: 0o700 });
      writeFileSync(join(kept, "config.toml"), `port = ${port}\nhost = "127.0.0.1"\n`);
      const again = await sb.run(["serve", "--data", kept]);
      expectLastLine(again, EXIT.USAGE, /port \d+ is already in use/);
      expect(readdirSync(kept)).toEqual(["config.toml"]);
    } finally {
      holder.stop(true);
    }
  });

  test("the monitor's port taken: said as for the server's port, and a first start leaves no key behind", async () => {
    await using sb = await sandbox({ fresh: true });
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const port = holder.port;
      const data = join(sb.dir, "new", "data");
      const r = await sb.run([
        "serve",
        "--port",
        "0",
        "--data",
        data,
        "--monitor",
        `127.0.0.1:${port}`,
      ]);
      expectLastLine(
        r,
        EXIT.USAGE,
        new RegExp(
          `^backbone: cannot listen for the monitor on 127\\.0\\.0\\.1:${port}: port ${port} is already in use; choose another with --monitor HOST:PORT \\(or monitor = "HOST:PORT" in config\\.toml\\)$`,
        ),
      );
      expect(existsSync(join(sb.dir, "new"))).toBe(false);
    } finally {
      holder.stop(true);
    }
  });

  test("an address that is not this machine's is named", async () => {
    await using sb = await sandbox();
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a host.
    const r = await sb.run(["serve", "--host", "192.0.2.1", "--port", "0"]);
    expectLastLine(
      r,
      EXIT.USAGE,
      /^backbone: cannot listen on 192\.0\.2\.1:0: 192\.0\.2\.1 is not an address of this machine$/,
    );
  });
});

describe("a mistyped setting in config.toml", () => {
  test("is named with the setting it probably meant; exit 2", async () => {
    await using sb = await sandbox({ fresh: true });
    const data = join(sb.dir, "data");
    mkdirSync(data, { mode: 0o700 });
    writeFileSync(join(data, "config.toml"), "heartbeat_intervall = 5\n");
    const r = await sb.run(["serve", "--port", "0", "--data", data]);
    expectLastLine(
      r,
      EXIT.USAGE,
      /config\.toml: unknown setting "heartbeat_intervall"; did you mean heartbeat_interval\?$/,
    );
  });
});

describe("keygen that fails on a new data directory", () => {
  test("leaves no directory or server key behind", async () => {
    await using sb = await sandbox({ fresh: true });
    const ssh = Bun.spawnSync(
      ["ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", "small"],
      {
        cwd: sb.dir,
      },
    );
    expect(ssh.exitCode).toBe(0);
    expectError(
      await sb.run(["keygen", "--name", "bad name!", "--data", "new/data"]),
      EXIT.USAGE,
      /^backbone: invalid name "bad name!"/,
    );
    expectError(
      await sb.run([
        "keygen",
        "--name",
        "small",
        "--public-key",
        "small.pub",
        "--data",
        "new/data",
      ]),
      EXIT.USAGE,
      /^backbone: small\.pub: RSA key size must be one of 2048, 3072, 4096 bits$/,
    );
    expect(existsSync(join(sb.dir, "new"))).toBe(false);
  });
});

describe("--data naming a file", () => {
  test("every command that takes --data says it is a file", async () => {
    await using sb = await sandbox();
    const file = join(sb.dir, "notadir");
    writeFileSync(file, "x");
    const message = /^backbone: data directory .*notadir is a file, not a directory$/;
    for (const args of [
      ["serve", "--port", "0", "--data", file],
      ["keygen", "--name", "alice", "--data", file],
      ["clients", "--data", file],
      ["revoke", "alice", "--data", file],
      ["fingerprint", "--data", file],
    ]) {
      const r = await sb.run(args);
      expectError(r, EXIT.USAGE, message);
    }
    // BACKBONE_DATA is the same argument by another road.
    expectError(await sb.run(["clients"], { env: { BACKBONE_DATA: file } }), EXIT.USAGE, message);
    // A path through a file, too.
    expectError(
      await sb.run(["keygen", "--name", "alice", "--data", join(file, "sub")]),
      EXIT.USAGE,
      /^backbone: data directory .*notadir\/sub: a part of the path is a file$/,
    );
  });

  test("revoke on a missing data directory says there is no server there", async () => {
    await using sb = await sandbox({ fresh: true });
    expectError(
      await sb.run(["revoke", "alice"]),
      EXIT.USAGE,
      /^backbone: no server in .*data \(run "backbone serve" or "backbone keygen" there first\)$/,
    );
  });
});

describe("files and directories mixed up", () => {
  test("--identity naming a directory: one line, no chmod hint", async () => {
    await using sb = await sandbox();
    mkdirSync(join(sb.dir, "ids"), { mode: 0o755 });
    for (const args of [
      ["status", "--identity", "ids"],
      ["send", "bob", "hi", "--identity", "ids"],
      ["listen", "--identity", "ids"],
      ["chat", "bob", "--identity", "ids"],
    ]) {
      expectError(
        await sb.run(args),
        EXIT.USAGE,
        /^backbone: cannot read ids: is a directory, not a file$/,
      );
    }
    expectError(
      await sb.run(["status"], { env: { BACKBONE_IDENTITY: "ids" } }),
      EXIT.USAGE,
      /^backbone: cannot read ids: is a directory, not a file$/,
    );
  });

  test("keygen --out: a directory, or a file in a missing directory, is refused before registering", async () => {
    await using sb = await sandbox();
    mkdirSync(join(sb.dir, "ids"));
    writeFileSync(join(sb.dir, "afile"), "x");
    for (const force of [[], ["--force"]]) {
      expectError(
        await sb.run(["keygen", "--name", "alice", "--out", "ids", ...force]),
        EXIT.USAGE,
        /^backbone: --out ids is a directory: give a file name, such as ids\/NAME\.identity$/,
      );
    }
    expectError(
      await sb.run(["keygen", "--name", "alice", "--out", "nowhere/alice.identity"]),
      EXIT.USAGE,
      /^backbone: --out nowhere\/alice\.identity: no such directory nowhere$/,
    );
    expectError(
      await sb.run(["keygen", "--name", "alice", "--out", "afile/alice.identity"]),
      EXIT.USAGE,
      /^backbone: --out afile\/alice\.identity: afile is not a directory$/,
    );
    // Nothing was registered: the name is still free.
    await sb.keygen("alice", "127.0.0.1:7447");
  });

  test("other file arguments naming a directory or nothing", async () => {
    await using sb = await sandbox();
    mkdirSync(join(sb.dir, "d"));
    const cases: [string[], RegExp][] = [
      [
        ["serve", "--port", "0", "--config", "d"],
        /^backbone: cannot read config d: is a directory$/,
      ],
      [
        ["serve", "--port", "0", "--config", "none.toml"],
        /^backbone: cannot read config none\.toml: no such file$/,
      ],
      [["keygen", "--name", "a", "--public-key", "d"], /^backbone: cannot read d: is a directory$/],
      [
        ["keygen", "--name", "a", "--public-key", "none.pub"],
        /^backbone: cannot read none\.pub: no such file$/,
      ],
      [["fingerprint", "d"], /^backbone: cannot read d: is a directory$/],
      [["fingerprint", "none.pem"], /^backbone: cannot read none\.pem: no such file$/],
    ];
    for (const [args, message] of cases) expectError(await sb.run(args), EXIT.USAGE, message);
  });
});

describe("a mistyped command or option", () => {
  /** Two neighbours swapped, one letter dropped, one doubled: typos of `word`. */
  function typos(word: string): string[] {
    return [
      `${word.slice(0, 1)}${word[2]}${word[1]}${word.slice(3)}`,
      word.slice(0, -1) + (word.length > 4 ? "" : "x"),
      `${word.slice(0, 2)}${word[2]}${word.slice(2)}`,
    ];
  }

  test("every command: did you mean …?", async () => {
    await using sb = await sandbox();
    const commands = [
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
    for (const cmd of commands) {
      for (const typo of typos(cmd)) {
        if (typo === cmd) continue;
        const r = await sb.run([typo, "x"]);
        expectError(
          r,
          EXIT.USAGE,
          new RegExp(
            `^backbone: unknown command "${typo}"; did you mean (.*, )?${cmd}( or .*)?\\? \\(see \`backbone help\`\\)$`,
          ),
        );
      }
    }
    expectError(
      await sb.run(["sned", "bob", "hi"]),
      EXIT.USAGE,
      /^backbone: unknown command "sned"; did you mean send\?/,
    );
    expectError(await sb.run(["help", "sned"]), EXIT.USAGE, /did you mean send\?/);
    // Nothing close: no guess.
    expectError(
      await sb.run(["frobnicate"]),
      EXIT.USAGE,
      /^backbone: unknown command "frobnicate" \(see `backbone help`\)$/,
    );
  });

  test("options: did you mean --identity?", async () => {
    await using sb = await sandbox();
    expectError(
      await sb.run(["send", "bob", "hi", "--identiy", "x"]),
      EXIT.USAGE,
      /^backbone: send: unknown option --identiy; did you mean --identity\? /,
    );
    expectError(
      await sb.run(["serve", "--prot", "1"]),
      EXIT.USAGE,
      /^backbone: serve: unknown option --prot; did you mean --port\? /,
    );
    expectError(
      await sb.run(["keygen", "--pubkey", "x"]),
      EXIT.USAGE,
      /^backbone: keygen: unknown option --pubkey \(see/,
    );
  });
});
