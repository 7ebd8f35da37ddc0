/**
 * test/vectors/batch.json (docs/PROTOCOL.md § BATCH) recomputed from its inputs with
 * node:crypto and hand-built bytes, then checked against the project's record codec:
 * what an independent implementation does with the document alone.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  BATCH_HEADER_BYTES,
  checkRecord,
  eachInRecord,
  encodeBatchOffer,
  encodeRecord,
} from "../src/wire/batch.ts";
import { cat, hex, toHex, u16, u32 } from "./helpers/bytes.ts";
import { gcmOpen, gcmSeal } from "./helpers/schedule.ts";

const file = JSON.parse(readFileSync(join(import.meta.dir, "vectors", "batch.json"), "utf8"));
const handshake = JSON.parse(
  readFileSync(join(import.meta.dir, "vectors", "handshake.json"), "utf8"),
);
const TS = u32(1767225603);
const text = (s: string) => new TextEncoder().encode(s);

function deriveId(label: string, name: string): Uint8Array {
  const id = createHash("sha256")
    .update(`backbone/1 vectors/${label}/${name}/0`)
    .digest()
    .subarray(0, 16);
  id[6] = ((id[6] as number) & 0x0f) | 0x40;
  id[8] = ((id[8] as number) & 0x3f) | 0x80;
  return new Uint8Array(id);
}

/** A record built by hand: 19 || timestamp || 01 || (u16 length || message)*. */
function record(messages: Uint8Array[]): Uint8Array {
  return cat(
    new Uint8Array([0x19]),
    TS,
    new Uint8Array([0x01]),
    ...messages.flatMap((m) => [u16(m.length), m]),
  );
}

describe("BATCH vectors", () => {
  test("every handshake case is there", () => {
    expect(file.cases.map((c: { name: string }) => c.name)).toEqual(
      handshake.cases.map((c: { name: string }) => c.name),
    );
  });

  for (const c of file.cases) {
    test(`${c.name}: offer, accept and a record each way, from the document alone`, () => {
      const k = handshake.cases.find((h: { name: string }) => h.name === c.name);
      expect([c.k_c2s, c.k_s2c, c.client_id]).toEqual([k.k_c2s, k.k_s2c, k.client_id]);
      const peer = deriveId("batch_peer", c.name);
      expect(c.peer).toBe(toHex(peer));
      // Offer (c2s 3) and accept (s2c 1): the same seven bytes.
      const offer = cat(new Uint8Array([0x19]), TS, new Uint8Array([0x00, 0x01]));
      expect(hex(c.offer.message_data)).toEqual(offer);
      expect(hex(c.offer.payload)).toEqual(gcmSeal(hex(c.k_c2s), 3, offer));
      expect(hex(c.accept.payload)).toEqual(gcmSeal(hex(c.k_s2c), 1, offer));
      // c2s record (counter 4): HEARTBEAT, two direct messages to the peer.
      const up = [
        cat(new Uint8Array([0x10]), TS),
        cat(new Uint8Array([0x00]), peer, text("hello")),
        cat(new Uint8Array([0x00]), peer, text("world")),
      ];
      expect(c.c2s_record.messages).toEqual(up.map(toHex));
      expect(hex(c.c2s_record.message_data)).toEqual(record(up));
      expect(gcmOpen(hex(c.k_c2s), 4, hex(c.c2s_record.payload))).toEqual(record(up));
      // s2c record (counter 2): a live message, a stored one, a HEARTBEAT answer.
      const down = [
        cat(new Uint8Array([0x00]), peer, text("hi")),
        cat(new Uint8Array([0x02]), peer, u32(1767225000), text("sent while you were away")),
        cat(new Uint8Array([0x10]), TS),
      ];
      expect(c.s2c_record.messages).toEqual(down.map(toHex));
      expect(hex(c.s2c_record.payload)).toEqual(gcmSeal(hex(c.k_s2c), 2, record(down)));
    });

    test(`${c.name}: the project's codec agrees`, () => {
      const ts = 1767225603;
      expect(encodeBatchOffer(ts)).toEqual(hex(c.offer.message_data));
      for (const r of [c.c2s_record, c.s2c_record]) {
        const messages = r.messages.map(hex);
        expect(encodeRecord(messages, ts)).toEqual(hex(r.message_data));
        const plain = hex(r.message_data);
        expect(checkRecord(plain)).toBe(messages.length);
        const got: Uint8Array[] = [];
        eachInRecord(plain, BATCH_HEADER_BYTES, (m) => got.push(m) > 0);
        expect(got).toEqual(messages);
      }
    });
  }

  test("every malformed record is refused by the codec, and is what its reason says", () => {
    expect(file.malformed.length).toBe(6);
    for (const m of file.malformed) {
      expect(() => checkRecord(hex(m.message_data))).toThrow();
    }
    // Spot checks that each is the fault it names (so a codec bug cannot hide behind another).
    const [empty, cut, zero, past, nested, many] = file.malformed.map(
      (m: { message_data: string }) => hex(m.message_data),
    );
    expect(empty?.length).toBe(6);
    expect(cut?.length).toBe(6 + 2 + 5 + 1);
    expect(zero?.subarray(-2)).toEqual(new Uint8Array([0, 0]));
    expect(past?.subarray(13, 15)).toEqual(u16(6));
    expect(nested?.[15]).toBe(0x19);
    expect(many?.length).toBe(6 + 1025 * 7);
  });
});
