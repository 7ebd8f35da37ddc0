/**
 * `kill -9` of a receiving client between decrypting a stored E2E message and saving
 * its state, and between saving and acknowledging it to the server: after a restart,
 * each message is shown exactly once (docs/E2E.md § Client state, order of writes).
 * The receiver runs in its own process and is killed by a real SIGKILL at the named
 * point (BACKBONE_E2E_TEST_CRASH_AT).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseIdentity } from "../../src/client/identity.ts";
import { connectE2E } from "../../src/e2e/connect.ts";
import { enrollClient } from "../../src/server/enroll.ts";
import { startCluster, until } from "../helpers/cluster.ts";

const LISTENER = join(import.meta.dir, "../helpers/e2e-listener.ts");
const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

async function runListener(args: string[], crashAt?: string) {
  const child = Bun.spawn(["bun", LISTENER, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, BACKBONE_E2E_TEST_CRASH_AT: crashAt ?? "" },
  });
  const timer = setTimeout(() => child.kill(9), 20_000);
  const [out, err, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  clearTimeout(timer);
  const lines = out
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { text: string; e2e: boolean });
  return { lines, err, code, signal: child.signalCode };
}

describe("kill -9 of the receiver", () => {
  for (const point of ["after-decrypt", "after-persist"]) {
    test(`${point}: each stored message is shown exactly once after a restart`, async () => {
      await using c = await startCluster();
      const root = mkdtempSync(join(tmpdir(), "backbone-e2e-crash-"));
      roots.push(root);
      const enrolled = await enrollClient(c.store, {
        name: "bob",
        server: c.address,
        serverKey: c.server.key,
        bits: 2048,
      });
      const idFile = join(root, "bob.identity");
      writeFileSync(idFile, enrolled.identityText, { mode: 0o600 });
      const bobDir = join(root, "bob-state");
      // Bob publishes his keys once, then goes offline.
      const first = await connectE2E({
        identity: await parseIdentity(enrolled.identityText),
        server: c.address,
        e2e: { stateDir: bobDir },
      });
      await first.e2e.keysSynced;
      await first.client.close();
      first.e2e.close();
      // Alice queues 10 encrypted messages for him.
      const alice = await connectE2E({
        identity: { ...(await c.enroll("alice")), server: c.address },
        e2e: { stateDir: join(root, "alice-state") },
      });
      const texts = Array.from({ length: 10 }, (_, i) => `msg ${i}`);
      for (const t of texts) await alice.e2e.send("bob", t);
      await alice.client.ping();
      expect((await alice.client.serverStatus()).messages_queued).toBe(10);

      const args = [idFile, c.address, bobDir, String(texts.length)];
      const crashed = await runListener(args, point);
      expect(crashed.signal).toBe("SIGKILL");
      expect(crashed.lines).toEqual([]); // killed before the first message was shown
      // Nothing was acknowledged: the server still holds all ten.
      await until(
        async () => (await alice.client.serverStatus()).clients_online === 1,
        5000,
        "bob gone",
      );
      expect((await alice.client.serverStatus()).messages_queued).toBe(10);

      const again = await runListener(args);
      expect(again.err).toBe("");
      expect(again.code).toBe(0);
      expect(again.lines.map((l) => l.text)).toEqual(texts);
      expect(again.lines.every((l) => l.e2e)).toBe(true);
      await until(
        async () => (await alice.client.serverStatus()).messages_queued === 0,
        5000,
        "acknowledged",
      );
      await alice.client.close();
      alice.e2e.close();
    });
  }
});
