/**
 * Writes test/vectors/room-e2e.json: end-to-end encrypted room vectors (docs/PROTOCOL.md
 * § End-to-end encrypted room messages, docs/E2E.md § Rooms) — the room associated
 * data, a room message encrypted with the message key of e2e.json's first message, the
 * C2C type 5 message carrying it and another member's ciphertext, and what the server
 * delivers to the member (type 3 live, type 4 stored) and answers (NOTICE `recipients`).
 * Run: `bun test/vectors/generate-room-e2e.ts` (after generate-e2e.ts).
 * test/vectors-room-e2e.test.ts recomputes every value with node:crypto directly.
 */
import { createCipheriv, createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { idToBytes } from "../../src/ids.ts";
import { encodeRoomMessage } from "../../src/wire/room.ts";
import { encodeRoomE2E } from "../../src/wire/room-e2e.ts";

const e2e = JSON.parse(readFileSync(join(import.meta.dir, "e2e.json"), "utf8"));
const OUT = join(import.meta.dir, "room-e2e.json");
const QUEUED_AT = 1767225600;
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const cat = (...p: Uint8Array[]) => new Uint8Array(Buffer.concat(p));
const derive = (label: string, n: number) =>
  new Uint8Array(
    createHash("sha256").update(`backbone-e2e/1 vectors/room/${label}`).digest(),
  ).slice(0, n);

const m = e2e.messages[0]; // alice → bob, the prekey message
const alice = e2e.alice;
const bob = e2e.bob;
const ik = (p: { signing_public: string; dh_public: string }) =>
  cat(unhex(p.signing_public), unhex(p.dh_public));
const room = "Ops"; // as created; bound by its key
const roomKey = "ops";
const roomBytes = new TextEncoder().encode(roomKey);
const ad = cat(
  new TextEncoder().encode("backbone-e2e/1"),
  Uint8Array.of(1),
  idToBytes(alice.id),
  idToBytes(bob.id),
  ik(alice),
  ik(bob),
  Uint8Array.of(roomBytes.length),
  roomBytes,
);
const envelope = unhex(m.envelope);
const plaintext = new TextEncoder().encode(m.plaintext);
const padded = new Uint8Array(64);
padded.set(plaintext);
padded[plaintext.length] = 0x80;
const prefix = envelope.subarray(0, envelope.length - padded.length - 16);
const cipher = createCipheriv("aes-256-gcm", unhex(m.aes_key), unhex(m.nonce));
cipher.setAAD(cat(ad, prefix));
const roomEnvelope = cat(prefix, cipher.update(padded), cipher.final(), cipher.getAuthTag());
const carol = "3c2b1a09-8f7e-4d6c-9b5a-493827161504";
const carolCiphertext = derive("carol_ciphertext", 32);
const messageId = derive("message_id", 8);
const c2s = encodeRoomE2E(messageId, room, [
  { member: bob.id, ciphertext: roomEnvelope },
  { member: carol, ciphertext: carolCiphertext },
]);
const live = encodeRoomMessage(idToBytes(alice.id), room, roomEnvelope);
const stored = encodeRoomMessage(idToBytes(alice.id), room, roomEnvelope, QUEUED_AT);
const dave = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d";

writeFileSync(
  OUT,
  `${JSON.stringify(
    {
      description: {
        summary:
          "End-to-end encrypted room vectors (docs/PROTOCOL.md § End-to-end encrypted room messages; docs/E2E.md § Rooms). Byte strings lowercase hex. alice, bob and the message key, nonce and envelope prefix come from e2e.json (its messages[0], the prekey message alice → bob).",
        derive:
          "derive(label, n) = the first n bytes of SHA-256('backbone-e2e/1 vectors/room/' || label)",
        fields: {
          room: "the room's name as created; room_key its key NFKC(lower(NFKC(name))), bound into the AD",
          room_associated_data:
            "'backbone-e2e/1' || 0x01 || alice.id (16) || bob.id (16) || alice signing||dh (64) || bob signing||dh (64) || len(room_key) (1) || room_key",
          room_envelope:
            "e2e.json messages[0].envelope with its ciphertext replaced: prefix || AES-256-GCM(aes_key, nonce, padded 'hello bob', aad = room_associated_data || prefix) || tag",
          message_id: "derive('message_id', 8)",
          c2s_message:
            "0x05 || message_id || room_len || room || u16 count (2) || bob.id || u16 len || room_envelope || carol || u16 len || carol_ciphertext",
          live_message_to_bob:
            "0x03 || alice.id || room_len || room || room_envelope (what bob receives live)",
          stored_message_to_bob:
            "0x04 || alice.id || u32 queued_at || room_len || room || room_envelope",
          notice_recipients:
            "the NOTICE body the server sends alice had dave been a member the message lacked and carol not a member",
        },
      },
      room,
      room_key: roomKey,
      sender: alice.id,
      recipient: bob.id,
      room_associated_data: hex(ad),
      plaintext: m.plaintext,
      room_envelope: hex(roomEnvelope),
      direct_envelope: m.envelope,
      carol,
      carol_ciphertext: hex(carolCiphertext),
      message_id: hex(messageId),
      c2s_message: hex(c2s),
      queued_at: QUEUED_AT,
      live_message_to_bob: hex(live),
      stored_message_to_bob: hex(stored),
      notice_recipients: {
        address: "#Ops",
        status: "recipients",
        reason:
          "1 member(s) without a ciphertext got nothing; 1 ciphertext(s) for non-members dropped",
        message: hex(messageId),
        missing: [dave],
        not_members: [carol],
      },
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${OUT}`);
