/**
 * End-to-end encrypted rooms through the compiled binary: `send '#ops'` encrypts to
 * every member (listen --json says "e2e": true), membership events carry the member's
 * key fingerprint, a keyless member is skipped with a warning, `--strict` refuses a room
 * with an unverified or keyless member (exit 9) and sends to one that qualifies,
 * `--no-e2e` sends plaintext (shown as such), and `chat '#ops'` on a terminal warns
 * once about unverified members and shows joins with their key.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupAll, EXIT, keysPublished, type Sandbox, sandbox } from "../helpers/binary.ts";
import { Terminal, TMUX } from "../helpers/tmux.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

const EXIT_E2E_REQUIRED = 9;
const as = (who: string) => ["--identity", `${who}.identity`];

async function clients(sb: Sandbox, names: string[]) {
  const server = await sb.serve();
  const ids: Record<string, string> = {};
  for (const name of names) {
    const r = await sb.keygen(name, server.address);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  return ids;
}

/** `who`'s recorded fingerprint of `peer` in its known_peers file. */
function knownKey(sb: Sandbox, who: string, peer: string): string {
  const file = join(sb.dir, "xdg-state", "backbone", "e2e", who, "known_peers");
  const line = readFileSync(file, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${peer} `));
  return line?.split(" ")[2] ?? "";
}

/** `who`'s own identity key fingerprint, as `backbone verify` shows it to `asker`. */
async function keyOf(sb: Sandbox, asker: string, who: string): Promise<string> {
  const v = await sb.run(["verify", who, "--no-qr", ...as(asker)], { stdin: "n\n" });
  return /Their identity key: (SHA256:\S+)/.exec(v.stdout)?.[1] as string;
}

describe("E2E rooms from the command line", () => {
  test("send '#ops' is encrypted to every member; events carry the key; keyless skipped; --strict; --no-e2e", async () => {
    await using sb = await sandbox();
    const ids = await clients(sb, ["alice", "bob", "carol", "dave"]);
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    await sb.run(["room", "join", "ops", ...as("bob")]);
    const bob = sb.start(["listen", "--json", ...as("bob")]);
    await keysPublished(sb, ids.bob as string);
    let r = await sb.run(["send", "#ops", "deploy", "at", "16:00", ...as("alice")]);
    expect([r.code, r.stderr]).toEqual([EXIT.OK, ""]);
    const row = JSON.parse((await bob.waitFor(/deploy at 16:00/)).input as string);
    expect(row).toMatchObject({ from: ids.alice, kind: "room", room: "ops", e2e: true });

    // carol (with keys) joins: bob's listen shows the event with carol's key.
    const carol = sb.start(["listen", "--json", ...as("carol")]);
    await keysPublished(sb, ids.carol as string);
    await sb.run(["room", "join", "ops", ...as("carol")]);
    const joined = JSON.parse((await bob.waitFor(/"event":"joined"/)).input as string);
    expect(joined).toMatchObject({
      kind: "room_event",
      event: "joined",
      room: "ops",
      member: { id: ids.carol, name: "carol" },
      verified: false,
    });
    expect(joined.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(joined.fingerprint).toBe(await keyOf(sb, "alice", "carol"));
    expect(knownKey(sb, ids.bob as string, ids.carol as string)).toBe(joined.fingerprint);

    // dave never ran with E2E: no keys. His join shows so; alice's message skips him.
    await sb.run(["room", "join", "ops", ...as("dave")]);
    const daveJoined = JSON.parse((await bob.waitFor(/"event":"joined".*dave/)).input as string);
    expect(daveJoined).toMatchObject({ fingerprint: null, verified: false });
    r = await sb.run(["send", "#ops", "skips dave", ...as("alice")]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stderr).toBe(
      "warning: dave in #ops gets no end-to-end encrypted messages: it has published no E2E keys (use --no-e2e to send plaintext to everyone)\n",
    );
    await carol.waitFor(/skips dave/);
    // --strict: dave has no keys, and nobody is verified: refused, nothing sent (exit 9).
    r = await sb.run(["send", "#ops", "strict one", "--strict", ...as("alice")]);
    expect(r.code).toBe(EXIT_E2E_REQUIRED);
    expect(r.stderr).toMatch(/^backbone: #ops: dave published no E2E keys; nothing sent$/m);
    r = await sb.run([
      "send",
      "#ops",
      "x",
      "--peer-key",
      `SHA256:${"A".repeat(43)}`,
      ...as("alice"),
    ]);
    expect(r.code).toBe(EXIT.USAGE);
    // A room that qualifies: alice and bob only, bob verified.
    await sb.run(["room", "create", "pair", ...as("alice")]);
    await sb.run(["room", "invite", "pair", "bob", ...as("alice")]);
    await sb.run(["room", "join", "pair", ...as("bob")]);
    r = await sb.run(["send", "#pair", "not yet", "--strict", ...as("alice")]);
    expect(r.code).toBe(EXIT_E2E_REQUIRED);
    expect(r.stderr).toMatch(/#pair: bob not verified \(strict mode/);
    expect(
      (await sb.run(["verify", "bob", "--no-qr", ...as("alice")], { stdin: "y\n" })).code,
    ).toBe(EXIT.OK);
    r = await sb.run(["send", "#pair", "verified pair", "--strict", ...as("alice")]);
    expect([r.code, r.stderr]).toEqual([EXIT.OK, ""]);
    const strictRow = JSON.parse((await bob.waitFor(/verified pair/)).input as string);
    expect(strictRow).toMatchObject({ room: "pair", e2e: true });
    // --no-e2e: plaintext, shown as such.
    r = await sb.run(["send", "#ops", "in the clear", "--no-e2e", ...as("alice")]);
    expect(r.code).toBe(EXIT.OK);
    const plain = JSON.parse((await bob.waitFor(/in the clear/)).input as string);
    expect(plain).toMatchObject({ room: "ops", e2e: false, verified: false });
    // Nothing refused ever arrived.
    const rows = bob.lines.stdout.map((l) => JSON.parse(l));
    expect(rows.some((x) => x.data === "strict one" || x.data === "not yet")).toBe(false);
  });

  test("an offline member gets the stored ciphertext at its next listen, decrypted", async () => {
    await using sb = await sandbox();
    const ids = await clients(sb, ["alice", "bob"]);
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    await sb.run(["room", "join", "ops", ...as("bob")]);
    const first = sb.start(["listen", ...as("bob")]);
    await keysPublished(sb, ids.bob as string);
    first.kill("SIGTERM");
    await first.exit();
    for (const t of ["one", "two"]) await sb.run(["send", "#ops", t, ...as("alice")]);
    const bob = sb.start(["listen", "--json", ...as("bob")]);
    await bob.waitFor(/"two"/);
    expect(bob.lines.stdout.map((l) => JSON.parse(l))).toMatchObject([
      { data: "one", room: "ops", kind: "room", e2e: true },
      { data: "two", room: "ops", kind: "room", e2e: true },
    ]);
  });
});

describe("E2E rooms and several sessions of one identity", () => {
  test("two listen processes of one member both print a live room message, decrypted", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    const ids: Record<string, string> = {};
    for (const name of ["alice", "bob"])
      ids[name] = /id: +(\S+)/.exec((await sb.keygen(name, server.address)).stdout)?.[1] as string;
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    await sb.run(["room", "join", "ops", ...as("bob")]);
    const one = sb.start(["listen", "--json", ...as("bob")]);
    const two = sb.start(["listen", "--json", ...as("bob")]);
    await keysPublished(sb, ids.bob as string);
    // Both sessions logged in (and so receive live).
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr", 10_000, 2);
    for (const t of ["first", "second"]) {
      const r = await sb.run(["send", "#ops", t, ...as("alice")]);
      expect([r.code, r.stderr]).toEqual([EXIT.OK, ""]);
    }
    for (const l of [one, two]) {
      await l.waitFor(/"second"/);
      expect(l.lines.stdout.map((x) => JSON.parse(x))).toMatchObject([
        { data: "first", room: "ops", e2e: true },
        { data: "second", room: "ops", e2e: true },
      ]);
    }
  });
});

describe.skipIf(!TMUX)("E2E room chat on a terminal", () => {
  test("chat '#ops': one warning about unverified members, joins shown with their key, lines encrypted", async () => {
    await using sb = await sandbox();
    const ids = await clients(sb, ["alice", "bob", "carol"]);
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    await sb.run(["room", "join", "ops", ...as("bob")]);
    const bob = sb.start(["listen", "--json", ...as("bob")]);
    await keysPublished(sb, ids.bob as string);
    using t = new Terminal(sb, ["chat", "#ops", ...as("alice")]);
    await t.waitFor(/^\* warning: #ops has members you have not verified: bob \(SHA256:/);
    await t.waitFor(/^#ops>/);
    t.type("hello team");
    const row = JSON.parse((await bob.waitFor(/hello team/)).input as string);
    expect(row).toMatchObject({ room: "ops", e2e: true });
    t.type("second line");
    await bob.waitFor(/second line/);
    const carol = sb.start(["listen", ...as("carol")]);
    await keysPublished(sb, ids.carol as string);
    await sb.run(["room", "join", "ops", ...as("carol")]);
    await t.waitFor(/^\* carol joined #ops \(key SHA256:[A-Za-z0-9+/]{43}, unverified\)$/);
    await t.waitFor(/^\* warning: carol in #ops is not verified; compare safety numbers/);
    t.type("/who");
    await t.waitFor(/^ {2}carol: online; key SHA256:[A-Za-z0-9+/]{43}, unverified$/);
    await t.waitFor(/^ {2}bob: online; key SHA256:[A-Za-z0-9+/]{43}, unverified$/);
    t.type("welcome carol");
    await carol.waitFor(/#ops alice: welcome carol$/);
    // The unverified-members warning came once, not per line.
    expect(t.screen().filter((l) => l.includes("has members you have not verified")).length).toBe(
      1,
    );
  });
});
