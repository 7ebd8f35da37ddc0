/** `keygen` and `fingerprint`: enrolling clients, identity files, registering a public key. */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupAll, EXIT, expectError, freePort, sandbox } from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(20_000);

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const FP = /SHA256:[A-Za-z0-9+/]{43}/;
const OPENSSL = Bun.which("openssl");

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

describe("keygen", () => {
  test("registers a client and writes a private identity file", async () => {
    await using sb = await sandbox({ fresh: true });
    const r = await sb.run(["keygen", "--name", "alice", "--bits", "2048"]);
    expect(r.code).toBe(EXIT.OK);
    const m =
      /^registered client "alice"\n {2}id: +(\S+)\n {2}key: +(SHA256:\S+)\n {2}server: +127\.0\.0\.1:7447 \(key (SHA256:\S+)\)\n {2}identity: +\.\/alice\.identity \(keep it private; give it to its user\)\n$/.exec(
        r.stdout,
      );
    expect(m).not.toBeNull();
    const [, id = "", key = "", serverKey = ""] = m ?? [];
    expect(id).toMatch(UUID);
    // The first keygen creates the server's data directory and key, and says so.
    expect(r.stderr).toContain(`creating server data directory ${sb.data}`);
    expect(r.stderr).toContain(`server key: ${serverKey} (new; in ${join(sb.data, "server.key")})`);
    expect(r.stderr).toContain("note: clients on other machines need --server HOST:PORT");

    const file = join(sb.dir, "alice.identity");
    expect(mode(file)).toBe(0o600);
    const text = readFileSync(file, "utf8");
    for (const line of [
      "backbone-identity: 1",
      `id: ${id}`,
      "name: alice",
      "server: 127.0.0.1:7447",
      `server-key: ${serverKey}`,
      `key: ${key}`,
    ])
      expect(text).toMatch(new RegExp(`^${line.replace(/[+/.]/g, "\\$&")}$`, "m"));
    expect(text).toContain("-----BEGIN PUBLIC KEY-----");
    expect(text).toContain("-----BEGIN PRIVATE KEY-----");

    // The pinned key is the data directory's, as `fingerprint` shows it.
    const fp = await sb.run(["fingerprint"]);
    expect(fp).toEqual({
      code: EXIT.OK,
      stdout: `${serverKey} ${join(sb.data, "server.pub")} (RSA 3072)\n`,
      stderr: "",
    });
    // The second keygen reuses them, quietly.
    const bob = await sb.run(["keygen", "--name", "bob", "--bits", "2048", "--server", "h:1"]);
    expect(bob.code).toBe(EXIT.OK);
    expect(bob.stdout).toContain(`server:    h:1 (key ${serverKey})`);
    expect(bob.stderr).toBe("");
  });

  test("a taken name is refused", async () => {
    await using sb = await sandbox();
    await sb.keygen("alice", "127.0.0.1:7447");
    const r = await sb.run([
      "keygen",
      "--name",
      "alice",
      "--bits",
      "2048",
      "--out",
      "again.identity",
    ]);
    expectError(r, EXIT.USAGE, /the name "alice" is already taken/);
    expect(existsSync(join(sb.dir, "again.identity"))).toBe(false);
    expectError(
      await sb.run(["keygen", "--name", "not a name", "--bits", "2048"]),
      EXIT.USAGE,
      /invalid name "not a name"/,
    );
  });

  test("--out writes elsewhere; an existing file is never overwritten without --force", async () => {
    await using sb = await sandbox();
    mkdirSync(join(sb.dir, "keys"));
    const r = await sb.keygen("alice", "127.0.0.1:7447", ["--out", "keys/a.identity"]);
    expect(r.stdout).toContain("identity:  keys/a.identity");
    expect(mode(join(sb.dir, "keys/a.identity"))).toBe(0o600);
    expect(existsSync(join(sb.dir, "alice.identity"))).toBe(false);

    const before = readFileSync(join(sb.dir, "keys/a.identity"), "utf8");
    expectError(
      await sb.run(["keygen", "--name", "bob", "--bits", "2048", "--out", "keys/a.identity"]),
      EXIT.USAGE,
      /keys\/a\.identity already exists; refusing to overwrite it \(use --force\)/,
    );
    expect(readFileSync(join(sb.dir, "keys/a.identity"), "utf8")).toBe(before);
    // The refused attempt did not use up the name.
    await sb.keygen("bob", "127.0.0.1:7447", ["--out", "keys/b.identity"]);

    // ./NAME.identity from another server's enrolment is refused too, then replaced with --force.
    writeFileSync(join(sb.dir, "carol.identity"), "old\n", { mode: 0o600 });
    expectError(
      await sb.run(["keygen", "--name", "carol", "--bits", "2048"]),
      EXIT.USAGE,
      /\.\/carol\.identity already exists; refusing to overwrite it \(use --out or --force\)/,
    );
    const forced = await sb.run(["keygen", "--name", "carol", "--bits", "2048", "--force"]);
    expect(forced.code).toBe(EXIT.OK);
    expect(readFileSync(join(sb.dir, "carol.identity"), "utf8")).toContain("name: carol");
    expect(mode(join(sb.dir, "carol.identity"))).toBe(0o600);
  });

  test("the port of DIR/config.toml goes into the identity", async () => {
    await using sb = await sandbox();
    const port = freePort();
    mkdirSync(sb.data, { recursive: true });
    writeFileSync(join(sb.data, "config.toml"), `port = ${port}\n`);
    const r = await sb.run(["keygen", "--name", "alice", "--bits", "2048"]);
    expect(r.code).toBe(EXIT.OK);
    expect(readFileSync(join(sb.dir, "alice.identity"), "utf8")).toContain(
      `server: 127.0.0.1:${port}\n`,
    );
    // … and `serve` listens there, so the identity works as written.
    const server = sb.start(["serve", "--host", "127.0.0.1"]);
    await server.waitFor(new RegExp(`^listening on 127\\.0\\.0\\.1:${port} `));
    const status = await sb.run(["status", "--identity", "alice.identity"]);
    expect({ code: status.code, stderr: status.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    // (status receives nothing, so it does not count alice as online)
    expect(status.stdout).toMatch(/^clients online: +0 of 1 registered$/m);
  });

  test.skipIf(!OPENSSL)("--public-key registers a key made elsewhere (needs openssl)", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    const openssl = (args: string[]) =>
      Bun.spawnSync([OPENSSL as string, ...args], { cwd: sb.dir, stderr: "pipe" });
    expect(
      openssl([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "dave.key",
      ]).exitCode,
    ).toBe(0);
    expect(openssl(["pkey", "-in", "dave.key", "-pubout", "-out", "dave.pub"]).exitCode).toBe(0);

    const r = await sb.run([
      "keygen",
      "--name",
      "dave",
      "--public-key",
      "dave.pub",
      "--server",
      server.address,
    ]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    const key = /key: +(SHA256:\S+) \(registered public key\)/.exec(r.stdout)?.[1];
    expect(key).toMatch(FP);
    expect(r.stdout).toContain("identity:  ./dave.identity (no private key: append yours");
    // … as the help explains.
    expect((await sb.run(["keygen", "--help"])).stdout).toContain("cat KEY >> NAME.identity");

    // The public key, the private key and the identity all show the same fingerprint.
    expect(await sb.run(["fingerprint", "dave.pub"])).toEqual({
      code: EXIT.OK,
      stdout: `${key} dave.pub (RSA 2048)\n`,
      stderr: "",
    });
    expect(await sb.run(["fingerprint", "dave.key"])).toEqual({
      code: EXIT.OK,
      stdout: `${key} dave.key (RSA 2048, private)\n`,
      stderr: "",
    });
    expect(await sb.run(["fingerprint", "dave.identity"])).toEqual({
      code: EXIT.OK,
      stdout: `${key} dave (client key)\n${server.fingerprint} ${server.address} (pinned server key)\n`,
      stderr: "",
    });

    // Written without a private key, the identity cannot be used yet …
    const text = readFileSync(join(sb.dir, "dave.identity"), "utf8");
    expect(text).toContain("-----BEGIN PUBLIC KEY-----");
    expect(text).not.toContain("PRIVATE KEY-----");
    expect(mode(join(sb.dir, "dave.identity"))).toBe(0o600);
    expectError(
      await sb.run(["status", "--identity", "dave.identity"]),
      EXIT.USAGE,
      /dave\.identity has no private key yet: append this client's private key/,
    );
    // … until its owner appends the private key (`cat dave.key >> dave.identity`).
    writeFileSync(join(sb.dir, "dave.identity"), readFileSync(join(sb.dir, "dave.key")), {
      flag: "a",
    });
    const status = await sb.run(["status", "--identity", "dave.identity"]);
    expect({ code: status.code, stderr: status.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    expect(status.stdout).toMatch(
      new RegExp(`^server key: +${server.fingerprint.replace(/[+/]/g, "\\$&")}$`, "m"),
    );

    // Something that is not a public key is refused, naming the file.
    expectError(
      await sb.run(["keygen", "--name", "erin", "--public-key", "dave.key"]),
      EXIT.USAGE,
      /^backbone: dave\.key holds a private key \(PRIVATE KEY\): give its public half instead/,
    );
    expectError(
      await sb.run(["keygen", "--name", "erin", "--public-key", "missing.pub"]),
      EXIT.USAGE,
      /cannot read missing\.pub: no such file/,
    );
  });
});

describe("fingerprint", () => {
  test("of an identity file, of the server key, and of something else", async () => {
    await using sb = await sandbox();
    const r = await sb.keygen("alice", "example.org:7447");
    const key = /key: +(SHA256:\S+)/.exec(r.stdout)?.[1] as string;
    const server = (await sb.run(["fingerprint", "--data", sb.data])).stdout.split(" ")[0];
    expect(server).toMatch(FP);
    // Fingerprints are public: an identity readable by others is still shown.
    const fp = await sb.run(["fingerprint", "alice.identity"]);
    expect(fp).toEqual({
      code: EXIT.OK,
      stdout: `${key} alice (client key)\n${server} example.org:7447 (pinned server key)\n`,
      stderr: "",
    });
    expect(await sb.run(["fingerprint", join(sb.data, "server.key")])).toEqual({
      code: EXIT.OK,
      stdout: `${server} ${join(sb.data, "server.key")} (RSA 3072, private)\n`,
      stderr: "",
    });
    writeFileSync(join(sb.dir, "notes.txt"), "hello\n");
    expectError(
      await sb.run(["fingerprint", "notes.txt"]),
      EXIT.USAGE,
      /notes\.txt: no key or identity found/,
    );
    expectError(
      await sb.run(["fingerprint", "nope.pem"]),
      EXIT.USAGE,
      /cannot read nope\.pem: no such file/,
    );
  });
});
