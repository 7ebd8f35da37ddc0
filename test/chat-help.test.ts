/** The terminal chat's /help list: the descriptions line up in one column. */
import { expect, test } from "bun:test";
import { HELP } from "../src/cli/chat/commands.ts";

test("every command's description starts in the same column, after at least one space", () => {
  const commands = HELP.filter((l) => l.startsWith("/"));
  expect(commands.length).toBeGreaterThan(5);
  const columns = commands.map((l) => /^\S+(?: \[\S+\]| \S+)?\s+/.exec(l)?.[0].length);
  expect(new Set(columns).size).toBe(1);
  for (const l of commands) expect(l).toMatch(/^\S+(?: \S+)? {2,}\S/);
});
