/**
 * Writes test/vectors/batch.json: BATCH (control type 9) vectors for each case of
 * handshake.json (docs/PROTOCOL.md § BATCH): the offer and the accept, and a record of
 * several messages in each direction, sealed with that case's keys at fixed counters;
 * plus records that a receiver must refuse, with the reason.
 * Run: `bun test/vectors/generate-batch.ts` (after generate.ts).
 * test/vectors-batch.test.ts recomputes every value with node:crypto directly.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sealer } from "../../src/crypto/channel.ts";
import { toHex, fromHex as unhex } from "../../src/crypto/primitives.ts";
import { encodeBatchOffer, encodeRecord } from "../../src/wire/batch.ts";
import {
  C2CType,
  ControlType,
  encodeC2C,
  encodeControl,
  encodeStored,
} from "../../src/wire/message.ts";
import { deriveId } from "./generate.ts";

const OUT = join(import.meta.dir, "batch.json");
const handshake = JSON.parse(readFileSync(join(import.meta.dir, "handshake.json"), "utf8"));
const TIMESTAMP = 1767225603; // 6955b903
const QUEUED_AT = 1767225000;
const text = (s: string) => new TextEncoder().encode(s);

export const DESCRIPTION = {
  summary:
    "backbone/1 BATCH vectors (docs/PROTOCOL.md § BATCH): records of many messages, one per case of handshake.json, and records a receiver must refuse. Byte strings are lowercase hex.",
  inputs:
    "peer = deriveId('batch_peer', name) as described in handshake.json's description.inputs (a UUIDv4); every timestamp 1767225603 (6955b903); queued_at 1767225000; k_c2s and k_s2c from the case of the same name in handshake.json.",
  fields: {
    name: "the handshake.json case whose keys seal these frames",
    k_c2s: "copied from handshake.json",
    k_s2c: "copied from handshake.json",
    client_id: "copied from handshake.json: the sender of the c2s record's messages",
    peer: "the other client: recipient of the c2s messages, sender of the s2c ones",
    offer:
      "the client's offer: message_data (19 || u32 timestamp || 00 (kind) || 01 (version)) and payload, sealed with k_c2s at counter 3 — right after the response, SESSION (counter 1) and ACK 0 (counter 2), in the same write",
    accept:
      "the server's accept: the same 7 bytes, sealed with k_s2c at counter 1, right after CONFIG (counter 0)",
    c2s_record:
      "messages (each message_data), message_data of the record (19 || u32 timestamp || 01 || for each message: u16 length || message), and payload sealed with k_c2s at counter 4",
    s2c_record:
      "the same for a record from the server, sealed with k_s2c at counter 2: a live direct message, a stored one (C2C type 2) and a HEARTBEAT answer",
    malformed:
      "message_data of records a receiver MUST refuse whole (STOP protocol error, none of their messages acted on), each with why",
  },
};

function sealed(key: string, counter: number, message: Uint8Array) {
  return {
    message_data: toHex(message),
    counter,
    payload: toHex(new Sealer(unhex(key), counter).seal(message)),
  };
}

const cases = [];
for (const c of handshake.cases as {
  name: string;
  k_c2s: string;
  k_s2c: string;
  client_id: string;
}[]) {
  const peer = deriveId("batch_peer", c.name);
  const self = unhex(c.client_id);
  const offer = encodeBatchOffer(TIMESTAMP);
  const up = [
    encodeControl(ControlType.HEARTBEAT, undefined, TIMESTAMP),
    encodeC2C(C2CType.DIRECT, peer, text("hello")),
    encodeC2C(C2CType.DIRECT, peer, text("world")),
  ];
  const down = [
    encodeC2C(C2CType.DIRECT, peer, text("hi")),
    encodeStored(peer, QUEUED_AT, text("sent while you were away")),
    encodeControl(ControlType.HEARTBEAT, undefined, TIMESTAMP),
  ];
  const upRecord = encodeRecord(up, TIMESTAMP);
  const downRecord = encodeRecord(down, TIMESTAMP);
  cases.push({
    name: c.name,
    k_c2s: c.k_c2s,
    k_s2c: c.k_s2c,
    client_id: toHex(self),
    peer: toHex(peer),
    offer: sealed(c.k_c2s, 3, offer),
    accept: sealed(c.k_s2c, 1, offer),
    c2s_record: { messages: up.map(toHex), ...sealed(c.k_c2s, 4, upRecord) },
    s2c_record: { messages: down.map(toHex), ...sealed(c.k_s2c, 2, downRecord) },
  });
}

const head = toHex(new Uint8Array([0x19, 0x69, 0x55, 0xb9, 0x03, 0x01]));
const hb = "10" + "6955b903";
const nested = encodeRecord(
  [encodeControl(ControlType.HEARTBEAT, undefined, TIMESTAMP)],
  TIMESTAMP,
);
const u16hex = (n: number) => n.toString(16).padStart(4, "0");
const malformed = [
  { why: "no message", message_data: head },
  { why: "a length field cut short (1 byte left)", message_data: `${head}0005${hb}00` },
  { why: "an entry of length 0", message_data: `${head}0005${hb}0000` },
  { why: "an entry longer than what is left", message_data: `${head}0005${hb}0006${hb}` },
  {
    why: "a BATCH inside a record",
    message_data: `${head}0005${hb}${u16hex(nested.length)}${toHex(nested)}`,
  },
  {
    why: "more than 1024 messages (1025 HEARTBEATs)",
    message_data: head + `0005${hb}`.repeat(1025),
  },
];

writeFileSync(OUT, `${JSON.stringify({ description: DESCRIPTION, cases, malformed }, null, 2)}\n`);
console.log(`wrote ${OUT} (${cases.length} cases, ${malformed.length} malformed)`);
