/**
 * Constants of backbone's end-to-end layer, `backbone-e2e/1`. docs/E2E.md explains
 * each; the Signal specifications cited are X3DH (Marlinspike & Perrin, rev. 1, 2016)
 * and The Double Ratchet Algorithm (Perrin & Marlinspike, rev. 1, 2016).
 */

/** The protocol label, first in every associated data and KDF info string. */
export const PROTOCOL_LABEL = "backbone-e2e/1";

/** Envelope magic: `0xFF` never occurs in UTF-8 text, so a plaintext C2C is never mistaken for one. */
export const MAGIC = new Uint8Array([0xff, 0xe2]);
/** Envelope version byte (docs/E2E.md § Envelope). */
export const VERSION = 1;
/** Envelope type: the first messages of a session, carrying the X3DH header. */
export const TYPE_PREKEY = 1;
/** Envelope type: a Double Ratchet message on an established session. */
export const TYPE_MESSAGE = 2;

/** KEM field of the prekey header: 0 = X3DH only. Non-zero values are reserved for PQXDH. */
export const KEM_NONE = 0;

/**
 * Signature contexts. Each signature is Ed25519 over
 * `context || 0x00 || client_id (16) || key_id (u32) || key (32)`, so a signature made
 * for one purpose or one client verifies for no other.
 */
export const CONTEXT_IDENTITY_DH = `${PROTOCOL_LABEL} identity-dh`;
export const CONTEXT_SIGNED_PREKEY = `${PROTOCOL_LABEL} signed-prekey`;
export const CONTEXT_ONE_TIME_PREKEY = `${PROTOCOL_LABEL} one-time-prekey`;

/** X3DH § 2.2 info string; versioned so PQXDH (a different KDF input) gets its own. */
export const INFO_X3DH = `${PROTOCOL_LABEL} X3DH X25519 SHA-256`;
/** Double Ratchet § 5.2 KDF_RK info. */
export const INFO_RATCHET = `${PROTOCOL_LABEL} ratchet`;
/** Double Ratchet § 5.2 message-key expansion info (AES-256-GCM key and nonce). */
export const INFO_MESSAGE_KEYS = `${PROTOCOL_LABEL} message keys`;

/**
 * Most message keys one header may make us skip in one chain (Double Ratchet § 3.5
 * MAX_SKIP). A sender may hold 1,000 messages for an offline recipient on the server,
 * so 2,000 leaves room; a header beyond it is rejected before any key is derived.
 */
export const MAX_SKIP = 2000;
/** Most skipped message keys kept in total per session; the oldest are dropped first. */
export const MAX_SKIPPED_KEYS = 4000;
/** Sessions kept per peer (Sesame-style; both sides starting at once leaves two). */
export const MAX_SESSIONS_PER_PEER = 4;
/** Previous receiving-chain keys remembered, to tell a replay from a forgery. */
export const MAX_OLD_CHAINS = 8;

/**
 * Padding buckets (bytes of padded plaintext). The plaintext, then `0x80`, then zeros up
 * to the smallest bucket that holds it (ISO/IEC 7816-4 padding), so a message's size
 * shows only its bucket. The last bucket is the largest plaintext the envelope can carry
 * inside one C2C (65498 − 229 bytes of prekey envelope overhead, rounded down).
 */
export const PAD_BUCKETS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65024];
/** Largest plaintext that fits (the last bucket minus the 0x80 marker). */
export const MAX_PLAINTEXT = 65023;

/** One-time prekeys published in one bundle (the issue: up to 100). */
export const MAX_ONE_TIME_PREKEYS = 100;

/** Sizes. */
export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const TAG_BYTES = 16;
/** Ratchet header: dh (32) || pn (u32) || n (u32). */
export const HEADER_BYTES = 40;
/** No one-time prekey used (prekey header `opk_id`). */
export const NO_PREKEY = 0xffffffff;

/**
 * Envelope type: a signed key rollover — the sender's new identity and the chain of
 * signatures from its earlier identities (docs/E2E.md § Key rollover). Not encrypted:
 * it carries public keys and signatures only.
 */
export const TYPE_ROLLOVER = 3;
/** Signature context of a rollover link (old identity signs old ‖ new). */
export const CONTEXT_ROLLOVER = `${PROTOCOL_LABEL} rollover`;
/** Rollover links kept and sent (the last ones): a peer who knew an older key sees a key change. */
export const MAX_ROLLOVER_LINKS = 16;
/** How long an identity replaced by a rollover still decrypts messages in flight (s). */
export const RETIRED_IDENTITY_SECONDS = 30 * 24 * 3600;
/** Replaced identities kept at most (each with its sessions and prekeys). */
export const MAX_RETIRED_IDENTITIES = 4;

/**
 * Envelope type: a session reset request — "I could not decrypt these messages of
 * yours; start a new session and send them again" (docs/E2E.md § Session reset).
 * Signed by the requester's identity, not encrypted (it has no session to use).
 */
export const TYPE_RESET = 4;
/** Signature context of a session reset request. */
export const CONTEXT_RESET = `${PROTOCOL_LABEL} session-reset`;
/** Message digests one reset request names at most (the rest: the next request). */
export const MAX_RESET_DIGESTS = 1000;
/** Bytes of a message digest in a reset request (SHA-256 of the envelope, truncated). */
export const RESET_DIGEST_BYTES = 16;
/** Sent messages kept for a re-send: per peer, in all (bytes of plaintext), and how long (s). */
export const SENT_KEPT_PER_PEER = 200;
export const SENT_KEPT_BYTES = 256 * 1024;
export const SENT_KEPT_SECONDS = 7 * 24 * 3600;

// ---- the client state (state.ts) ----------------------------------------------------

/** How many live messages, and for how long (s), other processes can still show. */
export const RECENT_LIVE_MAX = 64;
export const RECENT_LIVE_SECONDS = 120;
/** …and how many bytes of plaintext at most: the state file is rewritten at every change. */
export const RECENT_LIVE_BYTES = 256 * 1024;

/** Signed prekeys are replaced after this long (X3DH § 2.4 "periodically"). */
export const SIGNED_PREKEY_LIFETIME = 7 * 24 * 3600;
/** Old signed prekeys kept for messages still in flight. */
export const OLD_SIGNED_PREKEYS = 2;
/** Below this many one-time prekeys left on the server the client publishes new ones. */
export const ONE_TIME_PREKEY_LOW = 20;
/**
 * One-time prekey secrets held at most. Keys handed out to a fetcher that has not
 * written yet stay held after new ones are published; the oldest beyond this go.
 */
export const MAX_HELD_ONE_TIME_PREKEYS = 4 * MAX_ONE_TIME_PREKEYS;
