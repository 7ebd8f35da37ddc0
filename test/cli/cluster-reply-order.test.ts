/**
 * Cluster mode (docs/CLUSTER.md): every direct message goes through ROUTE on Redis, and
 * its NOTICE (`queued`, `unknown`) still keeps request order among the replies
 * (docs/PROTOCOL.md § Messages) — in frames of their own and in records (BATCH).
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadIdentity } from "../../src/client/identity.ts";
import {
  BATCH_HEADER_BYTES,
  eachInRecord,
  encodeBatchOffer,
  encodeRecord,
} from "../../src/wire/batch.ts";
import { ControlType, decodeMessage, encodeControl, Format } from "../../src/wire/message.ts";
import { c2c, jsonBody, RawSession } from "../helpers/raw.ts";
import { twoNodes } from "../helpers/two-nodes.ts";

const NOBODY = "00000000-0000-4000-8000-000000000000";
const NAMES: Record<number, string> = {
  [ControlType.HEARTBEAT]: "HEARTBEAT",
  [ControlType.SERVER_STATUS]: "SERVER_STATUS",
  [ControlType.CLIENT_STATUS]: "CLIENT_STATUS",
};

function answer(plain: Uint8Array): string {
  const m = decodeMessage(plain);
  if (m.format !== Format.CONTROL) return `format ${m.format}`;
  if (m.type === ControlType.NOTICE) return `NOTICE ${jsonBody(m).status}`;
  return NAMES[m.type] ?? `control ${m.type}`;
}

async function answers(raw: RawSession, n: number): Promise<string[]> {
  const out: string[] = [];
  while (out.length < n) {
    const plain = await raw.next(15_000);
    if (plain[0] === 0x19 && plain[5] === 0x01)
      eachInRecord(plain, BATCH_HEADER_BYTES, (m) => out.push(answer(m)) > 0);
    else out.push(answer(plain));
  }
  return out;
}

test("ROUTE NOTICEs keep request order among replies, in frames and in records", async () => {
  const t = await twoNodes(["alice", "bob", "carol"]);
  try {
    const rows = (to: string): [Uint8Array, string][] => [
      [encodeControl(ControlType.SERVER_STATUS), "SERVER_STATUS"],
      [c2c(0x00, NOBODY, "to nobody"), "NOTICE unknown"],
      [encodeControl(ControlType.CLIENT_STATUS, { clients: ["nobody"] }), "CLIENT_STATUS"],
      [c2c(0x00, to, "held"), "NOTICE queued"],
      [encodeControl(ControlType.SERVER_STATUS), "SERVER_STATUS"],
      [c2c(0x00, NOBODY, "to nobody again"), "NOTICE unknown"],
      [encodeControl(ControlType.HEARTBEAT), "HEARTBEAT"],
    ];
    const alice = await loadIdentity(join(t.sb.dir, "alice.identity"));
    const raw = await RawSession.login(t.a.port, alice);
    for (let r = 0; r < 3; r++) {
      const round = rows(t.ids.bob as string);
      raw.sendRaw(Buffer.concat(round.map(([m]) => raw.seal(m))));
      expect(await answers(raw, round.length)).toEqual(round.map(([, w]) => w));
    }
    await raw[Symbol.asyncDispose]();

    const carol = await loadIdentity(join(t.sb.dir, "carol.identity"));
    const batched = await RawSession.login(t.b.port, carol, "127.0.0.1", [encodeBatchOffer()]);
    expect(answer(await batched.next(15_000))).toBe("control 9"); // the accept
    const rounds = [rows(t.ids.bob as string), rows(t.ids.alice as string)];
    batched.sendRaw(
      Buffer.concat(rounds.map((round) => batched.seal(encodeRecord(round.map(([m]) => m))))),
    );
    const want = rounds.flatMap((round) => round.map(([, w]) => w));
    expect(await answers(batched, want.length)).toEqual(want);
    await batched[Symbol.asyncDispose]();
  } finally {
    await t.close();
  }
});
