/**
 * "Decrypted-looking garbage" for fuzz stage d: message_data with any byte 0, of any
 * length, with random or structured bodies (random JSON for CLIENT_STATUS, empty and
 * huge bodies), and an oracle written from docs/PROTOCOL.md § Messages (not from the
 * server's code) that says what the server must answer.
 */
import { expect } from "bun:test";
import type { Identity } from "../../src/client/identity.ts";
import { cat, u32 } from "./bytes.ts";
import type { FuzzTarget } from "./fuzz-handshake.ts";
import type { Prng } from "./prng.ts";

/** What the sender must see after one message (and before its HEARTBEAT barrier's answer). */
export type Expect =
  | { kind: "nothing" } // discarded, or delivered to someone else
  | { kind: "malformed" } // STOP "protocol error", then the close
  | { kind: "closes" } // the client's own STOP: the server closes without a word
  | { kind: "reply"; type: number; body?: unknown } // HEARTBEAT, SERVER_STATUS, CLIENT_STATUS
  | { kind: "notice"; status: string; address: string }
  | { kind: "self"; data: Uint8Array }; // a message to oneself comes back

const MAX_MESSAGE = 65519;
const MAX_BODY = MAX_MESSAGE - 5;
const BROADCAST_TEXT = "ffffffff-ffff-ffff-ffff-ffffffffffff";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function uuidText(b: Uint8Array): string {
  const h = Buffer.from(b).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function uuidBytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replaceAll("-", ""), "hex"));
}

/** NFKC + case folding, as § Names defines the comparison. */
function fold(name: string): string {
  return name.normalize("NFKC").toLowerCase().normalize("NFKC");
}

const BAD_REQUEST = { clients: [], error: "bad request" };
const TOO_LARGE = { clients: [], error: "reply too large" };

/** The CLIENT_STATUS reply § CLIENT_STATUS prescribes for `body`, sent by `self`. */
export function clientStatusReply(body: Uint8Array, t: FuzzTarget, self: Identity): unknown {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return BAD_REQUEST;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return BAD_REQUEST;
  const queries = (value as { clients?: unknown }).clients;
  if (!Array.isArray(queries) || queries.length > 256) return BAD_REQUEST;
  if (!queries.every((q) => typeof q === "string")) return BAD_REQUEST;
  const known = [
    { who: t.canaryA, online: true },
    { who: t.canaryB, online: true },
    { who: self, online: true },
    { who: t.offline, online: false },
  ];
  // last_seen is "now" for an online client (10 digits today) and null for one never seen.
  const entries = (queries as string[]).map((query) => {
    const hit = UUID_RE.test(query)
      ? known.find((k) => k.who.id === query.toLowerCase())
      : known.find((k) => fold(k.who.name) === fold(query));
    if (!hit) return { query, error: "unknown" };
    const { id, name } = hit.who;
    return { id, name, online: hit.online, last_seen: hit.online ? 1_767_225_600 : null };
  });
  if (Buffer.byteLength(JSON.stringify({ clients: entries })) > MAX_BODY) return TOO_LARGE;
  return {
    clients: entries.map((e) =>
      "id" in e && e.online ? { ...e, last_seen: expect.any(Number) } : e,
    ),
  };
}

/** What the server must do with `m` from `self` (docs/PROTOCOL.md § Scoping, § C2C). */
export function expectFor(m: Uint8Array, t: FuzzTarget, self: Identity): Expect {
  const b0 = m[0] as number;
  const format = b0 >>> 4;
  const type = b0 & 0x0f;
  if (format >= 2) return { kind: "nothing" }; // S2S on a socket, or a reserved format
  if (format === 0) {
    if (type >= 6) return { kind: "nothing" }; // reserved C2C type
    if (type === 5) return roomE2EExpect(m, t); // the fuzzing client is in no room
    if (type === 4) return m.length < 21 ? { kind: "malformed" } : { kind: "nothing" };
    if (type === 3) return roomExpect(m, t); // the fuzzing client is in no room
    if (m.length < (type === 2 ? 21 : 17)) return { kind: "malformed" };
    if (type === 2) return { kind: "nothing" }; // stored C2C is server → client only
    const address = uuidText(m.subarray(1, 17));
    const broadcast = address === BROADCAST_TEXT;
    if (type === 1 && !broadcast) return { kind: "nothing" };
    const data = m.subarray(17);
    if (data.length > t.maxMessageSize) return { kind: "notice", status: "too_large", address };
    if (broadcast || address === t.canaryA.id || address === t.canaryB.id)
      return { kind: "nothing" };
    if (address === self.id) return { kind: "self", data: data.slice() };
    if (address === t.offline.id) return { kind: "notice", status: "queued", address };
    return { kind: "notice", status: "unknown", address }; // random, or revoked
  }
  // ACK, SESSION after the first frame, reserved control types: nothing (ROOM is 7, KEYS 8).
  if (type >= 5 && type <= 14 && type !== 7 && type !== 8) return { kind: "nothing" };
  if (m.length < 5) return { kind: "malformed" };
  switch (type) {
    case 0:
    case 2:
    case 7: // ROOM: one reply to every request, malformed or not (§ Rooms)
    case 8: // KEYS: always exactly one reply (mostly "bad request" for fuzz)
      return { kind: "reply", type };
    case 3:
      return { kind: "reply", type, body: clientStatusReply(m.subarray(5), t, self) };
    case 15:
      return { kind: "closes" };
    default:
      return { kind: "nothing" }; // CONFIG, NOTICE from a client
  }
}

/** A room message (§ Rooms) from a client that is in no room: malformed, too_large or not_member. */
function roomExpect(m: Uint8Array, t: FuzzTarget): Expect {
  const len = m[17] ?? 0;
  if (len === 0 || m.length < 18 + len) return { kind: "malformed" };
  const address = `#${new TextDecoder().decode(m.subarray(18, 18 + len))}`;
  const data = m.length - 18 - len;
  if (data > t.maxMessageSize || 22 + len + data > MAX_MESSAGE)
    return { kind: "notice", status: "too_large", address };
  return { kind: "notice", status: "not_member", address };
}

/**
 * An end-to-end encrypted room message (§ End-to-end encrypted room messages, type 5) from
 * a client in no room: `0x05 ‖ message_id (8) ‖ room_len ‖ room ‖ count (u16) ‖ count ×
 * (member (16) ‖ length (u16) ‖ ciphertext)`, read here from the document, not the codec.
 */
function roomE2EExpect(m: Uint8Array, t: FuzzTarget): Expect {
  const len = m[9] ?? 0;
  if (len === 0 || m.length < 12 + len) return { kind: "malformed" };
  const room = new TextDecoder().decode(m.subarray(10, 10 + len));
  const count = ((m[10 + len] as number) << 8) | (m[11 + len] as number);
  if (count === 0) return { kind: "malformed" };
  let at = 12 + len;
  let largest = 0;
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    if (m.length < at + 18) return { kind: "malformed" };
    const member = uuidText(m.subarray(at, at + 16));
    const length = ((m[at + 16] as number) << 8) | (m[at + 17] as number);
    at += 18;
    if (length === 0 || m.length < at + length || seen.has(member)) return { kind: "malformed" };
    seen.add(member);
    largest = Math.max(largest, length);
    at += length;
  }
  if (at !== m.length) return { kind: "malformed" };
  const address = `#${room}`;
  // The size a member's copy would have, stored (type 4 header with the name re-encoded).
  const nameBytes = new TextEncoder().encode(room).length;
  if (largest > t.maxMessageSize || 22 + nameBytes + largest > MAX_MESSAGE)
    return { kind: "notice", status: "too_large", address };
  return { kind: "notice", status: "not_member", address };
}

// ---- generators ------------------------------------------------------------------------

function randomString(rng: Prng, max: number): string {
  const n = rng.length(max);
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = rng.int(0, 9);
    if (r < 5) s += String.fromCharCode(rng.int(0x20, 0x7e));
    else if (r < 7) s += String.fromCodePoint(rng.int(0x80, 0x2fff));
    else if (r < 8)
      s += String.fromCharCode(rng.int(0xd800, 0xdfff)); // lone surrogates
    else if (r < 9)
      s += String.fromCodePoint(rng.int(0xff01, 0xff5e)); // fullwidth forms
    else s += String.fromCodePoint(rng.int(0x10000, 0x10ffff));
  }
  return s;
}

/** A query string: random text, or names and IDs of real clients in other spellings. */
function queryString(rng: Prng, t: FuzzTarget, self: Identity): string {
  const who = rng.pick([t.canaryA, t.canaryB, self, t.offline, t.revoked]);
  switch (rng.int(0, 6)) {
    case 0:
      return who.name.toUpperCase();
    case 1:
      return rng.chance(0.5) ? who.id.toUpperCase() : who.id;
    case 2: // fullwidth letters fold back to the name
      return [...who.name]
        .map((ch) =>
          /[a-z]/.test(ch) ? String.fromCodePoint((ch.codePointAt(0) as number) + 0xfee0) : ch,
        )
        .join("");
    case 3:
      return uuidText(rng.bytes(16));
    default:
      return randomString(rng, rng.chance(0.9) ? 40 : 2000);
  }
}

function randomJson(rng: Prng, depth: number): unknown {
  switch (rng.int(0, depth > 3 ? 3 : 6)) {
    case 0:
      return rng.int(-1e6, 1e6) / rng.pick([1, 7, 1000]);
    case 1:
      return randomString(rng, 20);
    case 2:
      return rng.pick([null, true, false]);
    case 3:
      return rng.u32();
    case 4:
      return Array.from({ length: rng.int(0, 4) }, () => randomJson(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) o[randomString(rng, 8)] = randomJson(rng, depth + 1);
      return o;
    }
  }
}

const encoder = new TextEncoder();

/** A CLIENT_STATUS body: valid, almost valid, or not JSON at all. */
function clientStatusBody(rng: Prng, t: FuzzTarget, self: Identity): Uint8Array {
  const list = (n: number) => Array.from({ length: n }, () => queryString(rng, t, self));
  let text: string;
  switch (rng.int(0, 11)) {
    case 0:
    case 1:
      text = JSON.stringify({ clients: list(rng.pick([0, 1, 3, rng.int(0, 256), 256, 257])) });
      break;
    case 2: {
      const clients: unknown[] = list(rng.int(0, 5));
      clients.splice(rng.int(0, clients.length), 0, randomJson(rng, 3));
      text = JSON.stringify({ clients, [randomString(rng, 5)]: randomJson(rng, 0) });
      break;
    }
    case 3:
      text = JSON.stringify({ clients: randomJson(rng, 2) });
      break;
    case 4:
      text = JSON.stringify(randomJson(rng, 0));
      break;
    case 5: {
      const valid = JSON.stringify({ clients: list(3) });
      text = valid.slice(0, rng.int(0, valid.length - 1));
      break;
    }
    case 6:
      return rng.bytes(rng.length(300)); // mostly not UTF-8
    case 7:
      return new Uint8Array(0);
    case 8: // echoing long unknown queries overflows the reply
      text = JSON.stringify({
        clients: Array.from({ length: rng.int(200, 256) }, () => "q".repeat(rng.int(200, 250))),
      });
      break;
    case 9: {
      const depth = rng.int(1, 20_000);
      text = `{"clients":${"[".repeat(depth)}${"]".repeat(depth)}}`;
      break;
    }
    case 10:
      text = rng.pick([
        '{"__proto__":{"clients":["x"]}}',
        '{"clients":["a"],"clients":5}',
        '{"clients":5,"clients":["a"]}',
        '{"clients":{"length":1,"0":"a"}}',
        '{"clients":["\\ud800"]}',
        '{"clients":[""]} trailing',
        '\ufeff{"clients":[]}',
      ]);
      break;
    default:
      text = JSON.stringify({ clients: [randomString(rng, 65_000)] });
  }
  const bytes = encoder.encode(text);
  return bytes.length > MAX_BODY ? bytes.subarray(0, MAX_BODY) : bytes;
}

/** A control body that is not for CLIENT_STATUS: empty, random, JSON, or as large as fits. */
function controlBody(rng: Prng): Uint8Array {
  switch (rng.int(0, 4)) {
    case 0:
      return new Uint8Array(0);
    case 1:
      return rng.bytes(rng.length(400));
    case 2:
      return encoder.encode(JSON.stringify(randomJson(rng, 0)));
    case 3:
      return rng.bytes(MAX_BODY);
    default:
      return encoder.encode(randomString(rng, 200)).subarray(0, MAX_BODY);
  }
}

/** Byte 0 of the defined messages, C2C and CLIENT_STATUS (the richest) weighted up. */
const DEFINED = [
  0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x13, 0x14, 0x1f,
];

/** Lengths that sit on the edges of the headers (5, 17, 21) and of a frame. */
const EDGE_LENGTHS = [1, 2, 4, 5, 6, 16, 17, 18, 20, 21, 22, MAX_MESSAGE];

/**
 * One garbage message. `byte0` fixes byte 0 (so that a run covers all 256 values);
 * otherwise it is random, biased towards the defined values.
 */
export function garbageMessage(
  rng: Prng,
  t: FuzzTarget,
  self: Identity,
  byte0?: number,
): Uint8Array {
  const b0 = byte0 ?? (rng.chance(0.7) ? rng.pick(DEFINED) : rng.int(0, 255));
  const length = rng.chance(0.25)
    ? rng.pick(EDGE_LENGTHS)
    : rng.chance(0.85)
      ? rng.int(1, 300)
      : rng.int(1, MAX_MESSAGE);
  const format = b0 >>> 4;
  if (format === 0 && length >= 17 && (b0 & 0x0f) < 3) {
    const to = rng.pick([
      t.canaryB.id,
      self.id,
      self.id,
      t.offline.id,
      t.revoked.id,
      BROADCAST_TEXT,
      BROADCAST_TEXT,
    ]);
    const address = rng.chance(0.8) ? uuidBytes(to) : rng.bytes(16);
    const dataLength = rng.chance(0.1)
      ? rng.int(t.maxMessageSize - 2, MAX_MESSAGE - 17)
      : length - 17;
    return cat(new Uint8Array([b0]), address, rng.bytes(dataLength));
  }
  if (format === 1 && length >= 5 && rng.chance(0.8)) {
    const timestamp = rng.pick([0, 0xffffffff, rng.u32(), Math.floor(Date.now() / 1000)]);
    const body = (b0 & 0x0f) === 3 ? clientStatusBody(rng, t, self) : controlBody(rng);
    return cat(new Uint8Array([b0]), u32(timestamp), body);
  }
  const m = rng.bytes(length);
  m[0] = b0;
  return m;
}
