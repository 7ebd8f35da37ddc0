/**
 * How an outbox packs its queue into frames (docs/PROTOCOL.md § BATCH): each frame is
 * one message or, once the peer reads them, a record of the messages that follow, up
 * to one frame (MAX_MESSAGE_DATA of plaintext) and MAX_BATCH_MESSAGES; a lone message
 * goes alone, and a SWITCH message (the server's BATCH accept) always goes alone.
 */
import { BATCH_HEADER_BYTES, entryLength, MAX_BATCH_MESSAGES } from "../wire/batch.ts";
import { FRAME_HEADER_BYTES, MAX_MESSAGE_DATA, TAG_BYTES } from "../wire/constants.ts";

/**
 * A control message after which the outbox seals records of many messages (the
 * server's BATCH accept, docs/PROTOCOL.md § BATCH): it goes alone, what follows may share.
 */
export const SWITCH = -2;

/** Most bytes sealed into one write; the rest waits for the next flush. */
export const MAX_BATCH = 256 * 1024;

/**
 * Plans the frames of one write from the front of `msgs` (with their `kinds`): at most
 * `room` frames and, past the first, about MAX_BATCH sealed bytes. Appends to `groups`
 * the end index (exclusive) of each frame's messages — the last is how many are taken —
 * and returns the sealed size in bytes. `batching`: records may be sealed from the start.
 */
export function planFrames(
  msgs: readonly Uint8Array[],
  kinds: readonly number[],
  room: number,
  batching: boolean,
  groups: number[],
): number {
  let count = 0;
  let size = 0;
  let frames = 0;
  while (count < msgs.length && frames < room && (count === 0 || size < MAX_BATCH)) {
    const first = msgs[count] as Uint8Array;
    let n = 1;
    let plain = first.length;
    if (kinds[count] === SWITCH)
      batching = true; // an accept goes alone, never inside
    else if (batching) {
      let record = BATCH_HEADER_BYTES + entryLength(first);
      while (count + n < msgs.length && n < MAX_BATCH_MESSAGES) {
        if (kinds[count + n] === SWITCH) break;
        const more = record + entryLength(msgs[count + n] as Uint8Array);
        if (more > MAX_MESSAGE_DATA) break;
        record = more;
        n++;
      }
      if (n > 1) plain = record;
    }
    size += FRAME_HEADER_BYTES + plain + TAG_BYTES;
    count += n;
    frames++;
    groups.push(count);
  }
  return size;
}
