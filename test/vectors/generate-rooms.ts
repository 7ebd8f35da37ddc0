/**
 * Writes test/vectors/rooms.json: room vectors (docs/PROTOCOL.md § Rooms) for each case
 * of handshake.json — a room message client → server (C2C type 3), the same message
 * delivered live (type 3) and stored (type 4), and ROOM (control type 7) request, reply
 * and event bodies, each sealed with that case's keys.
 * Run: `bun test/vectors/generate-rooms.ts` (after generate.ts).
 * test/vectors-rooms.test.ts recomputes every value with the primitives directly.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sealer } from "../../src/crypto/channel.ts";
import { toHex, fromHex as unhex } from "../../src/crypto/primitives.ts";
import { ControlType, encodeControl } from "../../src/wire/message.ts";
import { encodeRoomMessage } from "../../src/wire/room.ts";
import { derive } from "./generate.ts";

const OUT = join(import.meta.dir, "rooms.json");
const handshake = JSON.parse(readFileSync(join(import.meta.dir, "handshake.json"), "utf8"));
const TIMESTAMP = 1767225603;
const QUEUED_AT = 1767225600;
const utf8 = new TextEncoder();

export const DESCRIPTION = {
  summary:
    "backbone/1 room vectors (docs/PROTOCOL.md § Rooms), for each case of handshake.json and two rooms (ASCII and non-ASCII names). Byte strings are lowercase hex; texts are UTF-8.",
  inputs:
    "sender = derive('room_sender', name, 16) as described in handshake.json's description.inputs; data = UTF-8 of `text`; queued_at 1767225600; control timestamp 1767225603; k_c2s and k_s2c from the case of the same name in handshake.json.",
  fields: {
    name: "the handshake.json case whose keys seal these frames",
    room: "the room's name (no '#'), as text; room_utf8 is its bytes",
    text: "the message text; data is its UTF-8",
    sender: "the sender's 16 ID bytes (server → client)",
    c2s_message:
      "0x03 || 00…00 (16) || room_len (1) || room_utf8 || data: a room message as a client sends it",
    c2s_payload: "c2s_message sealed with k_c2s at counter 1",
    live_message: "0x03 || sender (16) || room_len || room_utf8 || data: delivered live",
    live_payload: "live_message sealed with k_s2c at counter 1",
    stored_message:
      "0x04 || sender (16) || u32 queued_at || room_len || room_utf8 || data: delivered after being held",
    stored_payload: "stored_message sealed with k_s2c at counter 2",
    room_request: "the JSON body of a ROOM request (UTF-8, exactly these bytes)",
    room_request_message: "0x17 || u32 timestamp || room_request",
    room_request_payload: "room_request_message sealed with k_c2s at counter 2",
    room_reply: "the JSON body of its reply",
    room_reply_message: "0x17 || u32 timestamp || room_reply",
    room_event: "the JSON body of a membership event",
    room_event_message: "0x17 || u32 timestamp || room_event",
    notice: "the NOTICE (0x14) body a non-member's room message gets",
    notice_message: "0x14 || u32 timestamp || notice",
  },
};

const ROOMS: [string, string][] = [
  ["ops", "deploy at 16:00"],
  ["Ünïcödé-räum", "grüße ✓"],
];

const cases = [];
for (const c of handshake.cases as { name: string; k_c2s: string; k_s2c: string }[]) {
  const sender = derive("room_sender", c.name, 16);
  const senderText = toUuid(sender);
  for (const [room, text] of ROOMS) {
    const data = utf8.encode(text);
    const c2s = encodeRoomMessage(new Uint8Array(16), room, data);
    const live = encodeRoomMessage(sender, room, data);
    const stored = encodeRoomMessage(sender, room, data, QUEUED_AT);
    const s2c = new Sealer(unhex(c.k_s2c), 1);
    const c2sSealer = new Sealer(unhex(c.k_c2s), 1);
    const request = JSON.stringify({ op: "create", room, public: false });
    const reply = JSON.stringify({ op: "create", ok: true, room, public: false });
    const event = JSON.stringify({
      event: "joined",
      member: { id: senderText, name: "alice" },
      room,
    });
    const notice = JSON.stringify({
      address: `#${room}`,
      status: "not_member",
      reason: "you are not a member of this room (or it does not exist)",
    });
    const requestMessage = encodeControl(ControlType.ROOM, request, TIMESTAMP);
    cases.push({
      name: c.name,
      room,
      room_utf8: toHex(utf8.encode(room)),
      text,
      data: toHex(data),
      sender: toHex(sender),
      c2s_message: toHex(c2s),
      c2s_payload: toHex(c2sSealer.seal(c2s)),
      live_message: toHex(live),
      live_payload: toHex(s2c.seal(live)),
      stored_message: toHex(stored),
      stored_payload: toHex(s2c.seal(stored)),
      room_request: request,
      room_request_message: toHex(requestMessage),
      room_request_payload: toHex(c2sSealer.seal(requestMessage)),
      room_reply: reply,
      room_reply_message: toHex(encodeControl(ControlType.ROOM, reply, TIMESTAMP)),
      room_event: event,
      room_event_message: toHex(encodeControl(ControlType.ROOM, event, TIMESTAMP)),
      notice,
      notice_message: toHex(encodeControl(ControlType.NOTICE, notice, TIMESTAMP)),
    });
  }
}

function toUuid(b: Uint8Array): string {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

writeFileSync(OUT, `${JSON.stringify({ description: DESCRIPTION, cases }, null, 2)}\n`);
console.log(`wrote ${OUT} (${cases.length} cases)`);
