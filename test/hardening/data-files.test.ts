/**
 * Files in the data directory (docs/SECURITY.md § Files), with the real `backbone`
 * binary: the database and its -wal/-shm are 0600 whatever the umask; a data
 * directory another user could change is refused with the fix in one line (as sshd's
 * StrictModes); no file there is written through a planted symbolic link.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cleanupAll, EXIT, expectError, sandbox } from "../helpers/binary.ts";

afterEach(cleanupAll);

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8).padStart(4, "0");
const DB_FILES = ["backbone.db", "backbone.db-wal", "backbone.db-shm"];

describe("database files are private", () => {
  test("0600 under umask 000, in a data directory that already exists at 0755", async () => {
    await using sb = await sandbox();
    chmodSync(sb.data, 0o755);
    const server = await sb.serve([], { shell: "umask 000" });
    await sb.keygen("alice", server.address);
    const r = await sb.run(["send", "--identity", "alice.identity", "alice", "stored for later"], {
      shell: "umask 000",
    });
    expect(r.code).toBe(EXIT.OK);
    // The server holds the store open: its WAL and shared-memory files exist now.
    for (const f of DB_FILES)
      expect({ f, mode: mode(join(sb.data, f)) }).toEqual({ f, mode: "0600" });
  });

  test("files left 0644 (by an earlier version) are made 0600 at start", async () => {
    await using sb = await sandbox();
    await sb.run(["keygen", "--name", "seed2", "--bits", "2048", "--out", "seed2.identity"]);
    for (const f of DB_FILES) {
      try {
        chmodSync(join(sb.data, f), 0o644);
      } catch {
        // -wal/-shm are gone once the last connection closed
      }
    }
    chmodSync(join(sb.data, "backbone.db"), 0o644);
    await sb.serve();
    for (const f of DB_FILES)
      expect({ f, mode: mode(join(sb.data, f)) }).toEqual({ f, mode: "0600" });
  });
});

describe("a data directory another user could change is refused (StrictModes)", () => {
  for (const [m, shown] of [
    [0o775, "0775"],
    [0o777, "0777"],
    [0o720, "0720"],
  ] as const) {
    test(`mode ${shown}: serve and keygen refuse it, naming the fix`, async () => {
      await using sb = await sandbox();
      chmodSync(sb.data, m);
      const fix = new RegExp(
        `^backbone: data directory ${sb.data} is writable by group or others \\(mode ${shown}\\); fix: chmod go-w ${sb.data}$`,
      );
      expectError(await sb.run(["serve", "--port", "0"]), EXIT.USAGE, fix);
      expectError(
        await sb.run(["keygen", "--name", "x", "--bits", "2048", "--out", "x.identity"]),
        EXIT.USAGE,
        fix,
      );
      expectError(await sb.run(["revoke", "x"]), EXIT.USAGE, fix);
      chmodSync(sb.data, 0o700); // the fix works
      await sb.serve();
    });
  }

  test.skipIf(process.getuid?.() !== 0)(
    "owned by another user: refused, naming the fix",
    async () => {
      await using sb = await sandbox();
      chownSync(sb.data, 65534, 65534);
      expectError(
        await sb.run(["serve", "--port", "0"]),
        EXIT.USAGE,
        new RegExp(
          `^backbone: data directory ${sb.data} is owned by uid 65534, not by this user \\(uid 0\\); fix: chown 0 ${sb.data}, or use a directory of your own$`,
        ),
      );
    },
  );
});

describe("no file is written through a symbolic link", () => {
  test("planted serve.pid and server.pub links are replaced, their targets untouched", async () => {
    await using sb = await sandbox({ fresh: true });
    mkdirSync(sb.data, { mode: 0o700 });
    const outside = join(sb.dir, "outside");
    mkdirSync(outside);
    for (const f of ["serve.pid", "server.pub"]) {
      writeFileSync(join(outside, f), "precious\n");
      symlinkSync(join(outside, f), join(sb.data, f));
    }
    const server = await sb.serve();
    for (const f of ["serve.pid", "server.pub"]) {
      expect(readFileSync(join(outside, f), "utf8")).toBe("precious\n");
      expect(lstatSync(join(sb.data, f)).isSymbolicLink()).toBe(false);
    }
    expect(readFileSync(join(sb.data, "serve.pid"), "utf8")).toBe(`${server.proc.pid}\n`);
    expect(readFileSync(join(sb.data, "server.pub"), "utf8")).toMatch(
      /^-----BEGIN PUBLIC KEY-----/,
    );
  });

  test("a planted server.key link (dangling, so the key looks missing) is refused, nothing written through it", async () => {
    await using sb = await sandbox({ fresh: true });
    mkdirSync(sb.data, { mode: 0o700 });
    const target = join(sb.dir, "stolen.key");
    symlinkSync(target, join(sb.data, "server.key"));
    const r = await sb.run(["serve", "--port", "0"]);
    expectError(
      r,
      EXIT.USAGE,
      new RegExp(
        `^backbone: ${join(sb.data, "server.key")} is a symbolic link; refusing to open it`,
      ),
    );
    expect(() => statSync(target)).toThrow(); // no key was written through the link
  });

  test("a database (or -wal) that is a link is refused, and its target left alone", async () => {
    for (const f of ["backbone.db", "backbone.db-wal"]) {
      await using sb = await sandbox();
      const target = join(sb.dir, "elsewhere");
      writeFileSync(target, "");
      symlinkSync(target, join(sb.data, f));
      expectError(
        await sb.run(["serve", "--port", "0"]),
        EXIT.USAGE,
        new RegExp(`^backbone: ${join(sb.data, f)} is a symbolic link; refusing to open it`),
      );
      expect(readFileSync(target, "utf8")).toBe("");
    }
  });
});
