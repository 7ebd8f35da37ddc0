/**
 * The README's library examples, taken from README.md as they are and run: typechecked
 * against the library, then executed with Bun against a real server (the compiled
 * binary) as a program that depends on the package `backbone` would run them.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanupAll, EXIT, ROOT, type Sandbox, sandbox } from "./helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The ```ts blocks of the README section `heading`, in order. */
function tsBlocks(heading: string): string[] {
  const start = README.indexOf(`\n## ${heading}\n`);
  expect(start).toBeGreaterThan(0);
  const end = README.indexOf("\n## ", start + 1);
  const section = README.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] as string);
}

const BLOCKS = tsBlocks("The library");
/** The client example (first), the server one and the E2E one, found by what they do. */
const CLIENT_EXAMPLE = BLOCKS[0];
const SERVER_EXAMPLE = BLOCKS.find((b) => b.includes("BackboneServer.start"));
const E2E_EXAMPLE = BLOCKS.find((b) => b.includes("connectE2E"));

/** A directory where `import … from "backbone"` resolves to this checkout, as after `bun add file:…`. */
function project(dir: string): void {
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  symlinkSync(ROOT, join(dir, "node_modules", "backbone"), "dir");
  writeFileSync(join(dir, "package.json"), '{ "name": "uses-backbone", "type": "module" }\n');
}

async function bun(dir: string, file: string) {
  const proc = Bun.spawn([process.execPath, file], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  try {
    const [code, stdout, stderr] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

describe("README library examples", () => {
  test("there are three (client, E2E, server), and they typecheck against the library", () => {
    expect(CLIENT_EXAMPLE).toContain('from "backbone"');
    expect(SERVER_EXAMPLE).toContain('from "backbone"');
    expect(E2E_EXAMPLE).toContain('from "backbone"');
    // Inside the checkout, so that tsc finds bun-types; `backbone` mapped to src/index.ts.
    const dir = mkdtempSync(join(ROOT, ".readme-check-"));
    try {
      writeFileSync(join(dir, "client.ts"), CLIENT_EXAMPLE as string);
      writeFileSync(join(dir, "server.ts"), SERVER_EXAMPLE as string);
      writeFileSync(join(dir, "e2e.ts"), E2E_EXAMPLE as string);
      writeFileSync(
        join(dir, "tsconfig.json"),
        JSON.stringify({
          extends: "../tsconfig.json",
          compilerOptions: { paths: { backbone: ["../src/index.ts"] } },
          include: ["client.ts", "server.ts", "e2e.ts"],
        }),
      );
      const tsc = Bun.spawnSync(
        [join(ROOT, "node_modules", ".bin", "tsc"), "-p", dir, "--noEmit"],
        {
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      expect(tsc.stdout.toString() + tsc.stderr.toString()).toBe("");
      expect(tsc.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the client example runs against a real server: bob gets the message", async () => {
    await using sb: Sandbox = await sandbox();
    const server = await sb.serve();
    await sb.keygen("alice", server.address);
    await sb.keygen("bob", server.address);
    const bob = sb.start(["listen", "--identity", "bob.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=bob/, "stderr");
    project(sb.dir);
    writeFileSync(join(sb.dir, "client.ts"), CLIENT_EXAMPLE as string);

    const r = await bun(sb.dir, "client.ts");
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: EXIT.OK, stderr: "" });
    // serverStatus() and clientStatus() as printed by the example.
    expect(r.stdout).toMatch(/clients_online: 2/);
    expect(r.stdout).toMatch(/name: "bob",\s+online: true/);
    await bob.waitFor(/alice: hello$/);
    await bob.waitFor(/alice\b.*: hi all$/);
  });

  test("the server example runs, and runs again on the same directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "backbone-readme-"));
    try {
      project(dir);
      writeFileSync(join(dir, "server.ts"), SERVER_EXAMPLE as string);
      for (const run of [1, 2]) {
        const r = await bun(dir, "server.ts");
        expect({ run, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
          run,
          code: 0,
          stdout: "online: 1\n",
          stderr: "",
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("says it needs Bun, why Node cannot load it, and how to depend on it", () => {
    const start = README.indexOf("\n## The library\n");
    const intro = README.slice(start, README.indexOf("```ts", start));
    expect(intro).toContain("[Bun]");
    expect(intro).toContain('ERR_UNKNOWN_FILE_EXTENSION ".ts"');
    expect(intro).toMatch(/bun add git\+https:/);
    expect(intro).toMatch(/bun add file:/);
  });
});
