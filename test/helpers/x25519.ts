/**
 * X25519 public keys of small order (the libsodium / RFC 7748 blocklist): with any
 * clamped scalar they give an all-zero shared secret, so a handshake must refuse them.
 * Listed as little-endian u-coordinates, as on the wire.
 */
import { hex } from "./bytes.ts";

const BASE = [
  // 0 (order 4) and 1 (order 1)
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  // the two points of order 8
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  // p - 1 (order 2), and the non-canonical p (= 0) and p + 1 (= 1)
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

/** Each blocklisted point, and the same with bit 255 set (X25519 ignores that bit). */
export const LOW_ORDER_POINTS: { name: string; bytes: Uint8Array }[] = BASE.flatMap((h) => {
  const plain = hex(h);
  const high = plain.slice();
  high[31] = (high[31] as number) | 0x80;
  return [
    { name: h, bytes: plain },
    { name: `${h} (bit 255 set)`, bytes: high },
  ];
});
