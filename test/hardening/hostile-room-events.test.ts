/**
 * A hostile server's membership events (docs/PROTOCOL.md § Membership events): the
 * client library emits a `room` event only in the documented shape — `room` a name,
 * `member` (and `by`, when present) `{id, name}` with a client ID — so that `chat` and
 * `listen`, which print every event, cannot be thrown by one (a missing `member` was a
 * TypeError in an event handler: an unhandled rejection ends the process).
 */
import { describe, expect, test } from "bun:test";
import { describeRoomEvent } from "../../src/cli/rooms-ui.ts";
import { connect } from "../../src/client/client.ts";
import type { RoomEvent } from "../../src/client/rooms.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import { newClientId } from "../../src/ids.ts";
import { ControlType, encodeControl } from "../../src/wire/message.ts";
import { until } from "../helpers/cluster.ts";
import { FakeServer } from "../helpers/fake-server.ts";

describe("membership events from a hostile server", () => {
  test("only well-formed events are emitted; each can be printed", async () => {
    const [s, c] = await Promise.all([generateRsaKeyPair(2048), generateRsaKeyPair(2048)]);
    const serverKey = await RsaPrivateKey.fromPkcs8(s.privatePkcs8);
    const clientKey = await RsaPrivateKey.fromPkcs8(c.privatePkcs8);
    const id = newClientId();
    await using server = await FakeServer.start({
      key: serverKey,
      clients: new Map([[id, clientKey.publicKey]]),
      config: {},
    });
    const client = await connect({
      identity: {
        id,
        name: "victim",
        server: server.address,
        serverKey: serverKey.publicKey,
        key: clientKey,
      },
    });
    const got: RoomEvent[] = [];
    client.on("room", (e) => got.push(e));
    const member = { id: newClientId(), name: "carol" };
    const bad: Record<string, unknown>[] = [
      { event: "joined" },
      { event: "joined", room: "ops" },
      { event: "joined", room: "ops", member: null },
      { event: "joined", room: "ops", member: "carol" },
      { event: "joined", room: "ops", member: { name: "carol" } },
      { event: "joined", room: "ops", member: { id: 5, name: "carol" } },
      { event: "joined", room: "ops", member: { id: "not-an-id", name: "carol" } },
      { event: "joined", room: "ops", member: { id: member.id, name: 5 } },
      { event: "joined", room: 5, member },
      { event: "invited", room: "ops", member, by: "alice" },
      { event: "invited", room: "ops", member, by: { id: member.id } },
    ];
    for (const e of bad) server.push(encodeControl(ControlType.ROOM, e));
    server.push(encodeControl(ControlType.ROOM, { event: "joined", room: "ops", member }));
    await until(() => got.length > 0, 5000, "an event");
    await client.ping();
    for (const e of got) expect(() => describeRoomEvent(e)).not.toThrow();
    expect(got).toEqual([{ event: "joined", room: "ops", member } as RoomEvent]);
    await client.close();
  });
});
