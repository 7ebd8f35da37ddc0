import { describe, expect, test } from "bun:test";
import { inbox, startCluster, until } from "../helpers/cluster.ts";

describe("routing over real sockets", () => {
  test("two clients exchange direct messages both ways, in order", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const toAlice = inbox(alice);
    const toBob = inbox(bob);
    for (let i = 0; i < 200; i++) {
      alice.send(bob.id, `a${i}`);
      bob.send(alice.id, `b${i}`);
    }
    await until(() => toAlice.length === 200 && toBob.length === 200, 5000, "200 each way");
    expect(toBob.map((m) => m.text)).toEqual(Array.from({ length: 200 }, (_, i) => `a${i}`));
    expect(toAlice.map((m) => m.text)).toEqual(Array.from({ length: 200 }, (_, i) => `b${i}`));
    expect(toBob.every((m) => m.from === alice.id && m.kind === "direct")).toBe(true);
    expect(toAlice.every((m) => m.from === bob.id)).toBe(true);
  });
});
