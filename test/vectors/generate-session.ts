/**
 * Writes test/vectors/session.json: SESSION (control type 6) vectors for each case of
 * handshake.json (docs/PROTOCOL.md § SESSION): the first frame after the response,
 * sealed with that case's k_c2s at counter 1, and ACK 0 after it at counter 2.
 * Run: `bun test/vectors/generate-session.ts` (after generate.ts).
 * test/vectors-session.test.ts recomputes every value with the primitives directly.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sealer } from "../../src/crypto/channel.ts";
import { toHex, fromHex as unhex } from "../../src/crypto/primitives.ts";
import { ControlType, encodeAckBody, encodeControl } from "../../src/wire/message.ts";
import { encodeSessionBody, type Receive } from "../../src/wire/session.ts";
import { derive } from "./generate.ts";

const OUT = join(import.meta.dir, "session.json");
const handshake = JSON.parse(readFileSync(join(import.meta.dir, "handshake.json"), "utf8"));
const TIMESTAMP = 1767225602;

export const DESCRIPTION = {
  summary:
    "backbone/1 SESSION vectors (docs/PROTOCOL.md § SESSION), one per case of handshake.json and receive choice. Byte strings are lowercase hex.",
  inputs:
    "tag = derive('session_tag', name, 16) as described in handshake.json's description.inputs; timestamp 1767225602; k_c2s from the case of the same name in handshake.json.",
  fields: {
    name: "the handshake.json case whose k_c2s seals these frames",
    receive: "the receive choice: all (flags 0x03), live (0x01), stored (0x02) or none (0x00)",
    tag: "the 16-byte session tag",
    body: "version (0x01) || receive flags || tag: 18 bytes",
    message_data: "0x16 || u32 timestamp || body: 23 bytes",
    k_c2s: "copied from handshake.json",
    payload:
      "message_data sealed with k_c2s at counter 1 (nonce 00000000 || u64 1): the first frame after the response, without its u16 size",
    ack_payload: "ACK 0 (0x15 || u32 timestamp || 00000000) sealed with k_c2s at counter 2",
  },
};

const RECEIVES: Receive[] = ["all", "live", "stored", "none"];

const cases = [];
for (const c of handshake.cases as { name: string; k_c2s: string }[]) {
  const tag = derive("session_tag", c.name, 16);
  for (const receive of RECEIVES) {
    const body = encodeSessionBody(tag, receive);
    const message = encodeControl(ControlType.SESSION, body, TIMESTAMP);
    const sealer = new Sealer(unhex(c.k_c2s), 1);
    const payload = sealer.seal(message);
    const ack = sealer.seal(encodeControl(ControlType.ACK, encodeAckBody(0), TIMESTAMP));
    cases.push({
      name: c.name,
      receive,
      tag: toHex(tag),
      body: toHex(body),
      message_data: toHex(message),
      k_c2s: c.k_c2s,
      payload: toHex(payload),
      ack_payload: toHex(ack),
    });
  }
}
writeFileSync(OUT, `${JSON.stringify({ description: DESCRIPTION, cases }, null, 2)}\n`);
console.log(`wrote ${OUT} (${cases.length} cases)`);
