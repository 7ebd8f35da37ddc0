/**
 * test/vectors/room-e2e.json (docs/PROTOCOL.md § End-to-end encrypted room messages,
 * docs/E2E.md § Rooms) recomputed with node:crypto and plain byte code, then checked
 * against the project's codec and E2E core; and the room binding of the core: a room
 * message opens only in its room, never as a direct message, and the reverse.
 */
import { describe, expect, test } from "bun:test";
import { createDecipheriv } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { roomAssociatedData } from "../src/e2e/envelope.ts";
import { decryptMessage, encryptMessage, startSession } from "../src/e2e/session.ts";
import { decodeRoomMessage } from "../src/wire/room.ts";
import { decodeRoomE2E, encodeRoomE2E, splitEntries } from "../src/wire/room-e2e.ts";
import { cat, hex, toHex, u16, u32 } from "./helpers/bytes.ts";
import { ALICE, BOB, empty, fetchedBundle, makeParty, seededRandom } from "./helpers/e2e.ts";

const v = JSON.parse(readFileSync(join(import.meta.dir, "vectors", "room-e2e.json"), "utf8"));
const e2e = JSON.parse(readFileSync(join(import.meta.dir, "vectors", "e2e.json"), "utf8"));
const utf8 = new TextEncoder();
const id = (s: string) => hex(s.replaceAll("-", ""));
const ik = (p: { signing_public: string; dh_public: string }) =>
  cat(hex(p.signing_public), hex(p.dh_public));

describe("E2E room vectors", () => {
  test("associated data: label, 0x01, both IDs, both identity keys, the room's key", () => {
    const ad = cat(
      utf8.encode("backbone-e2e/1"),
      new Uint8Array([1]),
      id(e2e.alice.id),
      id(e2e.bob.id),
      ik(e2e.alice),
      ik(e2e.bob),
      new Uint8Array([3]),
      utf8.encode("ops"),
    );
    expect(v.room_associated_data).toBe(toHex(ad));
    const pub = (p: typeof e2e.alice) => ({
      signingKey: hex(p.signing_public),
      dhKey: hex(p.dh_public),
      dhSignature: hex(p.dh_signature),
    });
    // The room as created ("Ops") and any spelling with the same key give the same AD.
    for (const name of ["Ops", "OPS", "ops"])
      expect(
        toHex(roomAssociatedData(e2e.alice.id, pub(e2e.alice), e2e.bob.id, pub(e2e.bob), name)),
      ).toBe(v.room_associated_data);
  });

  test("the room envelope opens with its AD, not with the direct message's", () => {
    const m = e2e.messages[0];
    const env = hex(v.room_envelope);
    const prefix = env.subarray(0, env.length - 64 - 16);
    expect(toHex(prefix)).toBe(m.envelope.slice(0, prefix.length * 2));
    const open = (ad: Uint8Array) => {
      const d = createDecipheriv("aes-256-gcm", hex(m.aes_key), hex(m.nonce));
      d.setAAD(cat(ad, prefix));
      d.setAuthTag(env.subarray(env.length - 16));
      return new Uint8Array(
        Buffer.concat([d.update(env.subarray(prefix.length, env.length - 16)), d.final()]),
      );
    };
    const padded = open(hex(v.room_associated_data));
    expect(new TextDecoder().decode(padded.subarray(0, padded.indexOf(0x80)))).toBe(v.plaintext);
    expect(() => open(hex(m.associated_data))).toThrow();
    expect(v.room_envelope).not.toBe(v.direct_envelope);
  });

  test("C2C type 5 and what each member gets", () => {
    const room = utf8.encode(v.room);
    const env = hex(v.room_envelope);
    const carol = hex(v.carol_ciphertext);
    const c2s = cat(
      new Uint8Array([0x05]),
      hex(v.message_id),
      new Uint8Array([room.length]),
      room,
      u16(2),
      id(v.recipient),
      u16(env.length),
      env,
      id(v.carol),
      u16(carol.length),
      carol,
    );
    expect(v.c2s_message).toBe(toHex(c2s));
    expect(
      toHex(
        encodeRoomE2E(hex(v.message_id), v.room, [
          { member: v.recipient, ciphertext: env },
          { member: v.carol, ciphertext: carol },
        ]),
      ),
    ).toBe(v.c2s_message);
    const d = decodeRoomE2E(c2s);
    expect(d.messageId).toBe(v.message_id);
    expect(d.room).toBe(v.room);
    expect(d.entries.map((e) => [e.member, toHex(e.ciphertext)])).toEqual([
      [v.recipient, v.room_envelope],
      [v.carol, v.carol_ciphertext],
    ]);
    const live = cat(
      new Uint8Array([0x03]),
      id(v.sender),
      new Uint8Array([room.length]),
      room,
      env,
    );
    expect(v.live_message_to_bob).toBe(toHex(live));
    const stored = cat(
      new Uint8Array([0x04]),
      id(v.sender),
      u32(v.queued_at),
      new Uint8Array([room.length]),
      room,
      env,
    );
    expect(v.stored_message_to_bob).toBe(toHex(stored));
    expect(toHex(decodeRoomMessage(stored).data)).toBe(v.room_envelope);
  });

  test("malformed type 5 messages are refused", () => {
    const good = hex(v.c2s_message);
    for (const bad of [
      good.subarray(0, 9), // no room_len
      good.subarray(0, good.length - 1), // last ciphertext cut
      cat(good, new Uint8Array([0])), // a byte after the end
      (() => {
        const b = good.slice();
        b[9] = 0; // room_len 0
        return b;
      })(),
      (() => {
        const b = good.slice();
        b[13] = 0; // count 0 (room "Ops": count at 13..14)
        b[14] = 0;
        return b;
      })(),
    ])
      expect(() => decodeRoomE2E(bad)).toThrow();
    // The same member twice.
    const env = hex(v.room_envelope);
    expect(() =>
      encodeRoomE2E(hex(v.message_id), "ops", [
        { member: v.recipient, ciphertext: env },
        { member: v.recipient, ciphertext: env },
      ]),
    ).toThrow(/twice/);
    const twice = cat(
      good.subarray(0, 13),
      u16(2),
      good.subarray(15, 15 + 18 + env.length),
      good.subarray(15, 15 + 18 + env.length),
    );
    expect(() => decodeRoomE2E(twice)).toThrow(/twice/);
  });

  test("entries too many for one message are split into messages that each fit", () => {
    const big = new Uint8Array(20_000);
    const entries = Array.from({ length: 7 }, (_, i) => ({
      member: `00000000-0000-4000-8000-00000000000${i}`,
      ciphertext: big,
    }));
    const groups = splitEntries("ops", entries);
    expect(groups.map((g) => g.length)).toEqual([3, 3, 1]);
    for (const g of groups)
      expect(encodeRoomE2E(new Uint8Array(8), "ops", g).length).toBeLessThanOrEqual(65519);
  });
});

describe("the room binding in the E2E core", () => {
  const alice = makeParty(ALICE, seededRandom("room-alice"));
  const bob = makeParty(BOB, seededRandom("room-bob"));
  const started = startSession(alice.identity, empty(BOB), fetchedBundle(bob), seededRandom("x"));
  const data = new TextEncoder().encode("for #ops");
  const inRoom = encryptMessage(alice.identity, started, data, "ops").data;
  const direct = encryptMessage(alice.identity, started, data).data;
  const open = (d: Uint8Array, room: string | null) =>
    decryptMessage(bob.identity, bob.preKeys, ALICE, empty(ALICE), d, undefined, room);

  test("a room message opens in its room (any spelling of its name)", () => {
    expect(new TextDecoder().decode(open(inRoom, "OPS").plaintext)).toBe("for #ops");
  });
  test("a room message does not open in another room or as a direct message", () => {
    expect(() => open(inRoom, "dev")).toThrow();
    expect(() => open(inRoom, null)).toThrow();
  });
  test("a direct message does not open as a room message", () => {
    expect(new TextDecoder().decode(open(direct, null).plaintext)).toBe("for #ops");
    expect(() => open(direct, "ops")).toThrow();
  });
});
