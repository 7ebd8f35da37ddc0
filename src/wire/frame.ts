/**
 * Framing (docs/PROTOCOL.md § Framing): every frame is `size (u16 BE) || payload`,
 * 1 ≤ size ≤ 65535. Pure code, no I/O.
 */
import { WireError } from "../errors.ts";
import { copyBytes } from "./bytes.ts";
import { FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD } from "./constants.ts";

/** Checks a payload length against the frame bounds; throws `WireError`. */
export function checkFrameSize(size: number, max = MAX_FRAME_PAYLOAD): void {
  if (size === 0) throw new WireError("FRAME_EMPTY", "frame of size 0");
  if (size > max) throw new WireError("FRAME_TOO_LARGE", `frame of ${size} bytes exceeds ${max}`);
}

/** Returns `size || payload` in one allocation. Throws `WireError` if the size is out of range. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  checkFrameSize(payload.length);
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out[0] = payload.length >>> 8;
  out[1] = payload.length & 0xff;
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * A chunk-agnostic frame reader: feed it bytes split anywhere, it calls back once per
 * complete frame. A frame that sits whole inside one chunk is handed out as a
 * `subarray` of that chunk (no copy), valid only until the callback returns; only
 * frames split across chunks are copied. After an error the reader stays failed.
 *
 * @example
 * const reader = new FrameReader();
 * socket.on("data", (chunk) => reader.push(chunk, (payload) => handle(payload)));
 */
export class FrameReader {
  #max: number;
  /** Header bytes of a frame whose header was split: -1 when none is pending. */
  #headerByte = -1;
  /** The frame being assembled across chunks, and how much of it is filled. */
  #pending: Uint8Array | null = null;
  #filled = 0;
  #failed: WireError | null = null;

  /** @param max largest payload accepted (≤ 65535); larger frames raise `FRAME_TOO_LARGE`. */
  constructor(max = MAX_FRAME_PAYLOAD) {
    this.#max = Math.min(max, MAX_FRAME_PAYLOAD);
  }

  /** Sets a new payload bound, e.g. once a handshake is over. */
  set max(max: number) {
    this.#max = Math.min(max, MAX_FRAME_PAYLOAD);
  }

  /** Bytes held for an incomplete frame (0 when the input ended on a frame boundary). */
  get buffered(): number {
    return (
      (this.#headerByte >= 0 ? 1 : 0) + (this.#pending ? FRAME_HEADER_BYTES + this.#filled : 0)
    );
  }

  /**
   * Consumes `chunk`, calling `onFrame` for every complete frame in order. If
   * `onFrame` returns `false`, reading stops and the rest of the chunk is returned
   * so the caller can feed it again later — copied, unless `owned` says the caller
   * owns `chunk` (then a subarray, so pausing often is not quadratic); otherwise `null`.
   * Throws `WireError` (`FRAME_EMPTY`, `FRAME_TOO_LARGE`) on a bad size.
   */
  push(
    chunk: Uint8Array,
    onFrame: (payload: Uint8Array) => boolean | undefined,
    owned = false,
  ): Uint8Array | null {
    const rest = (at: number) =>
      at >= chunk.length ? null : owned ? chunk.subarray(at) : copyBytes(chunk, at);
    if (this.#failed) throw this.#failed;
    let at = 0;
    const end = chunk.length;
    while (at < end) {
      if (this.#pending) {
        const want = this.#pending.length - this.#filled;
        const take = Math.min(want, end - at);
        this.#pending.set(chunk.subarray(at, at + take), this.#filled);
        this.#filled += take;
        at += take;
        if (this.#filled < this.#pending.length) return null;
        const frame = this.#pending;
        this.#pending = null;
        this.#filled = 0;
        if (onFrame(frame) === false) return rest(at);
        continue;
      }
      let size: number;
      if (this.#headerByte >= 0) {
        size = (this.#headerByte << 8) | (chunk[at] as number);
        this.#headerByte = -1;
        at += 1;
      } else if (end - at >= FRAME_HEADER_BYTES) {
        size = ((chunk[at] as number) << 8) | (chunk[at + 1] as number);
        at += FRAME_HEADER_BYTES;
      } else {
        this.#headerByte = chunk[at] as number;
        return null;
      }
      try {
        checkFrameSize(size, this.#max);
      } catch (err) {
        this.#failed = err as WireError;
        throw err;
      }
      if (end - at >= size) {
        const frame = chunk.subarray(at, at + size);
        at += size;
        if (onFrame(frame) === false) return rest(at);
      } else {
        this.#pending = new Uint8Array(size);
        this.#filled = 0;
      }
    }
    return null;
  }
}
