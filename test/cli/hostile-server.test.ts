/**
 * A server that holds the pinned key but turns hostile: its NOTICE reasons, status
 * fields and client names carry terminal controls. The CLI shows them, escaped, on
 * one line — it never lets them drive the terminal. The server runs in this process
 * (the library's own, over a store that lies); the client is the compiled binary.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { enrollClient } from "../../src/server/enroll.ts";
import { BackboneServer } from "../../src/server/server.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import type { QueuedMessage, QueueLimits } from "../../src/store/store.ts";
import { cleanupAll, EXIT, type Sandbox, sandbox } from "../helpers/binary.ts";
import { MemoryLog, testServerKey, until } from "../helpers/cluster.ts";

afterEach(cleanupAll);
setDefaultTimeout(30_000);

const EVIL = "\x1b[2J\u009d52;c;aGk=\x07\u202e\nfake line";
const EVIL_SHOWN = "\\x1b[2J\\x9d52;c;aGk=\\x07\\u202e\\nfake line";
/** Any raw control a terminal would act on. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for raw controls is the point
const RAW = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Refuses to store anything, with a hostile reason; counts and names lie too. */
class HostileStore extends SqliteStore {
  override async enqueue(_r: string, messages: QueuedMessage[], _l: QueueLimits) {
    return messages.map(() => ({ ok: false as const, reason: EVIL }));
  }
  override async pendingCount(): Promise<number> {
    return EVIL as unknown as number;
  }
  override async findClient(query: string) {
    const r = await super.findClient(query);
    return r && r.name === "mallory" ? { ...r, name: `mallory${EVIL}` } : r;
  }
}

async function hostileServer(sb: Sandbox) {
  const key = await testServerKey();
  const store = new HostileStore(join(sb.dir, "hostile.db"));
  const log = new MemoryLog();
  const server = await BackboneServer.start({
    key,
    store,
    log,
    settings: { host: "127.0.0.1", port: 0 },
  });
  const address = `127.0.0.1:${server.port}`;
  for (const name of ["alice", "bob", "mallory"]) {
    const { identityText } = await enrollClient(store, {
      name,
      server: address,
      serverKey: key,
      bits: 2048,
    });
    writeFileSync(join(sb.dir, `${name}.identity`), identityText, { mode: 0o600 });
  }
  return {
    /** Resolves once `n` clients have logged in. */
    logins: (n: number) => until(() => log.find("connect").length >= n, 10_000, `${n} logins`),
    async [Symbol.asyncDispose]() {
      await server.close("test over", 500);
      store.close();
    },
  };
}

describe("a hostile server's words, shown not obeyed", () => {
  test("send: a NOTICE reason with controls is one escaped line (exit 6)", async () => {
    await using sb = await sandbox();
    await using _server = await hostileServer(sb);
    const r = await sb.run(["send", "bob", "hi", "--no-e2e", "--identity", "alice.identity"]);
    expect(r.code).toBe(EXIT.UNDELIVERABLE);
    expect(r.stderr).toBe(`backbone: not delivered (rejected): ${EVIL_SHOWN}\n`);
  });

  test("status: fields with controls are escaped", async () => {
    await using sb = await sandbox();
    await using _server = await hostileServer(sb);
    const r = await sb.run(["status", "--identity", "alice.identity"]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).not.toMatch(RAW);
    expect(r.stdout).toContain(`messages queued:    ${EVIL_SHOWN} held`);
    const json = await sb.run(["status", "--json", "--identity", "alice.identity"]);
    expect(json.stdout).not.toMatch(RAW);
    expect(JSON.parse(json.stdout).messages_queued).toBe(EVIL);
  });

  test("listen and piped chat: a client name with controls is escaped", async () => {
    await using sb = await sandbox();
    await using server = await hostileServer(sb);
    const listen = sb.start(["listen", "--no-e2e", "--identity", "bob.identity"]);
    const chat = sb.start(["chat", "mallory", "--no-e2e", "--identity", "alice.identity"]);
    await server.logins(2);
    const r = await sb.run(["send", "bob", "hello", "--no-e2e", "--identity", "mallory.identity"]);
    expect(r.code).toBe(EXIT.OK);
    const line = await listen.waitFor(/hello$/);
    expect(line.input).toMatch(
      new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\] mallory${RegExp.escape(EVIL_SHOWN)}: hello$`),
    );
    // chat shows the peer's name in its notes: an offline-or-refused notice names it.
    chat.write("are you there");
    const note = await chat.waitFor(/not delivered/, "stderr");
    expect(note.input).not.toMatch(RAW);
    expect(note.input).toContain(`mallory${EVIL_SHOWN}`);
  });
});
