/**
 * test/vectors/session.json (docs/PROTOCOL.md § SESSION) recomputed from its inputs with
 * node:crypto directly, and checked against the project's SESSION codec and server.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeSessionBody } from "../src/wire/session.ts";
import { cat, hex, toHex, u32 } from "./helpers/bytes.ts";
import { gcmOpen, gcmSeal } from "./helpers/schedule.ts";

const file = JSON.parse(readFileSync(join(import.meta.dir, "vectors", "session.json"), "utf8"));
const handshake = JSON.parse(
  readFileSync(join(import.meta.dir, "vectors", "handshake.json"), "utf8"),
);
const FLAGS: Record<string, number> = { all: 0x03, live: 0x01, stored: 0x02, none: 0x00 };

function derive(label: string, name: string, n: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i * 32 < n; i++)
    parts.push(createHash("sha256").update(`backbone/1 vectors/${label}/${name}/${i}`).digest());
  return cat(...parts).subarray(0, n);
}

describe("SESSION vectors", () => {
  test("every handshake case and every receive choice is there", () => {
    const names = handshake.cases.map((c: { name: string }) => c.name);
    for (const name of names)
      for (const receive of Object.keys(FLAGS))
        expect(
          file.cases.some(
            (c: { name: string; receive: string }) => c.name === name && c.receive === receive,
          ),
        ).toBe(true);
  });

  for (const c of file.cases) {
    test(`${c.name} ${c.receive}: body, message, frames`, () => {
      const k = handshake.cases.find((h: { name: string }) => h.name === c.name);
      expect(c.k_c2s).toBe(k.k_c2s);
      const tag = derive("session_tag", c.name, 16);
      expect(c.tag).toBe(toHex(tag));
      const body = cat(new Uint8Array([1, FLAGS[c.receive] as number]), tag);
      expect(hex(c.body)).toEqual(body);
      const message = cat(new Uint8Array([0x16]), u32(1767225602), body);
      expect(hex(c.message_data)).toEqual(message);
      expect(message.length).toBe(23);
      expect(hex(c.payload)).toEqual(gcmSeal(hex(c.k_c2s), 1, message));
      expect(gcmOpen(hex(c.k_c2s), 1, hex(c.payload))).toEqual(message);
      const ack = cat(new Uint8Array([0x15]), u32(1767225602), new Uint8Array(4));
      expect(hex(c.ack_payload)).toEqual(gcmSeal(hex(c.k_c2s), 2, ack));
      const decoded = decodeSessionBody(body);
      expect(decoded).toEqual({
        tag: c.tag,
        live: c.receive === "all" || c.receive === "live",
        stored: c.receive === "all" || c.receive === "stored",
      });
    });
  }
});
