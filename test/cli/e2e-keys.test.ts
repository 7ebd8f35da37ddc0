/**
 * E2E key management through the compiled binary: one identity on two machines (refused
 * in one line until taken over), warnings said once per peer and naming it.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cleanupAll,
  EXIT,
  expectError,
  keysPublished,
  type Sandbox,
  sandbox,
} from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

async function setup(sb: Sandbox, names = ["alice", "bob"]) {
  const server = await sb.serve();
  const ids: Record<string, string> = {};
  for (const name of names) {
    const r = await sb.keygen(name, server.address);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  return { server, ids };
}

const count = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l)).length;

describe("E2E warnings", () => {
  test("chat to a peer without keys warns once, not at every line", async () => {
    await using sb = await sandbox();
    await setup(sb);
    // bob never ran: no keys; three lines through chat.
    const chat = await sb.run(["chat", "bob", "--identity", "alice.identity"], {
      stdin: "one\ntwo\nthree\n",
    });
    expect(chat.code).toBe(EXIT.OK);
    expect(count(chat.stderr, /without end-to-end encryption/)).toBe(1);
    expect(chat.stderr).toContain(
      "warning: sending to bob without end-to-end encryption: the peer has published no E2E keys",
    );
  });
});

/** The identity key the directory holds for `id` (base64), from the server's database. */
async function publishedKey(sb: Sandbox, id: string): Promise<string | null> {
  const { SqliteStore } = await import("../../src/store/sqlite.ts");
  const { dataPaths } = await import("../../src/server/datadir.ts");
  const store = new SqliteStore(dataPaths(sb.data).db, { readonly: true });
  try {
    const k = await store.keys.keyIdentity(id);
    return k ? Buffer.from(k).toString("base64") : null;
  } finally {
    store.close();
  }
}

describe("one identity, two machines", () => {
  test("a second E2E state for the same identity is refused in one line until --e2e-takeover", async () => {
    await using sb = await sandbox();
    const { ids } = await setup(sb);
    const alice = ids.alice as string;
    // Machine A: its default state directory; publishes its keys.
    const a = await sb.run(["send", "bob", "from A", "--identity", "alice.identity"]);
    expect(a.code).toBe(EXIT.OK);
    await keysPublished(sb, alice);
    const keyA = await publishedKey(sb, alice);
    // Machine B: same identity file, its own E2E state.
    const other = ["--e2e-state", join(sb.dir, "machine-b")];
    for (const cmd of [
      ["send", "bob", "from B", ...other],
      ["listen", ...other],
    ]) {
      const b = await sb.run([...cmd, "--identity", "alice.identity"]);
      expectError(
        b,
        EXIT.IDENTITY_ELSEWHERE,
        /another E2E identity for this client \(SHA256:[A-Za-z0-9+/]{43}\), not this machine's .*--e2e-takeover/,
      );
    }
    // Nothing replaced, nothing sent from B.
    expect(await publishedKey(sb, alice)).toBe(keyA);
    // B takes over on purpose: its key is published, its message goes.
    const t = await sb.run([
      "send",
      "bob",
      "from B",
      ...other,
      "--e2e-takeover",
      "--identity",
      "alice.identity",
    ]);
    expect(t.code).toBe(EXIT.OK);
    expect(t.stderr).not.toContain("another E2E identity");
    const keyB = await publishedKey(sb, alice);
    expect(keyB).not.toBe(keyA);
    // Now machine A is the one refused, and B keeps working.
    expectError(
      await sb.run(["send", "bob", "A again", "--identity", "alice.identity"]),
      EXIT.IDENTITY_ELSEWHERE,
      /another E2E identity for this client/,
    );
    expect(
      (await sb.run(["send", "bob", "B again", ...other, "--identity", "alice.identity"])).code,
    ).toBe(EXIT.OK);
    expect(await publishedKey(sb, alice)).toBe(keyB);
  });
});

describe("backbone e2e rotate", () => {
  test("a verified peer rotates its key: the other side keeps it verified, with a quiet note", async () => {
    await using sb = await sandbox();
    const { ids } = await setup(sb);
    await sb.run(["send", "alice", "hi", "--identity", "bob.identity"]);
    await sb.run(["send", "bob", "hello", "--identity", "alice.identity"]);
    const v = await sb.run(["verify", "alice", "--no-qr", "--identity", "bob.identity"], {
      stdin: "y\n",
    });
    expect(v.code).toBe(EXIT.OK);
    const before = /Their identity key: (SHA256:\S+)/.exec(v.stdout)?.[1] as string;

    const r = await sb.run(["e2e", "rotate", "--identity", "alice.identity"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    const after = /New E2E identity key: (SHA256:\S+)/.exec(r.stdout)?.[1] as string;
    expect(r.stdout).toContain(`Signed by the old one: ${before}`);
    expect(after).not.toBe(before);
    const status = await sb.run(["e2e", "status", "--identity", "alice.identity"]);
    expect(status.code).toBe(EXIT.OK);
    expect(status.stdout).toContain(`E2E identity key: ${after}`);
    expect(status.stdout).toContain(`${before} → ${after}`);
    expect(status.stdout).toMatch(/Retired key SHA256:\S+: still decrypts for 30 days/);

    await sb.run(["send", "bob", "from my new key", "--identity", "alice.identity"]);
    const listen = sb.start(["listen", "--json", "--identity", "bob.identity"]);
    const row = JSON.parse((await listen.waitFor(/from my new key/)).input);
    expect(row).toMatchObject({ e2e: true, verified: true });
    await listen.waitFor(/replaced its E2E identity key by one signed with the old/, "stderr");
    listen.kill("SIGTERM");
    await listen.exit();
    expect(listen.text("stderr")).toContain(
      `note: alice (${ids.alice}) replaced its E2E identity key by one signed with the old (${before} → ${after}); still verified`,
    );
    expect(listen.text("stderr")).not.toContain("WARNING");
    // Sending to alice is not blocked, and verify says she is still verified.
    expect((await sb.run(["send", "alice", "ok", "--identity", "bob.identity"])).code).toBe(
      EXIT.OK,
    );
    const again = await sb.run(["verify", "alice", "--no-qr", "--identity", "bob.identity"]);
    expect(again.stdout).toContain(`Their identity key: ${after}`);
    expect(again.stdout).toContain("alice is already verified.");
    expectError(
      await sb.run(["e2e", "spin", "--identity", "alice.identity"]),
      EXIT.USAGE,
      /e2e: unknown action "spin" \(one of rotate, status, export, import\)/,
    );
  });
});

describe("automatic session reset", () => {
  test("a peer who re-installed while messages were queued for it gets them again", async () => {
    await using sb = await sandbox();
    const { ids } = await setup(sb);
    // bob publishes keys; alice writes twice while bob is away.
    expect((await sb.run(["send", "alice", "hi", "--identity", "bob.identity"])).code).toBe(
      EXIT.OK,
    );
    for (const t of ["queued one", "queued two"])
      expect((await sb.run(["send", "bob", t, "--identity", "alice.identity"])).code).toBe(EXIT.OK);
    // bob re-installs: his E2E state is gone.
    const state = join(sb.dir, "xdg-state", "backbone", "e2e");
    rmSync(join(state, ids.bob as string), { recursive: true, force: true });
    rmSync(join(state, `${ids.bob}.generation`), { force: true });
    const bob = sb.start(["listen", "--json", "--e2e-takeover", "--identity", "bob.identity"]);
    // Told once, with alice's name (his known_peers is gone: asked from the server).
    await bob.waitFor(
      new RegExp(
        `warning: an end-to-end encrypted message from alice \\(${ids.alice}\\) could not be decrypted: .*; asked the sender to start a new session and send it again`,
      ),
      "stderr",
    );
    // alice comes online: she gets the request and sends both again on a new session.
    const alice = sb.start(["listen", "--identity", "alice.identity"]);
    await alice.waitFor(
      new RegExp(
        `note: bob \\(${ids.bob}\\) could not decrypt 2 messages of yours .*; sent again on a new session`,
      ),
      "stderr",
    );
    await bob.until(() => (bob.lines.stdout.length >= 2 ? true : undefined), "two messages");
    expect(bob.lines.stdout.map((l) => JSON.parse(l))).toMatchObject([
      { name: "alice", data: "queued one", e2e: true },
      { name: "alice", data: "queued two", e2e: true },
    ]);
    // bob's key did change, unverified: alice is told loudly, as for any new key.
    expect(alice.text("stderr")).toContain("WARNING: PEER IDENTITY KEY HAS CHANGED!");
    expect(count(bob.text("stderr"), /could not be decrypted/)).toBe(1);
    for (const p of [alice, bob]) {
      p.kill("SIGTERM");
      expect(await p.exit()).toBe(EXIT.OK);
    }
  });
});

describe("backbone e2e export / import", () => {
  test("moves the E2E state to another machine under a passphrase; the old copy is never used again", async () => {
    await using sb = await sandbox();
    const { ids } = await setup(sb);
    await sb.run(["send", "alice", "hi", "--identity", "bob.identity"]);
    await sb.run(["send", "bob", "hello", "--identity", "alice.identity"]);
    const v = await sb.run(["verify", "alice", "--no-qr", "--identity", "bob.identity"], {
      stdin: "y\n",
    });
    expect(v.code).toBe(EXIT.OK);
    const pass = join(sb.dir, "pass");
    const wrong = join(sb.dir, "wrong");
    writeFileSync(pass, "correct horse battery staple\n", { mode: 0o600 });
    writeFileSync(wrong, "not it\n", { mode: 0o600 });
    const file = join(sb.dir, "alice.e2e");
    const ex = await sb.run([
      "e2e",
      "export",
      file,
      "--e2e-passphrase-file",
      pass,
      "--identity",
      "alice.identity",
    ]);
    expect({ code: ex.code, stderr: ex.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The file holds no key in the clear.
    const state = join(sb.dir, "xdg-state", "backbone", "e2e", ids.alice as string);
    expect(readFileSync(file, "utf8")).not.toContain(
      JSON.parse(readFileSync(join(state, "state.json"), "utf8")).identity.signingSecret,
    );
    // The old machine refuses to use the moved state (one line), and sends nothing.
    expectError(
      await sb.run(["send", "bob", "old copy", "--identity", "alice.identity"]),
      EXIT.FAILURE,
      /was exported to another machine .* backbone e2e import/,
    );
    // The new machine: wrong passphrase refused; right one installs it.
    const other = ["--e2e-state", join(sb.dir, "machine-b")];
    const args = (p: string) => ["e2e", "import", file, "--e2e-passphrase-file", p, ...other];
    expectError(
      await sb.run([...args(wrong), "--identity", "alice.identity"]),
      EXIT.USAGE,
      /wrong passphrase/,
    );
    expectError(
      await sb.run([...args(pass), "--identity", "bob.identity"]),
      EXIT.USAGE,
      /holds the E2E state of client/,
    );
    const im = await sb.run([...args(pass), "--identity", "alice.identity"]);
    expect({ code: im.code, stderr: im.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    // Same identity as published: no takeover needed, bob sees no key change, still verified.
    expect(
      (await sb.run(["send", "bob", "from machine B", ...other, "--identity", "alice.identity"]))
        .code,
    ).toBe(EXIT.OK);
    const listen = sb.start(["listen", "--json", "--identity", "bob.identity"]);
    const row = JSON.parse((await listen.waitFor(/from machine B/)).input);
    expect(row).toMatchObject({ e2e: true, verified: true });
    listen.kill("SIGTERM");
    await listen.exit();
    expect(listen.text("stderr")).not.toContain("WARNING");
    // A second import over the live state needs --force.
    expectError(
      await sb.run([...args(pass), "--identity", "alice.identity"]),
      EXIT.USAGE,
      /already holds an E2E state .*--force/,
    );
  });
});
