/**
 * The client-side E2E state: private directory and files, no symlinks followed, the
 * lock (live and stale, across real processes), rollback detection, persistence, and
 * known_peers' trust-on-first-use rules.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_ONE_TIME_PREKEYS } from "../src/e2e/constants.ts";
import { KnownPeers } from "../src/e2e/known-peers.ts";
import { E2EState } from "../src/e2e/state.ts";
import { ALICE, BOB, MALLORY } from "./helpers/e2e.ts";

const CAROL = "3c2b1a09-8d7e-4f6a-9b5c-4d3e2f1a0b9c";

const made: string[] = [];
function tempRoot(): string {
  const d = mkdtempSync(join(tmpdir(), "backbone-e2e-state-"));
  made.push(d);
  return d;
}
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});
const mode = (p: string) => statSync(p).mode & 0o777;
const code = (c: string) => expect.objectContaining({ code: c });

/** A process that has exited: its PID is (almost certainly) free. */
async function deadPid(): Promise<number> {
  const p = Bun.spawn(["true"]);
  await p.exited;
  return p.pid;
}

describe("state directory", () => {
  test("created 0700 with 0600 files, no temporary files left", () => {
    const dir = join(tempRoot(), "alice");
    const st = E2EState.open(dir, ALICE);
    st.save();
    expect(mode(dir)).toBe(0o700);
    for (const f of readdirSync(dir)) expect(mode(join(dir, f)), f).toBe(0o600);
    expect(mode(`${dir}.generation`)).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
    expect(st.oneTimePreKeys.size).toBe(0);
    expect(st.addOneTimePreKeys(MAX_ONE_TIME_PREKEYS).length).toBe(MAX_ONE_TIME_PREKEYS);
    st.save();
    st.close();
    expect(existsSync(join(dir, "lock"))).toBe(false);
  });

  test("identity, prekeys, sessions and inbox survive a reopen", () => {
    const dir = join(tempRoot(), "alice");
    const st = E2EState.open(dir, ALICE);
    const signing = Buffer.from(st.identity.signing.public).toString("hex");
    st.addOneTimePreKeys(MAX_ONE_TIME_PREKEYS);
    st.inbox.push({
      key: "k1",
      e2e: true,
      sender: BOB,
      at: 1,
      queuedAt: 2,
      plaintext: new Uint8Array([1, 2, 3]),
      verified: false,
    });
    st.save();
    st.close();
    const again = E2EState.open(dir, ALICE);
    expect(Buffer.from(again.identity.signing.public).toString("hex")).toBe(signing);
    expect(again.inbox[0]?.plaintext).toEqual(new Uint8Array([1, 2, 3]));
    expect(again.oneTimePreKeys.size).toBe(MAX_ONE_TIME_PREKEYS);
    again.close();
    expect(() => E2EState.open(dir, BOB)).toThrow(code("STATE_CORRUPT"));
  });

  test("symlinks are never followed: a linked directory or state file is refused", () => {
    const root = tempRoot();
    const real = join(root, "real");
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(root, "link"));
    expect(() => E2EState.open(join(root, "link"), ALICE)).toThrow(code("STATE_UNSAFE"));

    const dir = join(root, "alice");
    E2EState.open(dir, ALICE).close();
    const target = join(root, "elsewhere.json");
    copyFileSync(join(dir, "state.json"), target);
    chmodSync(target, 0o600);
    unlinkSync(join(dir, "state.json"));
    symlinkSync(target, join(dir, "state.json"));
    expect(() => E2EState.open(dir, ALICE)).toThrow(code("STATE_UNSAFE"));
  });

  test("a directory or file others can read is refused", () => {
    const dir = join(tempRoot(), "alice");
    E2EState.open(dir, ALICE).close();
    chmodSync(join(dir, "state.json"), 0o644);
    expect(() => E2EState.open(dir, ALICE)).toThrow(code("STATE_UNSAFE"));
    chmodSync(join(dir, "state.json"), 0o600);
    chmodSync(dir, 0o755);
    expect(() => E2EState.open(dir, ALICE)).toThrow(code("STATE_UNSAFE"));
  });
});

describe("lock", () => {
  test("another live process holding the lock: refused after the wait; once it is gone: taken over", async () => {
    const dir = join(tempRoot(), "alice");
    E2EState.open(dir, ALICE).close();
    // A transaction that never ends, in another process.
    const script = `
      const { E2EState } = await import(${JSON.stringify(join(import.meta.dir, "../src/e2e/state.ts"))});
      const st = E2EState.open(${JSON.stringify(dir)}, ${JSON.stringify(ALICE)});
      st.transaction(() => {
        console.log("locked");
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      });
    `;
    const child = Bun.spawn(["bun", "-e", script], { stdout: "pipe", stderr: "inherit" });
    try {
      const reader = child.stdout.getReader();
      const { value } = await reader.read();
      expect(new TextDecoder().decode(value)).toContain("locked");
      expect(() => E2EState.open(dir, ALICE, { lockWaitMs: 200 })).toThrow(code("LOCKED"));
      child.kill(9);
      await child.exited;
      // The lock file is still there (kill -9), but its process is gone: stale.
      expect(existsSync(join(dir, "lock"))).toBe(true);
      E2EState.open(dir, ALICE).close();
    } finally {
      child.kill(9);
    }
  });

  test("two processes taking turns: every transaction sees the other's writes (no lost update)", async () => {
    const dir = join(tempRoot(), "alice");
    E2EState.open(dir, ALICE).close();
    const script = `
      const { E2EState } = await import(${JSON.stringify(join(import.meta.dir, "../src/e2e/state.ts"))});
      const st = E2EState.open(${JSON.stringify(dir)}, ${JSON.stringify(ALICE)});
      for (let i = 0; i < 25; i++) {
        st.transaction(() => st.addOneTimePreKeys(1));
        await Bun.sleep(1);
      }
    `;
    const kids = [0, 1].map(() => Bun.spawn(["bun", "-e", script], { stderr: "inherit" }));
    expect(await Promise.all(kids.map((k) => k.exited))).toEqual([0, 0]);
    const st = E2EState.open(dir, ALICE);
    expect(st.oneTimePreKeys.size).toBe(50);
    expect(new Set(st.oneTimePreKeys.keys()).size).toBe(50);
    expect(st.generation).toBeGreaterThanOrEqual(51);
    st.close();
  });

  test("a stale lock (dead PID) is removed; a garbage lock too", async () => {
    const dir = join(tempRoot(), "alice");
    E2EState.open(dir, ALICE).close();
    writeFileSync(join(dir, "lock"), `${await deadPid()}\n`, { mode: 0o600 });
    E2EState.open(dir, ALICE).close();
    writeFileSync(join(dir, "lock"), "not a pid\n", { mode: 0o600 });
    E2EState.open(dir, ALICE).close();
  });
});

describe("rollback", () => {
  test("an old copy of the state restored is refused", () => {
    const dir = join(tempRoot(), "alice");
    const st = E2EState.open(dir, ALICE);
    const backup = join(tempRoot(), "backup.json");
    copyFileSync(join(dir, "state.json"), backup);
    st.save();
    st.save();
    st.close();
    copyFileSync(backup, join(dir, "state.json"));
    expect(() => E2EState.open(dir, ALICE)).toThrow(code("ROLLED_BACK"));
  });

  test("a crash between the state write and the counter write is accepted", () => {
    const dir = join(tempRoot(), "alice");
    const st = E2EState.open(dir, ALICE);
    st.save();
    const g = st.generation;
    st.close();
    writeFileSync(`${dir}.generation`, `${g - 1}\n`, { mode: 0o600 });
    const again = E2EState.open(dir, ALICE);
    expect(again.generation).toBe(g);
    again.close();
  });

  test("a missing counter is refused unless accepted explicitly; a missing state with a counter too", () => {
    const dir = join(tempRoot(), "alice");
    E2EState.open(dir, ALICE).close();
    unlinkSync(`${dir}.generation`);
    expect(() => E2EState.open(dir, ALICE)).toThrow(code("ROLLED_BACK"));
    E2EState.open(dir, ALICE, { acceptMissingCounter: true }).close();
    unlinkSync(join(dir, "state.json"));
    expect(() => E2EState.open(dir, ALICE)).toThrow(code("ROLLED_BACK"));
  });
});

describe("known_peers (trust on first use)", () => {
  test("first contact recorded; the same key again is fine", () => {
    const k = new KnownPeers();
    expect(k.observe(BOB, "bob", "SHA256:one", 100).status).toBe("new");
    expect(k.observe(BOB, "bob", "SHA256:one", 200).status).toBe("same");
    expect(k.get(BOB)?.firstSeen).toBe(100);
    expect(() => k.checkSend(BOB)).not.toThrow();
  });

  test("a changed key of an unverified peer is announced and replaces the old one", () => {
    const k = new KnownPeers();
    k.observe(BOB, "bob", "SHA256:one", 100);
    const o = k.observe(BOB, "bob", "SHA256:two", 200);
    expect(o).toMatchObject({ status: "changed", previous: "SHA256:one", blocked: false });
    expect(k.get(BOB)?.fingerprint).toBe("SHA256:two");
    expect(() => k.checkSend(BOB)).not.toThrow();
  });

  test("a changed key of a verified peer blocks sending until accepted", () => {
    const k = new KnownPeers();
    k.observe(BOB, "bob", "SHA256:one", 100);
    k.verify(BOB, "SHA256:one");
    const o = k.observe(BOB, "bob", "SHA256:two", 200);
    expect(o).toMatchObject({ status: "changed", blocked: true });
    expect(() => k.checkSend(BOB)).toThrow(code("KEY_CHANGED"));
    expect(() => k.verify(BOB, "SHA256:one")).toThrow(code("KEY_CHANGED"));
    // Survives a save and load.
    const k2 = KnownPeers.parse(k.format());
    expect(() => k2.checkSend(BOB)).toThrow(code("KEY_CHANGED"));
    const p = k2.accept(BOB, 300);
    expect(p).toMatchObject({ fingerprint: "SHA256:two", verified: false, pending: null });
    expect(() => k2.checkSend(BOB)).not.toThrow();
  });

  test("the file round-trips any name; malformed lines are refused", () => {
    const k = new KnownPeers();
    k.observe(ALICE, "a b\u202e%\n", "SHA256:x", 5);
    k.observe(BOB, "bob", "SHA256:y", 6);
    k.verify(BOB, "SHA256:y");
    k.observe(MALLORY, undefined, "SHA256:z", 7); // name not known yet
    k.observe(CAROL, "-", "SHA256:w", 8);
    const back = KnownPeers.parse(k.format());
    expect(back.get(MALLORY)?.name).toBe("");
    expect(back.get(CAROL)?.name).toBe("-");
    expect(back.get(ALICE)?.name).toBe("a b\u202e%\n");
    expect(back.get(BOB)?.verified).toBe(true);
    expect(k.format().split("\n").length).toBe(6);
    for (const bad of [
      `${BOB} bob SHA256:y`,
      `${BOB} bob nope 1 verified`,
      `${BOB} bob SHA256:y x verified`,
      `${BOB} %zz SHA256:y 1 verified`,
    ]) {
      expect(() => KnownPeers.parse(bad), bad).toThrow(code("STATE_CORRUPT"));
    }
  });
});
