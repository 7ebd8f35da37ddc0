/**
 * Hostile text never reaches a log line raw (docs/SECURITY.md § Log injection): every
 * event, field name and value the logger writes goes through `escapeControls`, in the
 * text format and in JSON. The input is what the issue showed: a client's STOP reason
 * holding CSI U+009B, LINE SEPARATOR U+2028 and RIGHT-TO-LEFT OVERRIDE U+202E, sent to a
 * real server process whose log (stderr) is captured.
 */
import { describe, expect, test } from "bun:test";
import { StructuredLogger } from "../../src/log.ts";
import { hasControls } from "../../src/text/escape.ts";
import { ControlType } from "../../src/wire/message.ts";
import { until } from "../helpers/cluster.ts";
import { makeDataDir, spawnServer } from "../helpers/processes.ts";
import { RawSession } from "../helpers/raw.ts";

/** Whether a log holds a code point it must never hold raw (LF apart: it ends each line). */
const unsafe = (log: string) => log.split("\n").some(hasControls);

/** One of each unsafe class, and a would-be forged second log line. */
const HOSTILE =
  "bye\u009b2J\u2028\u202eevil\u2066\x07\x1b]52;c;AAAA\x07\r\n2026-01-01T00:00:00.000Z ERROR forged\u0085\u2029\u200f";

describe("the logger escapes every field, in both formats", () => {
  for (const format of ["text", "json"] as const) {
    test(`${format}: event, field names and values`, () => {
      const lines: string[] = [];
      const log = new StructuredLogger({ format, level: "debug", write: (l) => lines.push(l) });
      log.warn(`ev${HOSTILE}`, { [`k${HOSTILE}`]: HOSTILE, n: 1, ok: true, nothing: null });
      expect(lines).toHaveLength(1);
      const line = lines[0] as string;
      expect(line.endsWith("\n")).toBe(true);
      expect(unsafe(line.slice(0, -1))).toBe(false);
      expect(line.slice(0, -1)).not.toContain("\n");
      if (format === "json") {
        const parsed = JSON.parse(line);
        expect(parsed.event).toBe(
          "evbye\\x9b2J\\u2028\\u202eevil\\u2066\\x07\\x1b]52;c;AAAA\\x07\\r\\n2026-01-01T00:00:00.000Z ERROR forged\\x85\\u2029\\u200f",
        );
        expect(parsed.n).toBe(1);
        expect(parsed.ok).toBe(true);
        expect(parsed.nothing).toBe(null);
      } else {
        expect(line).toContain("evbye\\x9b2J\\u2028\\u202eevil");
      }
    });
  }
});

describe("a client's STOP reason in a real server's log", () => {
  for (const format of ["text", "json"] as const) {
    test(`${format}: the reason is logged, escaped`, async () => {
      await using data = await makeDataDir();
      await using server = await spawnServer(data.dir, { log_format: format, log_level: "debug" });
      const mallory = await data.enroll("mallory", server.address);
      const raw = await RawSession.login(server.port, mallory);
      raw.sendControl(ControlType.STOP, HOSTILE);
      await until(() => server.log().includes("forged"), 5000, "the disconnect logged");
      await raw[Symbol.asyncDispose]();
      const log = server.log();
      const line = log.split("\n").find((l) => l.includes("forged")) as string;
      expect(line).toMatch(/disconnect/);
      expect(unsafe(log)).toBe(false);
      // Nothing but the server's own lines: the forged "ERROR" stayed inside its field.
      expect(log).not.toMatch(/^\S+ ERROR forged/m);
      if (format === "json") {
        for (const l of log.trimEnd().split("\n")) expect(() => JSON.parse(l), l).not.toThrow();
        expect(JSON.parse(line).reason).toContain("\\x9b2J\\u2028\\u202eevil");
      } else {
        // A value with spaces is quoted as a JSON string, so its backslashes double.
        expect(line).toContain('reason="client stop: bye\\\\x9b2J\\\\u2028\\\\u202eevil');
      }
    });
  }
});
