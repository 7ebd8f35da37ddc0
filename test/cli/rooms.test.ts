/**
 * Rooms through the compiled binary: `room …` with and without --json, `send '#NAME'`,
 * `listen` (text and --json), and `chat '#NAME'` on a real pseudo-terminal (tmux).
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  cleanupAll,
  EXIT,
  expectError,
  keysPublished,
  type Sandbox,
  sandbox,
} from "../helpers/binary.ts";
import { Terminal, TMUX } from "../helpers/tmux.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

async function clients(sb: Sandbox, names: string[]) {
  const server = await sb.serve();
  const ids: Record<string, string> = {};
  for (const name of names) {
    const r = await sb.keygen(name, server.address);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  return { server, ids };
}

const as = (who: string) => ["--identity", `${who}.identity`];

/** Waits until `room members` (asked as `asker`) shows every one of `names` online. */
async function untilOnline(sb: Sandbox, room: string, asker: string, names: string[]) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await sb.run(["room", "members", room, "--json", ...as(asker)]);
    const members = JSON.parse(r.stdout).members as { name: string; online: boolean }[];
    if (names.every((n) => members.some((m) => m.name === n && m.online))) return;
    if (Date.now() > deadline) throw new Error(`${names.join(", ")} not online in #${room}`);
    await Bun.sleep(50);
  }
}

describe("backbone room", () => {
  test("create, invite, join, list, members, owner, remove, leave — text and --json", async () => {
    await using sb = await sandbox();
    const { ids } = await clients(sb, ["alice", "bob", "carol"]);
    let r = await sb.run(["room", "create", "ops", ...as("alice")]);
    expect([r.code, r.stdout]).toEqual([EXIT.OK, "created #ops (invite-only)\n"]);
    expectError(
      await sb.run(["room", "create", "#ops", ...as("bob")]),
      EXIT.REFUSED,
      /^backbone: room create: a room #ops exists already$/,
    );
    r = await sb.run(["room", "invite", "#ops", "bob", "carol", ...as("alice")]);
    expect(r.stdout).toBe("invited bob to #ops\ninvited carol to #ops\n");
    r = await sb.run(["room", "list", "--json", ...as("bob")]);
    expect(JSON.parse(r.stdout)).toEqual({
      room: "ops",
      state: "invited",
      owner: false,
      public: false,
      members: 1,
    });
    r = await sb.run(["room", "join", "ops", ...as("bob")]);
    expect(r.stdout).toBe("joined #ops\n");
    // bob is listening (online); carol is only invited.
    const listen = sb.start(["listen", ...as("bob")]);
    await untilOnline(sb, "ops", "alice", ["bob"]);
    r = await sb.run(["room", "members", "ops", ...as("alice")]);
    const rows = r.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^NAME +ROLE +PRESENCE +ID$/);
    expect(rows[1]).toMatch(new RegExp(`^alice +owner +you +${ids.alice}$`));
    // In the order they took their place: carol was invited before bob joined.
    expect(rows[2]).toMatch(new RegExp(`^carol +invited +- +${ids.carol}$`));
    expect(rows[3]).toMatch(new RegExp(`^bob +member +online +${ids.bob}$`));
    const json = JSON.parse(
      (await sb.run(["room", "members", "ops", "--json", ...as("bob")])).stdout,
    );
    expect(json.members.map((m: { name: string; online: boolean }) => [m.name, m.online])).toEqual([
      ["alice", false],
      ["carol", false],
      ["bob", true],
    ]);
    r = await sb.run(["room", "owner", "ops", "bob", ...as("alice")]);
    expect(r.stdout).toBe("#ops is now owned by bob\n");
    expectError(
      await sb.run(["room", "remove", "ops", "carol", ...as("alice")]),
      EXIT.REFUSED,
      /^backbone: room remove carol: only the owner of #ops may remove$/,
    );
    // Refusals of every kind are exit 10: an invite-only room one is not invited to, a
    // request only members may make, one member of several refused.
    expectError(
      await sb
        .run(["room", "create", "staff", ...as("carol")])
        .then(() => sb.run(["room", "join", "staff", ...as("alice")])),
      EXIT.REFUSED,
      /^backbone: room join: no room #staff \(or you are not invited\)$/,
    );
    r = await sb.run(["room", "invite", "staff", "alice", "nobody", ...as("carol")]);
    expect([r.code, r.stdout, r.stderr]).toEqual([
      EXIT.REFUSED,
      "invited alice to #staff\n",
      'backbone: room invite nobody: no client "nobody"\n',
    ]);
    r = await sb.run(["room", "remove", "ops", "carol", "--json", ...as("bob")]);
    expect(JSON.parse(r.stdout)).toEqual({
      room: "ops",
      op: "remove",
      member: { id: ids.carol, name: "carol" },
    });
    r = await sb.run(["room", "list", ...as("alice")]);
    expect(r.stdout.split("\n")[1]).toMatch(/^#ops +member +invite-only +2 members$/);
    expect((await sb.run(["room", "leave", "ops", ...as("alice")])).stdout).toBe("left #ops\n");
    r = await sb.run(["room", "leave", "ops", ...as("bob")]);
    expect(r.stdout).toBe("left #ops (its last member: the room is gone)\n");
    listen.kill();
  });

  test("usage errors: one line, exit 2, before connecting", async () => {
    await using sb = await sandbox();
    await clients(sb, ["alice"]);
    expectError(
      await sb.run(["room", "create", "bad name", ...as("alice")]),
      EXIT.USAGE,
      /^backbone: invalid room name "bad name": /,
    );
    expectError(
      await sb.run(["room", "frobnicate", "x", ...as("alice")]),
      EXIT.USAGE,
      /unknown action/,
    );
    expectError(
      await sb.run(["room", "invite", "ops", ...as("alice")]),
      EXIT.USAGE,
      /missing argument <MEMBER>/,
    );
    expectError(
      await sb.run(["room", "list", "ops", ...as("alice")]),
      EXIT.USAGE,
      /takes no arguments/,
    );
    expectError(
      await sb.run(["room", "join", "ops", "--public", ...as("alice")]),
      EXIT.USAGE,
      /--public/,
    );
  });
});

describe("send and listen with rooms", () => {
  test("send '#ops' reaches every member's listen, text and --json; a non-member gets exit 6", async () => {
    await using sb = await sandbox();
    const { ids } = await clients(sb, ["alice", "bob", "carol", "mallory"]);
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    for (const who of ["bob", "carol"]) await sb.run(["room", "join", "ops", ...as(who)]);
    const bob = sb.start(["listen", ...as("bob")]);
    const carol = sb.start(["listen", "--json", ...as("carol")]);
    await untilOnline(sb, "ops", "alice", ["bob", "carol"]);
    // Their first E2E run publishes their keys: messages to the room are then encrypted.
    for (const who of ["bob", "carol"]) await keysPublished(sb, ids[who] as string);
    let r = await sb.run(["send", "#ops", "deploy", "at", "16:00", ...as("alice")]);
    expect([r.code, r.stderr]).toEqual([EXIT.OK, ""]);
    await bob.waitFor(/^\[\d\d:\d\d:\d\d\] #ops alice: deploy at 16:00$/);
    const line = await carol.waitFor(/^\{.*\}$/);
    const row = JSON.parse(line[0] as string);
    expect([row.from, row.name, row.kind, row.room, row.data]).toEqual([
      ids.alice,
      "alice",
      "room",
      "ops",
      "deploy at 16:00",
    ]);
    // Peer-controlled text is escaped on the terminal.
    await sb.run(["send", "#ops", "\x1b[2Jgotcha", ...as("alice")]);
    await bob.waitFor(/^\[\d\d:\d\d:\d\d\] #ops alice: \\x1b\[2Jgotcha$/);
    r = await sb.run(["send", "#ops", "let me in", ...as("mallory")]);
    expectError(r, EXIT.UNDELIVERABLE, /^backbone: not sent: you are not a member of #ops$/);
  });

  test("an offline member gets the room's messages at its next listen, marked with the room", async () => {
    await using sb = await sandbox();
    await clients(sb, ["alice", "bob"]);
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    await sb.run(["room", "join", "ops", ...as("bob")]);
    for (const t of ["one", "two", "three"]) await sb.run(["send", "#ops", t, ...as("alice")]);
    const bob = sb.start(["listen", ...as("bob")]);
    await bob.waitFor(/#ops alice \(while you were away\): three$/);
    expect(bob.lines.stdout.map((l) => l.replace(/^\[[\d:]+\] /, ""))).toEqual([
      "#ops alice (while you were away): one",
      "#ops alice (while you were away): two",
      "#ops alice (while you were away): three",
    ]);
  });
});

describe("chat and send through pipes", () => {
  test("echo … | chat '#ops' and | send '#ops': every member gets it, marked with the room", async () => {
    await using sb = await sandbox();
    const { ids } = await clients(sb, ["alice", "bob"]);
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    await sb.run(["room", "join", "ops", ...as("bob")]);
    const bob = sb.start(["listen", ...as("bob")]);
    await untilOnline(sb, "ops", "alice", ["bob"]);
    await keysPublished(sb, ids.bob as string);
    const r = await sb.run(["chat", "#ops", ...as("alice")], {
      stdin: "build finished\nall green\n",
    });
    // Opening the room warns once about members not verified (docs/E2E.md § Rooms).
    expect(r.code).toBe(EXIT.OK);
    expect(r.stderr).toMatch(
      /^warning: #ops has members you have not verified: bob \(SHA256:[A-Za-z0-9+/]{43}\); compare safety numbers with: backbone verify bob\n$/,
    );
    const s = await sb.run(["send", "#ops", ...as("alice")], { stdin: "from stdin\n" });
    expect(s.code).toBe(EXIT.OK);
    await bob.waitFor(/#ops alice: from stdin$/);
    expect(bob.lines.stdout.map((l) => l.replace(/^\[[\d:]+\] /, ""))).toEqual([
      "#ops alice: build finished",
      "#ops alice: all green",
      "#ops alice: from stdin",
    ]);
    // A room one may not enter: exit 10 (a room refusal), one line.
    await sb.run(["room", "create", "staff", ...as("alice")]);
    expectError(
      await sb.run(["chat", "#staff", ...as("bob")], { stdin: "hi\n" }),
      EXIT.REFUSED,
      /^backbone: #staff: no room #staff \(or you are not invited\)$/,
    );
  });
});

describe.skipIf(!TMUX)("chat in a room on a terminal", () => {
  test("chat '#ops': messages with the room, /who lists members, events, /leave, /join", async () => {
    await using sb = await sandbox();
    await clients(sb, ["alice", "bob", "carol"]);
    await sb.run(["room", "create", "ops", "--public", ...as("alice")]);
    await sb.run(["room", "create", "dev", "--public", ...as("carol")]);
    await sb.run(["room", "join", "ops", ...as("carol")]);
    const listen = sb.start(["listen", ...as("carol")]);
    await untilOnline(sb, "ops", "alice", ["carol"]);
    using t = new Terminal(sb, ["chat", "#ops", ...as("bob")]); // bob joins on the way
    await t.waitFor(/talking to #ops/);
    await t.waitFor(/^#ops>/);
    await sb.run(["send", "#ops", "hello room", ...as("alice")]);
    await t.waitFor(/\] #ops alice: hello room$/);
    t.type("hi from bob");
    await listen.waitFor(/#ops bob: hi from bob$/);
    t.type("/who");
    await t.waitFor(/^#ops: 3 members$/);
    await t.waitFor(/^ {2}alice \(owner\): offline/);
    await t.waitFor(/^ {2}bob \(you\): online$/);
    // With E2E on, each member's key (docs/E2E.md § Rooms).
    await t.waitFor(/^ {2}carol: online; key SHA256:[A-Za-z0-9+/]{43}, unverified$/);
    await sb.run(["room", "leave", "ops", ...as("carol")]);
    await t.waitFor(/^\* carol left #ops \(key SHA256:[A-Za-z0-9+/]{43}, unverified\)$/);
    t.type("/join #dev");
    await t.waitFor(/^\* now talking in #dev$/);
    await t.waitFor(/^#dev>/);
    t.type("/leave");
    await t.waitFor(/^\* you left #dev$/);
    t.type("/to #nosuch");
    await t.waitFor(/^\* #nosuch: no room #nosuch \(or you are not invited\)$/);
  });
});
