/**
 * test/vectors/rooms.json (docs/PROTOCOL.md § Rooms) recomputed from its inputs byte by
 * byte with node:crypto directly, and checked against the project's room codec.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeMessage, Format } from "../src/wire/message.ts";
import { decodeRoomMessage } from "../src/wire/room.ts";
import { cat, hex, toHex, u32 } from "./helpers/bytes.ts";
import { gcmOpen, gcmSeal } from "./helpers/schedule.ts";

const file = JSON.parse(readFileSync(join(import.meta.dir, "vectors", "rooms.json"), "utf8"));
const handshake = JSON.parse(
  readFileSync(join(import.meta.dir, "vectors", "handshake.json"), "utf8"),
);
const utf8 = new TextEncoder();

function derive(label: string, name: string, n: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i * 32 < n; i++)
    parts.push(createHash("sha256").update(`backbone/1 vectors/${label}/${name}/${i}`).digest());
  return cat(...parts).subarray(0, n);
}

const control = (b0: number, body: string) =>
  cat(new Uint8Array([b0]), u32(1767225603), utf8.encode(body));

describe("room vectors", () => {
  test("every handshake case, with an ASCII and a non-ASCII room", () => {
    for (const h of handshake.cases)
      expect(file.cases.filter((c: { name: string }) => c.name === h.name).length).toBe(2);
    expect(
      file.cases.some(
        (c: { room_utf8: string; room: string }) => c.room_utf8.length / 2 > c.room.length,
      ),
    ).toBe(true);
  });

  for (const c of file.cases) {
    test(`${c.name} #${c.room}: messages, frames, control bodies`, () => {
      const k = handshake.cases.find((h: { name: string }) => h.name === c.name);
      const sender = derive("room_sender", c.name, 16);
      expect(c.sender).toBe(toHex(sender));
      const room = utf8.encode(c.room);
      expect(c.room_utf8).toBe(toHex(room));
      const data = utf8.encode(c.text);
      expect(c.data).toBe(toHex(data));
      const len = new Uint8Array([room.length]);

      const c2s = cat(new Uint8Array([0x03]), new Uint8Array(16), len, room, data);
      expect(hex(c.c2s_message)).toEqual(c2s);
      expect(hex(c.c2s_payload)).toEqual(gcmSeal(hex(k.k_c2s), 1, c2s));
      const live = cat(new Uint8Array([0x03]), sender, len, room, data);
      expect(hex(c.live_message)).toEqual(live);
      expect(gcmOpen(hex(k.k_s2c), 1, hex(c.live_payload))).toEqual(live);
      const stored = cat(new Uint8Array([0x04]), sender, u32(1767225600), len, room, data);
      expect(hex(c.stored_message)).toEqual(stored);
      expect(gcmOpen(hex(k.k_s2c), 2, hex(c.stored_payload))).toEqual(stored);

      expect(hex(c.room_request_message)).toEqual(control(0x17, c.room_request));
      expect(gcmOpen(hex(k.k_c2s), 2, hex(c.room_request_payload))).toEqual(
        control(0x17, c.room_request),
      );
      expect(hex(c.room_reply_message)).toEqual(control(0x17, c.room_reply));
      expect(hex(c.room_event_message)).toEqual(control(0x17, c.room_event));
      expect(hex(c.notice_message)).toEqual(control(0x14, c.notice));
      expect(JSON.parse(c.notice)).toMatchObject({ address: `#${c.room}`, status: "not_member" });

      // The project's decoders read them back.
      for (const [bytes, queuedAt] of [
        [live, 0],
        [stored, 1767225600],
      ] as const) {
        const m = decodeRoomMessage(bytes);
        expect([m.room, toHex(m.address), toHex(m.data), m.queuedAt]).toEqual([
          c.room,
          c.sender,
          c.data,
          queuedAt,
        ]);
        const generic = decodeMessage(bytes);
        expect(generic.format === Format.C2C && generic.room).toBe(c.room);
      }
    });
  }
});
