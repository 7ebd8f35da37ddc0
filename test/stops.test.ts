/**
 * Every STOP reason the server sends is sorted — final or transient (src/client/retry.ts)
 * — and listed in docs/PROTOCOL.md § STOP, so that a new one cannot make clients loop
 * on a refusal, or give up on a passing state, unnoticed. The reasons are read from the
 * server's source, where each is written out as a string.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FINAL_STOPS, isFinalStop, TRANSIENT_STOPS } from "../src/client/retry.ts";
import { AUTH_FAILED, UNAVAILABLE } from "../src/handshake/server.ts";

const root = join(import.meta.dir, "..");

/** The STOP reasons written in src/server/*.ts: `.stop("…")`, `.refuse("…")`, `encode("…")` of a STOP. */
function serverStopReasons(): Set<string> {
  const reasons = new Set<string>([AUTH_FAILED, UNAVAILABLE]);
  const dir = join(root, "src/server");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    const text = readFileSync(join(dir, file), "utf8");
    for (const m of text.matchAll(/(?:\.stop|[.#]refuse(?:Raw)?)\("([^"]+)"\)/g))
      reasons.add(m[1] as string);
    for (const m of text.matchAll(/STOP, new TextEncoder\(\)\.encode\("([^"]+)"\)/g))
      reasons.add(m[1] as string);
    for (const m of text.matchAll(/close\(reason = "([^"]+)"/g)) reasons.add(m[1] as string);
  }
  return reasons;
}

/** The reasons in the first column of PROTOCOL.md § STOP's table. */
function documentedReasons(): Set<string> {
  const text = readFileSync(join(root, "docs/PROTOCOL.md"), "utf8");
  const section = text.slice(text.indexOf("### STOP (`0x1f`)"));
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| reason |")));
  return new Set([...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1] as string));
}

describe("STOP reasons", () => {
  const sent = serverStopReasons();

  test("the server's reasons are found (the scan works)", () => {
    for (const r of ["heartbeat timeout", "too many sessions", "revoked", "server shutting down"])
      expect(sent.has(r)).toBe(true);
  });

  test("each is final or transient, never both", () => {
    for (const reason of sent) {
      const kinds = [FINAL_STOPS.has(reason), TRANSIENT_STOPS.includes(reason)];
      expect([reason, kinds.filter(Boolean).length]).toEqual([reason, 1]);
    }
  });

  test("each is in PROTOCOL.md § STOP, and the table lists no other", () => {
    expect([...documentedReasons()].sort()).toEqual([...sent].sort());
  });

  test("the refusals only a person can lift are final; a reason not known is transient", () => {
    for (const r of ["authentication failed", "revoked", "too many sessions"])
      expect(isFinalStop(r)).toBe(true);
    for (const r of ["heartbeat timeout", "server shutting down", "protocol error", "whatever"])
      expect(isFinalStop(r)).toBe(false);
    expect(isFinalStop(undefined)).toBe(false);
  });
});
