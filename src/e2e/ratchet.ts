/**
 * The Double Ratchet (Perrin & Marlinspike, "The Double Ratchet Algorithm", rev. 1,
 * 2016), without header encryption, as a pure state machine over bytes.
 *
 * - KDF_RK (§ 5.2): HKDF-SHA256 with salt = root key, IKM = DH output, info
 *   `backbone-e2e/1 ratchet`, 64 bytes → new root key || chain key.
 * - KDF_CK (§ 5.2): message key = HMAC-SHA256(ck, 0x01), next chain key = HMAC-SHA256(ck, 0x02).
 * - ENCRYPT (§ 5.2, with AES-256-GCM instead of CBC+HMAC): HKDF-SHA256(mk, salt = 32
 *   zero bytes, info `backbone-e2e/1 message keys`, 44) → AES-256 key (32) || nonce (12).
 *   Each message key is used once, so the derived nonce never repeats under a key.
 * - Skipped message keys (§ 3.5): at most MAX_SKIP per chain, MAX_SKIPPED_KEYS in all
 *   (oldest dropped first). A header beyond MAX_SKIP is refused before any key is
 *   derived, so its cost is bounded.
 * - `ratchetDecrypt` is transactional: it works on a copy and returns the new state
 *   only on success; on any error the caller's state is untouched (§ 3.5: "If an
 *   exception is raised … the message is discarded and changes to the state object are
 *   discarded").
 */
import { copyBytes } from "../wire/bytes.ts";
import {
  HEADER_BYTES,
  INFO_MESSAGE_KEYS,
  INFO_RATCHET,
  KEY_BYTES,
  MAX_OLD_CHAINS,
  MAX_SKIP,
  MAX_SKIPPED_KEYS,
} from "./constants.ts";
import { E2EError } from "./errors.ts";
import {
  aeadOpen,
  aeadSeal,
  dh,
  hkdfSha256,
  hmacSha256,
  type KeyPair,
  type Random,
  systemRandom,
  x25519KeyPair,
} from "./primitives.ts";

/** Ratchet state (§ 3.2 names). Byte arrays are owned by the state. */
export interface RatchetState {
  dhs: KeyPair;
  dhr: Uint8Array | null;
  rk: Uint8Array;
  cks: Uint8Array | null;
  ckr: Uint8Array | null;
  ns: number;
  nr: number;
  pn: number;
  /** Skipped message keys by `hex(dh):n`, in insertion order (oldest first). */
  skipped: Map<string, Uint8Array>;
  /** Hex of earlier receiving-chain keys, newest last (to recognise replays). */
  oldChains: string[];
}

/** A message header (§ 3.1 HEADER): the sender's ratchet key, previous chain length, number. */
export interface Header {
  dh: Uint8Array;
  pn: number;
  n: number;
}

const ZERO_SALT = new Uint8Array(32);
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** KDF_RK(rk, dh_out) → (rk, ck). */
export function kdfRk(rk: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdfSha256(dhOut, rk, INFO_RATCHET, 2 * KEY_BYTES);
  return [copyBytes(out, 0, KEY_BYTES), copyBytes(out, KEY_BYTES)];
}

/** KDF_CK(ck) → (ck, mk), HMAC-SHA256 with constants 0x02 and 0x01 (§ 5.2). */
export function kdfCk(ck: Uint8Array): [Uint8Array, Uint8Array] {
  return [hmacSha256(ck, Uint8Array.of(0x02)), hmacSha256(ck, Uint8Array.of(0x01))];
}

/** The AES-256-GCM key and nonce of a message key. */
export function messageKeys(mk: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const out = hkdfSha256(mk, ZERO_SALT, INFO_MESSAGE_KEYS, 44);
  return { key: copyBytes(out, 0, 32), nonce: copyBytes(out, 32) };
}

/** RatchetInitAlice (§ 3.3): `sk` from X3DH, `bobKey` = Bob's signed prekey. */
export function initAlice(
  sk: Uint8Array,
  bobKey: Uint8Array,
  random: Random = systemRandom,
): RatchetState {
  const dhs = x25519KeyPair(random);
  const [rk, cks] = kdfRk(sk, dh(dhs.secret, bobKey));
  return {
    dhs,
    dhr: copyBytes(bobKey),
    rk,
    cks,
    ckr: null,
    ns: 0,
    nr: 0,
    pn: 0,
    skipped: new Map(),
    oldChains: [],
  };
}

/** RatchetInitBob (§ 3.3): `sk` from X3DH, `spk` = Bob's signed prekey pair. */
export function initBob(sk: Uint8Array, spk: KeyPair): RatchetState {
  return {
    dhs: { secret: copyBytes(spk.secret), public: copyBytes(spk.public) },
    dhr: null,
    rk: copyBytes(sk),
    cks: null,
    ckr: null,
    ns: 0,
    nr: 0,
    pn: 0,
    skipped: new Map(),
    oldChains: [],
  };
}

/** Header bytes: dh (32) || pn (u32 BE) || n (u32 BE). */
export function encodeHeader(h: Header): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  out.set(h.dh, 0);
  const v = new DataView(out.buffer);
  v.setUint32(32, h.pn);
  v.setUint32(36, h.n);
  return out;
}

export function decodeHeader(bytes: Uint8Array): Header {
  if (bytes.length !== HEADER_BYTES) throw new E2EError("MALFORMED", "bad ratchet header");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { dh: copyBytes(bytes, 0, 32), pn: v.getUint32(32), n: v.getUint32(36) };
}

/** A deep copy (the transaction of `ratchetDecrypt`). */
export function cloneState(s: RatchetState): RatchetState {
  return structuredClone(s);
}

/**
 * RatchetEncrypt (§ 3.4). `frame(header)` returns the envelope bytes that precede the
 * ciphertext (they include the encoded header); the AEAD's associated data is
 * `ad || frame(header)`. Mutates `state`; returns `frame(header) || ciphertext`.
 * Throws `E2EError` `NO_SESSION` when this side cannot send yet.
 */
export function ratchetEncrypt(
  state: RatchetState,
  plaintext: Uint8Array,
  ad: Uint8Array,
  frame: (header: Uint8Array) => Uint8Array,
): Uint8Array {
  if (!state.cks) throw new E2EError("NO_SESSION", "this session cannot send yet");
  const [cks, mk] = kdfCk(state.cks);
  state.cks = cks;
  const prefix = frame(encodeHeader({ dh: state.dhs.public, pn: state.pn, n: state.ns }));
  state.ns += 1;
  const { key, nonce } = messageKeys(mk);
  const sealed = aeadSeal(key, nonce, plaintext, concat(ad, prefix));
  mk.fill(0);
  key.fill(0);
  return concat(prefix, sealed);
}

/**
 * RatchetDecrypt (§ 3.5), transactional. `prefix` is the envelope bytes before the
 * ciphertext (authenticated as associated data after `ad`). Returns the plaintext and
 * the new state; throws `E2EError` (`TOO_MANY_SKIPPED`, `DUPLICATE`, `DECRYPT_FAILED`,
 * `BAD_KEY`) leaving `state` as it was.
 */
export function ratchetDecrypt(
  state: RatchetState,
  header: Header,
  prefix: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array,
  random: Random = systemRandom,
): { plaintext: Uint8Array; state: RatchetState } {
  const fullAd = concat(ad, prefix);
  const id = `${hex(header.dh)}:${header.n}`;
  const skippedKey = state.skipped.get(id);
  if (skippedKey) {
    const plaintext = open(skippedKey, ciphertext, fullAd);
    const next = cloneState(state);
    next.skipped.delete(id);
    return { plaintext, state: next };
  }
  const newChain = !state.dhr || !equal(header.dh, state.dhr);
  if (newChain) {
    if (state.oldChains.includes(hex(header.dh))) {
      throw new E2EError("DUPLICATE", "message from an old chain already handled");
    }
    // Bounded before any derivation: the rest of this chain, and the new one.
    if ((state.ckr && header.pn > state.nr + MAX_SKIP) || header.n > MAX_SKIP) {
      throw new E2EError("TOO_MANY_SKIPPED", "header skips too many messages");
    }
  } else {
    if (!state.ckr) throw new E2EError("DECRYPT_FAILED", "message failed authentication");
    if (header.n < state.nr) throw new E2EError("DUPLICATE", "message already handled");
    if (header.n > state.nr + MAX_SKIP) {
      throw new E2EError("TOO_MANY_SKIPPED", "header skips too many messages");
    }
  }
  const next = cloneState(state);
  if (newChain) {
    skipMessageKeys(next, header.pn);
    dhRatchet(next, header, random);
  }
  skipMessageKeys(next, header.n);
  const [ckr, mk] = kdfCk(next.ckr as Uint8Array);
  next.ckr = ckr;
  next.nr += 1;
  const plaintext = open(mk, ciphertext, fullAd);
  return { plaintext, state: next };
}

function open(mk: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array {
  const { key, nonce } = messageKeys(mk);
  try {
    return aeadOpen(key, nonce, ciphertext, ad);
  } finally {
    key.fill(0);
  }
}

function skipMessageKeys(state: RatchetState, until: number): void {
  if (!state.ckr || !state.dhr) return;
  if (until > state.nr + MAX_SKIP) {
    throw new E2EError("TOO_MANY_SKIPPED", "header skips too many messages");
  }
  const chain = hex(state.dhr);
  while (state.nr < until) {
    const [ckr, mk] = kdfCk(state.ckr);
    state.ckr = ckr;
    state.skipped.set(`${chain}:${state.nr}`, mk);
    state.nr += 1;
  }
  // Bound the total: drop the oldest skipped keys (§ 3.5 suggests deleting old keys).
  while (state.skipped.size > MAX_SKIPPED_KEYS) {
    const oldest = state.skipped.keys().next().value as string;
    state.skipped.delete(oldest);
  }
}

function dhRatchet(state: RatchetState, header: Header, random: Random): void {
  if (state.dhr) {
    state.oldChains.push(hex(state.dhr));
    if (state.oldChains.length > MAX_OLD_CHAINS) state.oldChains.shift();
  }
  state.pn = state.ns;
  state.ns = 0;
  state.nr = 0;
  state.dhr = copyBytes(header.dh);
  [state.rk, state.ckr] = kdfRk(state.rk, dh(state.dhs.secret, state.dhr));
  state.dhs = x25519KeyPair(random);
  [state.rk, state.cks] = kdfRk(state.rk, dh(state.dhs.secret, state.dhr));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** JSON-safe form of a state (hex strings), for the client's state directory. */
export function serializeState(s: RatchetState): unknown {
  const h = (b: Uint8Array | null) => (b ? hex(b) : null);
  return {
    dhs: { secret: hex(s.dhs.secret), public: hex(s.dhs.public) },
    dhr: h(s.dhr),
    rk: hex(s.rk),
    cks: h(s.cks),
    ckr: h(s.ckr),
    ns: s.ns,
    nr: s.nr,
    pn: s.pn,
    skipped: [...s.skipped].map(([k, v]) => [k, hex(v)]),
    oldChains: s.oldChains,
  };
}

/** Inverse of `serializeState`; throws `E2EError` `MALFORMED`. */
export function deserializeState(v: unknown): RatchetState {
  try {
    const o = v as Record<string, unknown>;
    const b = (x: unknown) => new Uint8Array(Buffer.from(String(x), "hex"));
    const nb = (x: unknown) => (x === null ? null : b(x));
    const n = (x: unknown) => {
      if (typeof x !== "number" || !Number.isInteger(x) || x < 0) throw new Error("bad number");
      return x;
    };
    const dhs = o.dhs as Record<string, unknown>;
    return {
      dhs: { secret: b(dhs.secret), public: b(dhs.public) },
      dhr: nb(o.dhr),
      rk: b(o.rk),
      cks: nb(o.cks),
      ckr: nb(o.ckr),
      ns: n(o.ns),
      nr: n(o.nr),
      pn: n(o.pn),
      skipped: new Map((o.skipped as [string, string][]).map(([k, x]) => [String(k), b(x)])),
      oldChains: (o.oldChains as unknown[]).map(String),
    };
  } catch (cause) {
    throw new E2EError("MALFORMED", "unreadable ratchet state", { cause });
  }
}
