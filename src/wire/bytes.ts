/**
 * Copying bytes out of a buffer that may be a Node `Buffer`.
 *
 * Bun's socket chunks and node:crypto's outputs are `Buffer`s, and `Buffer#slice` is a
 * VIEW of the same memory (unlike `Uint8Array#slice`, which copies). Bytes kept beyond
 * the call that received them (an outbox queue, a held message, ratchet state, the rest
 * of a chunk) must be a real copy, or they keep the whole chunk or record alive (so the
 * byte bounds count far less memory than is held) and would see any reuse of it.
 */

/**
 * A copy of `bytes[start, end)` (offsets as in `Uint8Array#slice`, negative from the
 * end) in an `ArrayBuffer` of its own, exactly that long: `result.buffer.byteLength ===
 * result.length`. Never a view, whether `bytes` is a `Uint8Array` or a `Buffer`.
 */
export function copyBytes(bytes: Uint8Array, start?: number, end?: number): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end));
}
