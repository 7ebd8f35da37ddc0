/**
 * Replies and NOTICEs keep request order (docs/PROTOCOL.md § Messages), whatever each
 * waits for: a NOTICE decided by a store lookup (`unknown`, `queued`) or at once
 * (`too_large`, `not_member`) never overtakes the reply of an earlier request still in
 * flight (SERVER_STATUS, CLIENT_STATUS, ROOM, KEYS), nor the other way round. Requests
 * go in one write, in frames of their own and in records of many messages (BATCH).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { idToBytes, newClientId } from "../../src/ids.ts";
import {
  BATCH_HEADER_BYTES,
  eachInRecord,
  encodeBatchOffer,
  encodeRecord,
} from "../../src/wire/batch.ts";
import { ControlType, decodeMessage, encodeControl, Format } from "../../src/wire/message.ts";
import { encodeRoomMessage } from "../../src/wire/room.ts";
import { type Cluster, startCluster } from "../helpers/cluster.ts";
import { c2c, isControl, jsonBody, RawSession } from "../helpers/raw.ts";

const MAX_DATA = 100;
let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ max_message_size: MAX_DATA });
});
afterAll(async () => {
  await c[Symbol.asyncDispose]();
});

/** One round of requests and messages, and what each is answered with, in order. */
async function round(from: string): Promise<{ sent: Uint8Array[]; want: string[] }> {
  const offline = await c.enroll(`offline-${crypto.randomUUID().slice(0, 8)}`);
  const rows: [Uint8Array, string][] = [
    [encodeControl(ControlType.SERVER_STATUS), "SERVER_STATUS"],
    [c2c(0x00, newClientId(), "to nobody"), "NOTICE unknown"],
    [encodeControl(ControlType.ROOM, { op: "members", room: "nosuch" }), "ROOM"],
    [c2c(0x00, offline.id, "held"), "NOTICE queued"],
    [encodeControl(ControlType.KEYS, { op: "count" }), "KEYS"],
    [c2c(0x00, offline.id, "x".repeat(MAX_DATA + 1)), "NOTICE too_large"],
    [encodeControl(ControlType.CLIENT_STATUS, { clients: ["nobody"] }), "CLIENT_STATUS"],
    [c2c(0x00, newClientId(), "to nobody again"), "NOTICE unknown"],
    [
      encodeRoomMessage(idToBytes(from), "nosuch", new TextEncoder().encode("hi")),
      "NOTICE not_member",
    ],
    [c2c(0x00, newClientId(), "and again"), "NOTICE unknown"],
    [encodeControl(ControlType.HEARTBEAT), "HEARTBEAT"],
  ];
  return { sent: rows.map((r) => r[0]), want: rows.map((r) => r[1]) };
}

const NAMES: Record<number, string> = {
  [ControlType.HEARTBEAT]: "HEARTBEAT",
  [ControlType.SERVER_STATUS]: "SERVER_STATUS",
  [ControlType.CLIENT_STATUS]: "CLIENT_STATUS",
  [ControlType.ROOM]: "ROOM",
  [ControlType.KEYS]: "KEYS",
};

function describeAnswer(plain: Uint8Array): string {
  const m = decodeMessage(plain);
  if (m.format !== Format.CONTROL) return `format ${m.format}`;
  if (m.type === ControlType.NOTICE) return `NOTICE ${jsonBody(m).status}`;
  return NAMES[m.type] ?? `control ${m.type}`;
}

/** Reads answers (records taken apart) until `n` have come. */
async function answers(raw: RawSession, n: number): Promise<string[]> {
  const out: string[] = [];
  while (out.length < n) {
    const plain = await raw.next(10_000);
    if (plain[0] === 0x19 && plain[5] === 0x01)
      eachInRecord(plain, BATCH_HEADER_BYTES, (m) => out.push(describeAnswer(m)) > 0);
    else out.push(describeAnswer(plain));
  }
  return out;
}

describe("replies and NOTICEs keep request order", () => {
  test("frames of their own, all in one write", async () => {
    const id = await c.enroll(`order-${crypto.randomUUID().slice(0, 8)}`);
    const raw = await RawSession.login(c.server.port, id);
    for (let r = 0; r < 5; r++) {
      const { sent, want } = await round(raw.id);
      raw.sendRaw(Buffer.concat(sent.map((m) => raw.seal(m))));
      expect(await answers(raw, want.length)).toEqual(want);
    }
    await raw[Symbol.asyncDispose]();
  });

  test("in records of many messages (BATCH), several rounds in one write", async () => {
    const id = await c.enroll(`order-batch-${crypto.randomUUID().slice(0, 8)}`);
    const raw = await RawSession.login(c.server.port, id, "127.0.0.1", [encodeBatchOffer()]);
    expect(isControl(decodeMessage(await raw.next()), ControlType.BATCH)).toBe(true);
    const rounds = [await round(raw.id), await round(raw.id), await round(raw.id)];
    // One record per round, plus a round split across a record and a lone frame.
    const frames = rounds.map((r) => raw.seal(encodeRecord(r.sent)));
    const last = await round(raw.id);
    frames.push(raw.seal(encodeRecord(last.sent.slice(0, 3))));
    for (const m of last.sent.slice(3)) frames.push(raw.seal(m));
    raw.sendRaw(Buffer.concat(frames));
    const want = [...rounds.flatMap((r) => r.want), ...last.want];
    expect(await answers(raw, want.length)).toEqual(want);
    await raw[Symbol.asyncDispose]();
  });
});
