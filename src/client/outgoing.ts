/**
 * The client's send side, without its connection: message bytes checked against the
 * server's limit, C2C encoding for a client ID, a `#room` or everyone, the ID → bytes
 * cache, what a requeued message is reported as, and the CLIENT_STATUS reply check.
 * The Client (src/client/client.ts) queues what these return.
 */
import { ConnectionError, UsageError } from "../errors.ts";
import { BROADCAST, idToBytes, idToText, isUuid } from "../ids.ts";
import { checkRoomName, isRoomAddress } from "../rooms/names.ts";
import { C2C_HEADER_BYTES, MAX_STATUS_QUERY } from "../wire/constants.ts";
import { C2CType, encodeC2C } from "../wire/message.ts";
import { C2C_ROOM, encodeRoomMessage } from "../wire/room.ts";
import { C2C_ROOM_E2E, decodeRoomE2E } from "../wire/room-e2e.ts";
import { NO_ADDRESS, unsentRoomMessage } from "./rooms.ts";
import type { ClientStatusEntry } from "./types.ts";

const encoder = new TextEncoder();
const BROADCAST_ADDRESS = idToBytes(BROADCAST);

/** Entries the address cache holds before it starts over. */
const MAX_ADDRESSES = 4096;

/** ID text → 16 bytes, remembered: a busy sender names the same few peers over and over. */
export class Addresses {
  readonly #map = new Map<string, Uint8Array>();

  /** The ID's bytes. Throws `UsageError` `BAD_ID` when `id` is not a UUID. */
  get(id: string): Uint8Array {
    let bytes = this.#map.get(id);
    if (!bytes) {
      bytes = idToBytes(checkId(id));
      if (this.#map.size >= MAX_ADDRESSES) this.#map.clear();
      this.#map.set(id, bytes);
    }
    return bytes;
  }
}

/**
 * `data` as bytes (text in UTF-8). Throws `UsageError` `TOO_LARGE` past `limit` bytes
 * (the server's `max_message_size`, docs/PROTOCOL.md § Connection settings).
 */
export function messageBytes(data: Uint8Array | string, limit: number): Uint8Array {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  if (bytes.length > limit) {
    throw new UsageError(
      "TOO_LARGE",
      `message of ${bytes.length} bytes exceeds the server's limit of ${limit}`,
    );
  }
  return bytes;
}

/**
 * The C2C message sending `data` to `to`: a direct one (type 0) for a client ID (text
 * or 16 bytes), a room message (docs/PROTOCOL.md § Rooms) for `#name`. The address is
 * checked before the size. Throws `UsageError` (`BAD_ID`, bad room name, `TOO_LARGE`
 * past `limit` bytes).
 */
export function encodeSend(
  to: string | Uint8Array,
  data: Uint8Array | string,
  limit: number,
  addresses: Addresses,
): Uint8Array {
  if (typeof to !== "string") return encodeC2C(C2CType.DIRECT, to, messageBytes(data, limit));
  if (isRoomAddress(to))
    return encodeRoomMessage(NO_ADDRESS, checkRoomName(to), messageBytes(data, limit));
  const address = addresses.get(to);
  return encodeC2C(C2CType.DIRECT, address, messageBytes(data, limit));
}

/** The C2C broadcast (type 1) of `bytes` to every other online client. */
export function encodeBroadcast(bytes: Uint8Array): Uint8Array {
  return encodeC2C(C2CType.BROADCAST, BROADCAST_ADDRESS, bytes);
}

/** What a queued C2C message that never reached the socket is reported as (`requeued`). */
export function describeUnsent(m: Uint8Array): { to: string; data: Uint8Array } {
  if (m[0] === C2C_ROOM) return unsentRoomMessage(m);
  if (m[0] === C2C_ROOM_E2E) return { to: `#${decodeRoomE2E(m).room}`, data: new Uint8Array(0) };
  return { to: idToText(m.subarray(1, C2C_HEADER_BYTES)), data: m.subarray(C2C_HEADER_BYTES) };
}

/** Throws `UsageError` `TOO_MANY` past MAX_STATUS_QUERY clients in one status query. */
export function checkStatusQuery(queries: readonly string[]): void {
  if (queries.length > MAX_STATUS_QUERY) {
    throw new UsageError("TOO_MANY", `at most ${MAX_STATUS_QUERY} clients per status query`);
  }
}

/** The entries of a CLIENT_STATUS reply. Throws `ConnectionError` `BAD_REPLY` on a refusal. */
export function statusEntries(reply: Record<string, unknown>): ClientStatusEntry[] {
  if (!Array.isArray(reply.clients) || reply.error) {
    throw new ConnectionError(
      "BAD_REPLY",
      `the server refused the status query: ${String(reply.error ?? "bad reply")}`,
    );
  }
  return reply.clients as ClientStatusEntry[];
}

function checkId(text: string): string {
  if (!isUuid(text)) {
    throw new UsageError(
      "BAD_ID",
      `not a client ID: ${JSON.stringify(text)} (use client.resolve(name) for names)`,
    );
  }
  return text;
}
