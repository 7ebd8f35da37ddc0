/**
 * E2E key management through the compiled binary: one identity on two machines (refused
 * in one line until taken over), warnings said once per peer and naming it.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
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
        EXIT.FAILURE,
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
      EXIT.FAILURE,
      /another E2E identity for this client/,
    );
    expect(
      (await sb.run(["send", "bob", "B again", ...other, "--identity", "alice.identity"])).code,
    ).toBe(EXIT.OK);
    expect(await publishedKey(sb, alice)).toBe(keyB);
  });
});
