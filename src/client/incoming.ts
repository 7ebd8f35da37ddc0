/**
 * A received C2C message. Built straight from the decrypted bytes; the sender's ID
 * text and the Date objects are made only when asked for, since a busy client reads
 * `data` of every message but rarely needs the rest formatted.
 */
import { idToText } from "../ids.ts";
import { C2C_HEADER_BYTES, STORED_HEADER_BYTES } from "../wire/constants.ts";
import { C2CType } from "../wire/message.ts";
import { C2C_ROOM, C2C_ROOM_STORED, decodeRoomMessage } from "../wire/room.ts";
import type { IncomingMessage } from "./types.ts";

const KINDS = ["direct", "broadcast", "stored", "room", "room"] as const;

export class Incoming implements IncomingMessage {
  readonly data: Uint8Array;
  readonly kind: IncomingMessage["kind"];
  readonly room: string | null = null;
  readonly stored: boolean;
  readonly #plain: Uint8Array;
  readonly #receivedMs: number;
  #from: string | undefined;

  /**
   * `plain`: a C2C message of type 0, 1 or 2 whose length was checked, or of type 3 or
   * 4 (a room message; throws `WireError` when malformed).
   */
  constructor(plain: Uint8Array, type: number) {
    this.#plain = plain;
    this.kind = KINDS[type] as IncomingMessage["kind"];
    this.stored = type === C2CType.STORED || type === C2C_ROOM_STORED;
    if (type === C2C_ROOM || type === C2C_ROOM_STORED) {
      const m = decodeRoomMessage(plain);
      this.room = m.room;
      this.data = m.data;
    } else {
      this.data = plain.subarray(type === C2CType.STORED ? STORED_HEADER_BYTES : C2C_HEADER_BYTES);
    }
    this.#receivedMs = Date.now();
  }

  get from(): string {
    this.#from ??= idToText(this.fromBytes);
    return this.#from;
  }

  /** The sender's 16 ID bytes. */
  get fromBytes(): Uint8Array {
    return this.#plain.subarray(1, C2C_HEADER_BYTES);
  }

  get queuedAt(): Date | null {
    if (!this.stored) return null;
    const p = this.#plain;
    const at = C2C_HEADER_BYTES;
    const seconds =
      (((p[at] as number) << 24) |
        ((p[at + 1] as number) << 16) |
        ((p[at + 2] as number) << 8) |
        (p[at + 3] as number)) >>>
      0;
    return new Date(seconds * 1000);
  }

  get receivedAt(): Date {
    return new Date(this.#receivedMs);
  }
}
