/**
 * E2E key management through the compiled binary: warnings said once per peer, not per
 * line, and naming the peer.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanupAll, EXIT, type Sandbox, sandbox } from "../helpers/binary.ts";

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
