/**
 * End-to-end encryption through the compiled binary: on by default, `--no-e2e`,
 * `listen --json` with "e2e" and "verified", `backbone verify` (safety number, QR code,
 * confirmation), and a verified peer whose key changes (loud warning, sending refused
 * with exit 7 until `verify --accept`).
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import encodeQR from "@paulmillr/qr";
import { cleanupAll, EXIT, keysPublished, type Sandbox, sandbox } from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(40_000);

const EXIT_KEY_CHANGED = 7;
const EXIT_MISMATCH = 8;
const EXIT_E2E_REQUIRED = 9;

async function setup(sb: Sandbox) {
  const server = await sb.serve();
  const ids: Record<string, string> = {};
  for (const name of ["alice", "bob"]) {
    const r = await sb.keygen(name, server.address);
    ids[name] = /id: +(\S+)/.exec(r.stdout)?.[1] as string;
  }
  return { server, ids };
}

function safetyDigits(stdout: string): string {
  const m = /Safety number with [^\n]*:\n\n((?: {4}(?:\d{5} ){3}\d{5}\n){3})/.exec(stdout);
  return (m?.[1] ?? "").replace(/\s+/g, "");
}

describe("E2E from the command line", () => {
  test("encrypted by default, --no-e2e, listen --json marks, verify with safety number and QR", async () => {
    await using sb = await sandbox();
    const { ids } = await setup(sb);
    const listen = sb.start(["listen", "--json", "--identity", "bob.identity"]);
    await keysPublished(sb, ids.bob as string);
    const sent = await sb.run(["send", "bob", "top secret", "--identity", "alice.identity"]);
    expect(sent).toEqual({ code: EXIT.OK, stdout: "", stderr: "" });
    const plain = await sb.run([
      "send",
      "bob",
      "in the clear",
      "--no-e2e",
      "--identity",
      "alice.identity",
    ]);
    expect(plain).toEqual({ code: EXIT.OK, stdout: "", stderr: "" });
    await listen.until(() => (listen.lines.stdout.length >= 2 ? true : undefined), "two messages");
    const rows = listen.lines.stdout.map((l) => JSON.parse(l));
    expect(rows).toMatchObject([
      { name: "alice", data: "top secret", e2e: true, verified: false },
      { name: "alice", data: "in the clear", e2e: false, verified: false },
    ]);
    // A peer known to have keys sent plaintext: bob is told.
    await listen.waitFor(/warning: received from alice without end-to-end encryption/, "stderr");
    listen.kill("SIGTERM");
    expect(await listen.exit()).toBe(EXIT.OK);

    // alice verifies bob: safety number, QR code, confirmation.
    const v = await sb.run(["verify", "bob", "--identity", "alice.identity"], { stdin: "y\n" });
    expect(v.code).toBe(EXIT.OK);
    const digits = safetyDigits(v.stdout);
    expect(digits).toMatch(/^\d{60}$/);
    // Through a pipe: no QR code (it is drawn with terminal colours), no escape at all.
    expect(v.stdout).not.toContain(encodeQR(digits, "term"));
    expect(v.stdout).not.toContain("\x1b");
    expect(v.stdout).toContain("Do they match? [y/N] bob is now verified.");
    expect(v.stderr).toBe("");
    // bob sees the same number; answering no verifies nothing (exit 8).
    const w = await sb.run(["verify", "alice", "--no-qr", "--identity", "bob.identity"], {
      stdin: "n\n",
    });
    expect({ code: w.code, stderr: w.stderr }).toEqual({ code: EXIT_MISMATCH, stderr: "" });
    expect(safetyDigits(w.stdout)).toBe(digits);
    expect(w.stdout).not.toContain("\x1b");
    expect(w.stdout).toContain("Not verified.");
    // Verified now: no question asked again.
    const again = await sb.run(["verify", "bob", "--no-qr", "--identity", "alice.identity"]);
    expect(again.code).toBe(EXIT.OK);
    expect(again.stdout).toContain("bob is already verified.");
  });

  test("listen --no-e2e shows an end-to-end encrypted message as a marker, not escaped ciphertext", async () => {
    await using sb = await sandbox();
    const { ids } = await setup(sb);
    const first = sb.start(["listen", "--identity", "bob.identity"]);
    await keysPublished(sb, ids.bob as string);
    first.kill("SIGTERM");
    await first.exit();
    const plain = sb.start(["listen", "--no-e2e", "--identity", "bob.identity"]);
    const sent = await sb.run(["send", "bob", "sealed", "--identity", "alice.identity"]);
    expect(sent.code).toBe(EXIT.OK);
    const line = (await plain.waitFor(/alice/)).input as string;
    expect(line).toMatch(
      /^\[\d\d:\d\d:\d\d\] alice(?: \(while you were away\))?: \[end-to-end encrypted: not readable with --no-e2e\]$/,
    );
    plain.kill("SIGTERM");
  });

  test("a verified peer's key changes: loud warning, sending refused (exit 7) until accepted", async () => {
    await using sb = await sandbox();
    const { ids } = await setup(sb);
    // Both publish keys and talk once; bob verifies alice.
    await sb.run(["send", "alice", "hi", "--identity", "bob.identity"]);
    await sb.run(["send", "bob", "hello", "--identity", "alice.identity"]);
    expect(
      (
        await sb.run(["verify", "alice", "--no-qr", "--identity", "bob.identity"], {
          stdin: "yes\n",
        })
      ).code,
    ).toBe(EXIT.OK);
    // alice re-installs: her E2E state is gone, a new identity key is published.
    const state = join(sb.dir, "xdg-state", "backbone", "e2e");
    rmSync(join(state, ids.alice as string), { recursive: true, force: true });
    // Half-removed (the generation counter left): refused as a bad state directory (exit 2,
    // one line saying what to do), not an "unexpected failure".
    const half = await sb.run(["send", "bob", "x", "--identity", "alice.identity"]);
    expect(half.code).toBe(EXIT.USAGE);
    expect(half.stderr.trim().split("\n")).toHaveLength(1);
    expect(half.stderr).toContain("remove the counter file to reset); or run with --no-e2e");
    rmSync(join(state, `${ids.alice}.generation`), { force: true });
    // Replacing the published keys of the old install is a deliberate step (--e2e-takeover).
    await sb.run(["send", "bob", "new me", "--e2e-takeover", "--identity", "alice.identity"]);
    // bob's next login: the message shows, unverified, with the warning.
    const listen = sb.start(["listen", "--json", "--identity", "bob.identity"]);
    const row = JSON.parse((await listen.waitFor(/new me/)).input);
    expect(row).toMatchObject({ e2e: true, verified: false });
    await listen.waitFor(/WARNING: PEER IDENTITY KEY HAS CHANGED!/, "stderr");
    await listen.waitFor(
      /nothing is sent to it until you check: backbone verify [0-9a-f-]{36} --accept/,
      "stderr",
    );
    listen.kill("SIGTERM");
    await listen.exit();
    const refused = await sb.run(["send", "alice", "are you you?", "--identity", "bob.identity"]);
    expect(refused.code).toBe(EXIT_KEY_CHANGED);
    expect(refused.stderr).toMatch(/identity key of verified peer alice changed/);
    // The hint is the command that resolves it: plain `verify` refuses while a change is pending.
    expect(refused.stderr).toContain("(check the new key with: backbone verify alice --accept)");
    const plain = await sb.run(["verify", "alice", "--no-qr", "--identity", "bob.identity"]);
    expect(plain.code).toBe(EXIT_KEY_CHANGED);
    expect(plain.stderr.trim().split("\n")).toHaveLength(1);
    expect(plain.stderr).toContain("backbone verify alice --accept");
    const accept = await sb.run(
      ["verify", "alice", "--accept", "--no-qr", "--identity", "bob.identity"],
      { stdin: "y\n" },
    );
    expect(accept.code).toBe(EXIT.OK);
    expect(accept.stdout).toContain("alice is now verified.");
    expect(
      (await sb.run(["send", "alice", "welcome back", "--identity", "bob.identity"])).code,
    ).toBe(EXIT.OK);
  });

  test("programs pin peers: --peer-key and --strict refuse with exit 9, never send plaintext", async () => {
    await using sb = await sandbox();
    const server = await setup(sb);
    await sb.keygen("carol", server.server.address); // never runs: no E2E keys
    expect((await sb.run(["send", "alice", "hi", "--identity", "bob.identity"])).code).toBe(
      EXIT.OK,
    );
    const strict = await sb.run(["send", "bob", "x", "--strict", "--identity", "alice.identity"]);
    expect(strict.code).toBe(EXIT_E2E_REQUIRED);
    expect(strict.stderr).toMatch(
      /^backbone: bob is not verified \(strict mode; verify it with backbone verify bob, or pin its key\)/m,
    );
    // Through a pipe, chat refuses each line alike and exits as send does (9, not 6).
    const piped = await sb.run(["chat", "bob", "--strict", "--identity", "alice.identity"], {
      stdin: "one\ntwo\n",
    });
    expect(piped.code).toBe(EXIT_E2E_REQUIRED);
    expect(piped.stderr).toMatch(/^backbone: line 1 not sent: bob is not verified/m);
    expect(piped.stderr).toMatch(/^backbone: line 2 not sent: bob is not verified/m);
    const v = await sb.run(["verify", "bob", "--no-qr", "--identity", "alice.identity"], {
      stdin: "y\n",
    });
    const key = /Their identity key: (SHA256:\S+)/.exec(v.stdout)?.[1] as string;
    expect(key).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(
      (await sb.run(["send", "bob", "x", "--strict", "--identity", "alice.identity"])).code,
    ).toBe(EXIT.OK);
    expect(
      (await sb.run(["send", "bob", "y", "--peer-key", key, "--identity", "alice.identity"])).code,
    ).toBe(EXIT.OK);
    const wrongKey = `SHA256:${"A".repeat(43)}`;
    const wrong = await sb.run([
      "send",
      "bob",
      "z",
      "--peer-key",
      wrongKey,
      "--identity",
      "alice.identity",
    ]);
    expect(wrong.code).toBe(EXIT_E2E_REQUIRED);
    expect(wrong.stderr).toContain(`not the pinned ${wrongKey}`);
    // A note to yourself is never end-to-end encrypted: --strict refuses it (exit 9).
    const self = await sb.run(["send", "alice", "x", "--strict", "--identity", "alice.identity"]);
    expect(self.code).toBe(EXIT_E2E_REQUIRED);
    expect(self.stderr).toMatch(
      /^backbone: not sent: a note to yourself is not end-to-end encrypted/,
    );
    // Nothing to verify yet: said in one line, with what makes it possible, and exit 9.
    const unverifiable = await sb.run(["verify", "carol", "--identity", "alice.identity"]);
    expect(unverifiable.code).toBe(EXIT_E2E_REQUIRED);
    expect(unverifiable.stderr).toBe(
      "backbone: carol has published no E2E keys: nothing to verify until it has run chat, send or listen once\n",
    );
    const noKeys = await sb.run(["send", "carol", "x", "--strict", "--identity", "alice.identity"]);
    expect(noKeys.code).toBe(EXIT_E2E_REQUIRED);
    expect(noKeys.stderr).toMatch(/carol has published no E2E keys/);
    expect(
      (await sb.run(["send", "carol", "x", "--peer-key", "nope", "--identity", "alice.identity"]))
        .code,
    ).toBe(EXIT.USAGE);
    expect(
      (await sb.run(["send", "carol", "x", "--no-e2e", "--strict", "--identity", "alice.identity"]))
        .code,
    ).toBe(EXIT.USAGE);
    // bob got exactly the three messages that were allowed, all encrypted.
    const listen = sb.start(["listen", "--json", "--identity", "bob.identity"]);
    await listen.until(() => (listen.lines.stdout.length >= 2 ? true : undefined), "messages");
    await listen.waitFor(/"data":"y"/);
    const rows = listen.lines.stdout.map((l) => JSON.parse(l));
    expect(rows.map((r) => [r.data, r.e2e])).toEqual([
      ["x", true],
      ["y", true],
    ]);
    listen.kill("SIGTERM");
    await listen.exit();
  });
});
