/**
 * Broadcast (docs/PROTOCOL.md § C2C): a copy to every other routable client, type
 * 0x01 with the true sender, never stored, no NOTICE unless refused; the per-sender
 * rate limit answers NOTICE rate_limited.
 */
import { describe, expect, test } from "bun:test";
import { BROADCAST } from "../../src/ids.ts";
import { C2CType, Format, type Message } from "../../src/wire/message.ts";
import { inbox, notices, startCluster, until } from "../helpers/cluster.ts";
import { BROADCAST_ADDRESS, text } from "../helpers/raw.ts";

/** The sender address of a delivered C2C, as UUID text without dashes. */
function senderHex(m: Message): string {
  if (m.format !== Format.C2C) throw new TypeError("not a C2C message");
  return Buffer.from(m.address).toString("hex");
}

describe("broadcast", () => {
  test("every other online client gets it as type broadcast; the sender does not", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const others = await Promise.all(["bob", "carol", "dave"].map((n) => c.client(n)));
    const toAlice = inbox(alice);
    const boxes = others.map(inbox);
    const heard = notices(alice);
    alice.broadcast("hello all");
    alice.broadcast("again");
    await until(() => boxes.every((b) => b.length === 2), 3000, "both broadcasts everywhere");
    for (const box of boxes) {
      expect(box).toEqual([
        { from: alice.id, text: "hello all", kind: "broadcast" },
        { from: alice.id, text: "again", kind: "broadcast" },
      ]);
    }
    // Had the server sent alice her own broadcast, it would be queued before this answer.
    await alice.ping();
    expect(toAlice).toEqual([]);
    expect(heard).toEqual([]);
    const status = await alice.serverStatus();
    expect(status.messages_routed).toBe(6); // one per recipient
  });

  test("a broadcast is never stored for offline clients, and alone online it gets no NOTICE", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    const heard = notices(alice);
    alice.broadcast("nobody hears this");
    await alice.ping();
    expect(heard).toEqual([]);
    const bob = await c.client(bobId);
    const got = inbox(bob);
    alice.send(bob.id, "direct after login");
    await until(() => got.length === 1, 3000, "the direct message");
    expect(got).toEqual([{ from: alice.id, text: "direct after login", kind: "direct" }]);
    expect((await bob.serverStatus()).messages_queued).toBe(0);
  });

  test("over the broadcast rate: NOTICE rate_limited, not delivered, counted", async () => {
    await using c = await startCluster({ broadcast_rate: 0.001, broadcast_burst: 2 });
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    const got = inbox(bob);
    const heard = notices(alice);
    const before = await alice.serverStatus();
    for (let i = 0; i < 5; i++) alice.broadcast(`b${i}`);
    await alice.ping();
    expect(heard.map((n) => [n.address, n.status])).toEqual([
      [BROADCAST, "rate_limited"],
      [BROADCAST, "rate_limited"],
      [BROADCAST, "rate_limited"],
    ]);
    await bob.ping();
    expect(got.map((m) => m.text)).toEqual(["b0", "b1"]);
    const after = await alice.serverStatus();
    expect(after.messages_discarded - before.messages_discarded).toBe(3);
    // The limit is per sender: bob still has his burst.
    const toAlice = inbox(alice);
    bob.broadcast("bob's turn");
    await until(() => toAlice.length === 1, 3000, "bob's broadcast");
    expect(toAlice[0]?.text).toBe("bob's turn");
  });

  test("a direct message to ff…ff is a broadcast; the server fills in the true sender", async () => {
    await using c = await startCluster();
    const mallory = await c.raw("mallory");
    const bob = await c.raw("bob");
    const carol = await c.raw("carol");
    mallory.sendC2C(BROADCAST_ADDRESS, "via type 0", 0x00);
    mallory.sendC2C(BROADCAST_ADDRESS, "via type 1", 0x01);
    for (const r of [bob, carol]) {
      const got = [await r.nextMessage(), await r.nextMessage()];
      expect(got.map((m) => m.format === Format.C2C && m.type)).toEqual([
        C2CType.BROADCAST,
        C2CType.BROADCAST,
      ]);
      expect(got.map(text)).toEqual(["via type 0", "via type 1"]);
      expect(got.map(senderHex)).toEqual(
        [mallory.id, mallory.id].map((id) => id.replaceAll("-", "")),
      );
    }
    expect(await mallory.heartbeat()).toEqual([]);
  });

  test("a broadcast (0x01) naming another client instead of ff…ff is discarded and counted", async () => {
    await using c = await startCluster();
    const mallory = await c.raw("mallory");
    const bob = await c.raw("bob");
    const carol = await c.raw("carol");
    const before = (await mallory.serverStatus()).messages_discarded as number;
    mallory.sendC2C(carol.id, "pretending to be carol?", 0x01);
    mallory.sendC2C(mallory.id, "or myself", 0x01);
    expect(await mallory.heartbeat()).toEqual([]); // no NOTICE either, and still connected
    expect(await bob.heartbeat()).toEqual([]);
    expect(await carol.heartbeat()).toEqual([]);
    expect(((await mallory.serverStatus()).messages_discarded as number) - before).toBe(2);
    // A real broadcast still goes through, from mallory as the server knows her.
    mallory.sendC2C(BROADCAST_ADDRESS, "honest", 0x01);
    const m = await carol.nextMessage();
    expect(senderHex(m)).toBe(mallory.id.replaceAll("-", ""));
    expect(text(m)).toBe("honest");
  });
});
