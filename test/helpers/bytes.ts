/** Byte helpers for tests, independent of the project's own hex code. */

/** Bytes of a hex string; whitespace is ignored so long vectors can wrap. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new TypeError(`bad hex: ${text.slice(0, 20)}`);
  return new Uint8Array(Buffer.from(clean, "hex"));
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Concatenation of `parts`. */
export function cat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Big-endian u16 / u32 / u64 (the counter in a nonce). */
export function u16(n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff]);
}
export function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

/** The ASCII bytes of a label. */
export function ascii(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "latin1"));
}

/** A copy of `bytes` with bit `bit` of byte `at` flipped. */
export function flip(bytes: Uint8Array, at: number, bit = 0): Uint8Array {
  const out = bytes.slice();
  out[at] = (out[at] as number) ^ (1 << bit);
  return out;
}

/** `bytes` (16) turned into a UUIDv4 (RFC 9562: version 4, variant 10), in place. */
export function asUuidV4(bytes: Uint8Array): Uint8Array {
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  return bytes;
}

/** A plain Uint8Array view of `bytes` (e.g. of a Buffer), so `toEqual` compares like with like. */
export function u8(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
