/**
 * The per-owner share of a client's invitation slots (docs/PROTOCOL.md § Membership)
 * survives rooms changing hands, against a real server: two clients handing rooms to
 * each other cannot fill a third's slots past a share each.
 */
import { describe, expect, test } from "bun:test";
import { startCluster, until } from "../helpers/cluster.ts";

describe("the invitation share across hand-overs", () => {
  test("a hand-over that would put an invitee past the new owner's share is refused", async () => {
    await using c = await startCluster({ room_max_per_client: 20 }); // 2 per owner
    const mallory = await c.client("mallory");
    const accomplice = await c.client("accomplice");
    const bob = await c.client("bob");
    const handed: string[] = [];
    // Round after round: mallory invites bob to 2 rooms, hands them to the accomplice.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2; i++) {
        const r = `r${round}${i}`;
        await mallory.rooms.create(r);
        await mallory.rooms.invite(r, "bob");
        await mallory.rooms.invite(r, "accomplice");
        await accomplice.rooms.join(r);
        try {
          await mallory.rooms.setOwner(r, "accomplice");
          handed.push(r);
        } catch (err) {
          expect(err).toMatchObject({ code: "limit" });
          await mallory.rooms.remove(r, "bob"); // withdrawn: the share is free again
        }
      }
    }
    // The accomplice took 2 rooms with bob's invitations, no more.
    expect(handed).toEqual(["r00", "r01"]);
    const held = (await bob.rooms.list()).filter((r) => r.state === "invited");
    expect(held.length).toBe(2); // to the accomplice's rooms; the refused ones withdrawn
  });

  test("an owner who leaves: invitations past the successor's share are withdrawn", async () => {
    await using c = await startCluster({ room_max_per_client: 20 }); // 2 per owner
    const mallory = await c.client("mallory");
    const accomplice = await c.client("accomplice");
    const bob = await c.client("bob");
    for (const r of ["a1", "a2"]) {
      await accomplice.rooms.create(r);
      await accomplice.rooms.invite(r, "bob");
    }
    await mallory.rooms.create("m1");
    await mallory.rooms.invite("m1", "bob");
    await mallory.rooms.invite("m1", "accomplice");
    await accomplice.rooms.join("m1");
    const events: string[] = [];
    bob.on("room", (e) => events.push(`${e.event} ${e.room}`));
    await mallory.rooms.leave("m1"); // the accomplice owns m1 now
    await until(() => events.includes("removed m1"), 5000, "bob's invitation withdrawn");
    const held = (await bob.rooms.list()).filter((r) => r.state === "invited").map((r) => r.room);
    expect(held.sort()).toEqual(["a1", "a2"]);
  });
});
