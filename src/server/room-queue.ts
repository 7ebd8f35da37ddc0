/**
 * What the offline queue keeps of a message (docs/PROTOCOL.md § Rooms: stored room
 * messages): sender, time and data — and, for a room message, the room, so that it
 * comes back out as type 4, marked with its room.
 */
import { idToText } from "../ids.ts";
import type { QueuedMessage } from "../store/store.ts";
import { C2C_HEADER_BYTES } from "../wire/constants.ts";
import { C2C_ROOM, decodeRoomMessage } from "../wire/room.ts";

/** The room of a routed message (type 3, sender written in), or null for a direct one. */
export function roomOf(plain: Uint8Array): string | null {
  return plain[0] === C2C_ROOM ? decodeRoomMessage(plain).room : null;
}

/** The queue row of a routed message (direct type 0, or room type 3). */
export function toQueued(plain: Uint8Array, at: number): QueuedMessage {
  const sender = idToText(plain.subarray(1, C2C_HEADER_BYTES));
  if (plain[0] !== C2C_ROOM) return { sender, at, data: plain.subarray(C2C_HEADER_BYTES) };
  const m = decodeRoomMessage(plain);
  return { sender, at, data: m.data, room: m.room };
}
