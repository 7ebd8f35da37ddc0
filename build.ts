/**
 * Builds the single `backbone` executable with `bun build --compile`:
 *
 *   bun build.ts              → dist/backbone (this machine)
 *   bun build.ts --release    → also dist/release/backbone-<os>-<arch>[.exe] for
 *                               linux-x64, linux-arm64, darwin-x64, darwin-arm64,
 *                               windows-x64, and dist/release/SHA256SUMS
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

const ENTRY = "src/cli/main.ts";
const RELEASE_TARGETS = [
  ["linux-x64", "bun-linux-x64"],
  ["linux-arm64", "bun-linux-arm64"],
  ["darwin-x64", "bun-darwin-x64"],
  ["darwin-arm64", "bun-darwin-arm64"],
  ["windows-x64", "bun-windows-x64"],
] as const;

async function compile(outfile: string, target?: string): Promise<void> {
  const args = ["build", "--compile", "--minify", "--sourcemap=none", ENTRY, "--outfile", outfile];
  if (target) args.push(`--target=${target}`);
  const proc = Bun.spawn([process.execPath, ...args], { stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) {
    process.stderr.write(err);
    throw new Error(`bun build failed for ${target ?? "this machine"} (exit ${code})`);
  }
  console.log(`built ${outfile}${target ? ` (${target})` : ""}`);
}

mkdirSync("dist", { recursive: true });
await compile("dist/backbone");

if (process.argv.includes("--release")) {
  const dir = join("dist", "release");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const sums: string[] = [];
  for (const [name, target] of RELEASE_TARGETS) {
    const out = join(dir, `backbone-${name}${name.startsWith("windows") ? ".exe" : ""}`);
    await compile(out, target);
    sums.push(`${createHash("sha256").update(readFileSync(out)).digest("hex")}  ${basename(out)}`);
  }
  writeFileSync(join(dir, "SHA256SUMS"), `${sums.join("\n")}\n`);
  console.log(`wrote ${join(dir, "SHA256SUMS")}`);
}
