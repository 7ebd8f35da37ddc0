/**
 * A room as large as `room_max_members` allows, against a real server: the `members`
 * reply (which the E2E layer asks before every room message) does not fit one message
 * as one list, so it comes in pages (docs/PROTOCOL.md § Rooms) and the client library
 * joins them.
 */
import { describe, expect, test } from "bun:test";
import { MemoryLog, startCluster } from "../helpers/cluster.ts";

describe("members of a room of 1000", () => {
  test("every member listed, in order, the connection lives", async () => {
    const log = new MemoryLog();
    await using c = await startCluster({}, log);
    const identity = await c.enroll("alice");
    const now = Math.floor(Date.now() / 1000);
    await c.store.rooms.createRoom({
      name: "big",
      owner: identity.id,
      public: true,
      createdAt: now,
    });
    const ids = [identity.id];
    for (let i = 0; i < 999; i++) {
      const r = await c.enroll(`member-with-a-longish-name-${i}`);
      ids.push(r.id);
      await c.store.rooms.setMembership("big", r.id, "member", now + i);
    }
    const alice = await c.client(identity);
    const got = await alice.rooms.members("big");
    expect(got.members.map((m) => m.id)).toEqual(ids);
    expect(got.members[5]?.name).toBe("member-with-a-longish-name-4");
    expect(log.find("handler failed")).toEqual([]);
    await alice.ping();
  });
});
