/**
 * Keys people already have, made by the real `ssh-keygen` at test time: registered with
 * `keygen --public-key` in every public format ssh-keygen writes, their private halves
 * appended to the identity in every private format (plain and with a passphrase), and
 * each identity then logs in to a real server through the compiled binary and sends a
 * message. Ed25519 and ECDSA keys are refused. The passphrase prompt runs on a real
 * pseudo-terminal (tmux).
 */
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  BINARY,
  cleanupAll,
  EXIT,
  expectError,
  type Sandbox,
  type ServerInfo,
  sandbox,
  WAIT_MS,
} from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(90_000);

const SSH_KEYGEN = Bun.which("ssh-keygen");
const TMUX = Bun.which("tmux");
const PASS = "correct horse battery";

beforeAll(() => {
  if (!SSH_KEYGEN)
    throw new Error("ssh-keygen is needed (Debian: openssh-client; .ci/run installs it)");
});

/** Runs ssh-keygen in the sandbox; fails the test unless it succeeds. Returns stdout. */
function sshKeygen(sb: Sandbox, ...args: string[]): string {
  const r = Bun.spawnSync([SSH_KEYGEN as string, ...args], {
    cwd: sb.dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`ssh-keygen ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** `ssh-keygen -t rsa -b 2048 -f NAME -N PASS [extra]` with a comment, as a user would. */
function makeRsaKey(sb: Sandbox, name: string, pass: string, extra: string[] = []): void {
  sshKeygen(
    sb,
    "-q",
    "-t",
    "rsa",
    "-b",
    "2048",
    "-N",
    pass,
    "-C",
    `${name}@laptop`,
    "-f",
    name,
    ...extra,
  );
}

interface Variant {
  name: string;
  /** ssh-keygen options for the private key's format. */
  format: string[];
  /** The first line the private key file must start with (proves the format). */
  privateHeader: string;
  pass: string;
  /** Writes the public key file to register and returns its name. */
  publicFile(sb: Sandbox, name: string): string;
  publicHeader: RegExp;
}

const pubLine = (sb: Sandbox, name: string) => readFileSync(join(sb.dir, `${name}.pub`), "utf8");
const exported = (sb: Sandbox, name: string, mode: string, file: string) => {
  writeFileSync(join(sb.dir, file), sshKeygen(sb, "-e", "-m", mode, "-f", `${name}.pub`));
  return file;
};

const VARIANTS: Variant[] = [
  {
    name: "ossh",
    format: [],
    privateHeader: "-----BEGIN OPENSSH PRIVATE KEY-----",
    pass: "",
    publicFile: (_sb, name) => `${name}.pub`,
    publicHeader: /^ssh-rsa AAAA\S+ ossh@laptop\n$/,
  },
  {
    name: "osshpass",
    format: [], // OpenSSH format, bcrypt-pbkdf + aes256-ctr
    privateHeader: "-----BEGIN OPENSSH PRIVATE KEY-----",
    pass: PASS,
    // An authorized_keys line: options before the key, a comment after it.
    publicFile: (sb, name) => {
      writeFileSync(
        join(sb.dir, "authorized_keys"),
        `from="127.0.0.1",no-pty ${pubLine(sb, name)}`,
      );
      return "authorized_keys";
    },
    publicHeader: /^from="127\.0\.0\.1",no-pty ssh-rsa AAAA\S+ osshpass@laptop\n$/,
  },
  {
    name: "pkcs1",
    format: ["-m", "PEM"],
    privateHeader: "-----BEGIN RSA PRIVATE KEY-----",
    pass: "",
    publicFile: (sb, name) => exported(sb, name, "PEM", `${name}.pkcs1.pub`),
    publicHeader: /^-----BEGIN RSA PUBLIC KEY-----\n/,
  },
  {
    name: "pkcs1pass",
    format: ["-m", "PEM"], // OpenSSL-encrypted PEM (Proc-Type: 4,ENCRYPTED)
    privateHeader: "-----BEGIN RSA PRIVATE KEY-----",
    pass: PASS,
    publicFile: (sb, name) => exported(sb, name, "RFC4716", `${name}.rfc4716.pub`),
    publicHeader: /^---- BEGIN SSH2 PUBLIC KEY ----\n/,
  },
  {
    name: "pkcs8",
    format: ["-m", "PKCS8"],
    privateHeader: "-----BEGIN PRIVATE KEY-----",
    pass: "",
    publicFile: (sb, name) => exported(sb, name, "PKCS8", `${name}.spki.pub`),
    publicHeader: /^-----BEGIN PUBLIC KEY-----\n/,
  },
  {
    name: "pkcs8pass",
    format: ["-m", "PKCS8"],
    privateHeader: "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    pass: PASS,
    publicFile: (_sb, name) => `${name}.pub`,
    publicHeader: /^ssh-rsa AAAA/,
  },
];

/** A server and bob listening; returns what bob prints. */
async function serverAndBob(sb: Sandbox) {
  const server = await sb.serve();
  await sb.keygen("bob", server.address);
  const bob = sb.start(["listen", "--identity", "bob.identity"]);
  await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
  return { server, bob };
}

/** Registers `name`'s ssh-keygen public key and completes the identity with its private key. */
async function register(sb: Sandbox, server: ServerInfo, v: Variant): Promise<void> {
  makeRsaKey(sb, v.name, v.pass, v.format);
  expect(readFileSync(join(sb.dir, v.name), "utf8").split("\n")[0]).toBe(v.privateHeader);
  const pub = v.publicFile(sb, v.name);
  expect(readFileSync(join(sb.dir, pub), "utf8")).toMatch(v.publicHeader);
  const r = await sb.run([
    "keygen",
    "--name",
    v.name,
    "--public-key",
    pub,
    "--server",
    server.address,
  ]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
  // The fingerprint registered is the one of the key the user holds.
  const registered = /key: +(SHA256:\S+) \(registered public key\)/.exec(r.stdout)?.[1];
  const fp = await sb.run(["fingerprint", `${v.name}.pub`]);
  expect(fp.stdout).toBe(`${registered} ${v.name}.pub (RSA 2048)\n`);
  appendFileSync(join(sb.dir, `${v.name}.identity`), readFileSync(join(sb.dir, v.name)));
}

describe("RSA keys made by ssh-keygen", () => {
  test("every public format registers; every private format logs in and sends", async () => {
    await using sb = await sandbox();
    const { server, bob } = await serverAndBob(sb);
    let received = 0;
    for (const v of VARIANTS) {
      await register(sb, server, v);
      const args = ["send", "bob", `hello from ${v.name}`, "--identity", `${v.name}.identity`];
      if (v.pass) {
        // No terminal here (stdin and the session have none): the passphrase must come
        // from a file, and the error says so.
        expectError(
          await sb.run(args, { env: { TERM: "dumb" } }),
          EXIT.USAGE,
          new RegExp(
            `^backbone: ${v.name}\\.identity: the private key is protected by a passphrase: run on a terminal to be asked for it, or give --passphrase-file FILE$`,
          ),
        );
        writeFileSync(join(sb.dir, "wrong.pass"), "not it\n", { mode: 0o600 });
        expectError(
          await sb.run([...args, "--passphrase-file", "wrong.pass"]),
          EXIT.USAGE,
          new RegExp(`^backbone: ${v.name}\\.identity: wrong passphrase for the private key$`),
        );
        writeFileSync(join(sb.dir, "good.pass"), `${PASS}\n`, { mode: 0o600 });
        args.push("--passphrase-file", "good.pass");
      }
      const r = await sb.run(args);
      expect({ variant: v.name, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        variant: v.name,
        code: EXIT.OK,
        stdout: "",
        stderr: "",
      });
      received++;
      await bob.until(
        () =>
          bob.lines.stdout.some((l) => l.endsWith(`${v.name}: hello from ${v.name}`))
            ? true
            : undefined,
        `bob receives ${v.name}'s message`,
      );
    }
    expect(bob.lines.stdout).toHaveLength(received);
  });

  test("a passphrase file others can read is refused, as the key itself would be", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    await register(sb, server, VARIANTS[1] as Variant);
    writeFileSync(join(sb.dir, "open.pass"), `${PASS}\n`, { mode: 0o644 });
    expectError(
      await sb.run(["status", "--identity", "osshpass.identity", "--passphrase-file", "open.pass"]),
      EXIT.USAGE,
      /^backbone: permissions 0644 for 'open\.pass' are too open: a passphrase file must not be accessible by others \(fix: chmod 600 'open\.pass'\)$/,
    );
    expectError(
      await sb.run(["status", "--identity", "osshpass.identity", "--passphrase-file", "none.pass"]),
      EXIT.USAGE,
      /^backbone: cannot read none\.pass: no such file$/,
    );
    // Never from an argument.
    expectError(
      await sb.run(["status", "--identity", "osshpass.identity", "--passphrase", PASS]),
      EXIT.USAGE,
      /unknown option --passphrase;/,
    );
  });
});

describe("Ed25519 and ECDSA keys", () => {
  test("are refused with one line saying RSA is required and how to make one", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    sshKeygen(sb, "-q", "-t", "ed25519", "-N", "", "-C", "ed@laptop", "-f", "ed");
    sshKeygen(sb, "-q", "-t", "ecdsa", "-N", "", "-C", "ec@laptop", "-f", "ec");
    const hint = "backbone requires RSA \\(make one with: ssh-keygen -t rsa -b 3072 -f alice\\)$";
    expectError(
      await sb.run(["keygen", "--name", "ed", "--public-key", "ed.pub"]),
      EXIT.USAGE,
      new RegExp(`^backbone: ed\\.pub is an Ed25519 key: ${hint}`),
    );
    expectError(
      await sb.run(["keygen", "--name", "ec", "--public-key", "ec.pub"]),
      EXIT.USAGE,
      new RegExp(`^backbone: ec\\.pub is an ECDSA key: ${hint}`),
    );
    // Appended to an identity instead of the registered RSA key: refused the same way.
    makeRsaKey(sb, "rsa", "");
    await sb.run([
      "keygen",
      "--name",
      "rsa",
      "--public-key",
      "rsa.pub",
      "--server",
      server.address,
    ]);
    for (const [file, kind] of [
      ["ed", "Ed25519"],
      ["ec", "ECDSA"],
    ] as const) {
      const identity = readFileSync(join(sb.dir, "rsa.identity"), "utf8");
      writeFileSync(
        join(sb.dir, `${file}.identity`),
        identity + readFileSync(join(sb.dir, file), "utf8"),
        {
          mode: 0o600,
        },
      );
      expectError(
        await sb.run(["status", "--identity", `${file}.identity`]),
        EXIT.USAGE,
        new RegExp(`^backbone: ${file}\\.identity is an ${kind} key: ${hint}`),
      );
    }
    // A private key given where the public half belongs is named as such.
    expectError(
      await sb.run(["keygen", "--name", "oops", "--public-key", "rsa"]),
      EXIT.USAGE,
      /^backbone: rsa holds a private key \(OPENSSH PRIVATE KEY\): give its public half instead/,
    );
  });
});

/** A tmux server on its own socket in the sandbox, running one command in a 100×20 pane. */
function terminal(sb: Sandbox, command: string) {
  const socket = join(sb.dir, `tmux-${Math.random().toString(36).slice(2)}.sock`);
  const conf = join(sb.dir, "tmux.conf");
  writeFileSync(conf, "set -g remain-on-exit on\n");
  const { TMUX: _outer, ...env } = sb.env;
  const tmux = (...args: string[]) => {
    const r = Bun.spawnSync([TMUX as string, "-S", socket, "-f", conf, ...args], {
      env,
      stdout: "pipe",
      stderr: "pipe",
    });
    if (r.exitCode !== 0) throw new Error(`tmux ${args[0]}: ${r.stderr.toString()}`);
    return r.stdout.toString();
  };
  tmux("new-session", "-d", "-x", "100", "-y", "20", "-c", sb.dir, command);
  const screen = () => tmux("capture-pane", "-p");
  return {
    screen,
    type(text: string) {
      tmux("send-keys", "-l", text);
      tmux("send-keys", "Enter");
    },
    keys: (...keys: string[]) => tmux("send-keys", ...keys),
    /** Waits (polling: a terminal has no line events) until `test` holds for the screen. */
    async until(test: (s: string) => boolean, what: string): Promise<string> {
      const deadline = Date.now() + WAIT_MS * 2;
      for (;;) {
        const s = screen();
        if (test(s)) return s;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; screen:\n${s}`);
        await Bun.sleep(50);
      }
    },
    /** The exit status, once the command has ended. */
    async exited(): Promise<number> {
      await this.until(() => tmux("display", "-p", "#{pane_dead}").trim() === "1", "the exit");
      return Number(tmux("display", "-p", "#{pane_dead_status}").trim());
    },
    [Symbol.dispose]() {
      try {
        tmux("kill-server");
      } catch {
        // already gone
      }
    },
  };
}

describe.skipIf(!TMUX)("the passphrase on a terminal", () => {
  test("is asked without echo, again after a wrong one, and the message goes", async () => {
    await using sb = await sandbox();
    const { server, bob } = await serverAndBob(sb);
    await register(sb, server, VARIANTS[1] as Variant); // OpenSSH, encrypted
    // stdin is a pipe, as in `echo … | backbone send`: the prompt still reaches the
    // terminal, like ssh's.
    using term = terminal(
      sb,
      `echo 'piped text' | '${BINARY}' send bob --identity osshpass.identity`,
    );
    await term.until((s) => s.includes("passphrase for osshpass.identity:"), "the prompt");
    term.type("wrong guess");
    await term.until(
      (s) => s.includes("wrong passphrase. passphrase for osshpass.identity:"),
      "a second prompt",
    );
    term.type(PASS);
    expect(await term.exited()).toBe(EXIT.OK);
    const final = term.screen();
    expect(final).not.toContain("wrong guess");
    expect(final).not.toContain(PASS);
    await bob.until(
      () => (bob.lines.stdout.some((l) => l.endsWith("osshpass: piped text")) ? true : undefined),
      "bob receives the piped message",
    );
  });

  test("chat: after the passphrase, the terminal is chat's: the next line typed is sent", async () => {
    await using sb = await sandbox();
    const { server, bob } = await serverAndBob(sb);
    await register(sb, server, VARIANTS[3] as Variant); // PKCS#1, encrypted
    using term = terminal(sb, `'${BINARY}' chat bob --identity pkcs1pass.identity`);
    await term.until((s) => s.includes("passphrase for pkcs1pass.identity:"), "the prompt");
    term.type(PASS);
    await term.until((s) => /connected to|talking to bob|^bob>/m.test(s), "chat's start");
    term.type("typed after unlocking");
    await bob.until(
      () =>
        bob.lines.stdout.some((l) => l.endsWith("pkcs1pass: typed after unlocking"))
          ? true
          : undefined,
      "bob receives the typed line",
    );
    term.keys("C-d");
    expect(await term.exited()).toBe(EXIT.OK);
    expect(term.screen()).not.toContain(PASS);
  });
});
