/**
 * A room message addressed by a name whose UTF-8 is shorter than the room's name as
 * created (`#Ⱥ…` for `#ⱥ…`: one room key, 2 bytes against 3 a letter), against a real
 * server: the size checks count the name the copies carry (the name as created), so a
 * message accepted is one every member can be handed, live or stored
 * (docs/PROTOCOL.md § Room messages).
 */
import { describe, expect, test } from "bun:test";
import { ControlType } from "../../src/wire/message.ts";
import { encodeRoomMessage } from "../../src/wire/room.ts";
import { encodeRoomE2E } from "../../src/wire/room-e2e.ts";
import { inbox, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import { isControl, jsonBody } from "../helpers/raw.ts";

const CREATED = "ⱥ".repeat(64); // 192 bytes, the longest name: 64 letters
const SENT = "Ⱥ".repeat(64); // 128 bytes, the same room key

describe("a room message sent under a shorter spelling of the room's name", () => {
  for (const kind of ["type 3", "type 5"] as const) {
    test(`${kind}: too large for the copies is refused too_large; one that fits reaches the offline member`, async () => {
      const log = new MemoryLog();
      await using c = await startCluster({}, log);
      const raw = await c.raw("alice");
      const bobId = await c.enroll("bob");
      const ask = (body: Record<string, unknown>) => raw.request(ControlType.ROOM, body);
      expect(await ask({ op: "create", room: CREATED })).toMatchObject({ ok: true });
      expect(await ask({ op: "invite", room: CREATED, member: "bob" })).toMatchObject({ ok: true });
      const bob = await c.client(bobId);
      await bob.rooms.join(CREATED);
      await bob.close(); // offline: its copy is stored (type 4, the longest header)
      const frame = (n: number) => {
        const data = new Uint8Array(n).fill(0x61);
        return kind === "type 3"
          ? encodeRoomMessage(new Uint8Array(16), SENT, data)
          : encodeRoomE2E(new Uint8Array(8).fill(1), SENT, [
              { member: bobId.id, ciphertext: data },
            ]);
      };
      // The largest data whose stored copy (header 22 + 192 bytes of name) fits a message.
      const fits = 65519 - 22 - 192;
      raw.send(frame(fits + 2)); // fits under the sent spelling, not under the created one
      raw.send(frame(fits));
      const before = await raw.heartbeat();
      const notices = before.filter((m) => isControl(m, ControlType.NOTICE)).map(jsonBody);
      expect(notices.map((n) => n.status).filter((s) => s !== "recipients")).toEqual(["too_large"]);
      expect(log.find("handler failed")).toEqual([]);
      // bob comes back: the one that fits is there, whole.
      const back = await c.client(bobId);
      const got = inbox(back);
      await until(() => got.length === 1, 5000, "bob's stored copy");
      await back.ping();
      expect(got.length).toBe(1);
      expect(got[0]?.text.length).toBe(fits);
      expect(log.entries.filter((e) => e.level === "error")).toEqual([]);
    });
  }
});

describe("a stored message that has no stored form (over one frame, kept by an older server)", () => {
  test("dropped and logged at delivery; the messages behind it are delivered", async () => {
    const log = new MemoryLog();
    await using c = await startCluster({}, log);
    const alice = await c.enroll("alice");
    const bob = await c.enroll("bob");
    const now = Math.floor(Date.now() / 1000);
    const limits = { maxMessages: 100, maxBytes: 1 << 24, maxAge: 3600, maxPerSender: 100 };
    await c.store.enqueue(
      bob.id,
      [
        { sender: alice.id, room: CREATED, at: now, data: new Uint8Array(65519 - 22 - 192 + 2) },
        { sender: alice.id, at: now, data: new TextEncoder().encode("behind it") },
      ],
      limits,
    );
    const back = await c.client(bob);
    const got = inbox(back);
    await until(() => got.length === 1, 5000, "the message behind it");
    expect(got[0]?.text).toBe("behind it");
    expect(log.find("undeliverable stored message dropped")).toHaveLength(1);
    expect(log.find("stored delivery failed")).toEqual([]);
    // Gone from the store: the next login gets nothing again.
    await back.close();
    expect(await c.store.peek(bob.id, 10)).toEqual([]);
  });
});
