/**
 * Automatic session reset (docs/E2E.md § Session reset), as Signal's retry receipts do
 * it: a recipient that cannot decrypt a message — it re-installed, or lost the session
 * — tells the sender which messages, and the sender starts a new session from the
 * recipient's current bundle and sends them again if it still has them.
 *
 * The request travels inside C2C data, so the server learns nothing new (it sees a
 * small message from the recipient to the sender). It is signed by the requester's
 * identity for the requester's ID and the sender's ID, so nobody else can trigger
 * re-sends:
 *
 *   ff e2 || version (1) = 01 || type (1) = 04 ||
 *   signing_key (32) || dh_key (32) || dh_signature (64) ||
 *   count (u16) || count × digest (16) || signature (64)
 *
 * `digest` is the first 16 bytes of SHA-256 of the envelope (the whole C2C data) that
 * failed; the signature is Ed25519 over
 *   "backbone-e2e/1 session-reset" || 0x00 || requester_id (16) || key_id (u32) = 0 ||
 *   recipient_id (16) || count (u16) || digests
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { idToBytes } from "../ids.ts";
import { copyBytes } from "../wire/bytes.ts";
import {
  CONTEXT_RESET,
  MAGIC,
  MAX_RESET_DIGESTS,
  RESET_DIGEST_BYTES,
  SIGNATURE_BYTES,
  TYPE_RESET,
  VERSION,
} from "./constants.ts";
import { E2EError } from "./errors.ts";
import {
  type Identity,
  type PublicIdentity,
  publicIdentity,
  signedPayload,
  verifyIdentity,
} from "./keys.ts";
import { sign, verify } from "./primitives.ts";

/** Decryption failures that a new session can cure (not replays, not damaged bytes). */
export const RESETTABLE = new Set(["UNKNOWN_PREKEY", "DECRYPT_FAILED", "NO_SESSION"]);

/** The digest a reset request names a message by (hex). */
export function messageDigest(envelope: Uint8Array): string {
  return Buffer.from(sha256(envelope).subarray(0, RESET_DIGEST_BYTES)).toString("hex");
}

function body(recipientId: string, digests: string[]): Uint8Array {
  const out = new Uint8Array(16 + 2 + digests.length * RESET_DIGEST_BYTES);
  out.set(idToBytes(recipientId), 0);
  new DataView(out.buffer).setUint16(16, digests.length);
  digests.forEach((d, i) => {
    out.set(Buffer.from(d, "hex"), 18 + i * RESET_DIGEST_BYTES);
  });
  return out;
}

/** The reset request from `own` to `recipientId` naming `digests` (hex, at most MAX_RESET_DIGESTS). */
export function encodeResetEnvelope(
  own: Identity,
  recipientId: string,
  digests: string[],
): Uint8Array {
  if (digests.length === 0 || digests.length > MAX_RESET_DIGESTS) {
    throw new E2EError("MALFORMED", "a reset request names 1 to 1000 messages");
  }
  const b = body(recipientId, digests);
  const signature = sign(own.signing.secret, signedPayload(CONTEXT_RESET, own.clientId, 0, b));
  const id = publicIdentity(own);
  const out = new Uint8Array(4 + 128 + (b.length - 16) + SIGNATURE_BYTES);
  out.set(MAGIC, 0);
  out[2] = VERSION;
  out[3] = TYPE_RESET;
  out.set(id.signingKey, 4);
  out.set(id.dhKey, 36);
  out.set(id.dhSignature, 68);
  out.set(b.subarray(16), 132);
  out.set(signature, out.length - SIGNATURE_BYTES);
  return out;
}

/** True for C2C data that is a reset request. */
export function isResetEnvelope(data: Uint8Array): boolean {
  return (
    data.length >= 4 &&
    data[0] === MAGIC[0] &&
    data[1] === MAGIC[1] &&
    data[2] === VERSION &&
    data[3] === TYPE_RESET
  );
}

/** A verified reset request. */
export interface ResetRequest {
  /** The requester's identity (its current one, which must match its published bundle). */
  identity: PublicIdentity;
  /** Digests (hex) of the messages it could not decrypt. */
  digests: string[];
}

/**
 * Parses and verifies a reset request from `senderId` (as the server stated it) to us,
 * `ownId`: the requester's identity signed for its ID, the request signed by it and
 * naming us. Throws `E2EError` (`MALFORMED`, `BAD_KEY`, `BAD_SIGNATURE`).
 */
export function decodeResetEnvelope(
  data: Uint8Array,
  senderId: string,
  ownId: string,
): ResetRequest {
  const bad = () => new E2EError("MALFORMED", "bad reset request");
  if (!isResetEnvelope(data) || data.length < 134 + SIGNATURE_BYTES) throw bad();
  const count = new DataView(data.buffer, data.byteOffset + 132, 2).getUint16(0);
  if (count === 0 || count > MAX_RESET_DIGESTS) throw bad();
  if (data.length !== 134 + count * RESET_DIGEST_BYTES + SIGNATURE_BYTES) throw bad();
  const identity = {
    signingKey: copyBytes(data, 4, 36),
    dhKey: copyBytes(data, 36, 68),
    dhSignature: copyBytes(data, 68, 132),
  };
  verifyIdentity(identity, senderId);
  const digests: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = 134 + i * RESET_DIGEST_BYTES;
    digests.push(Buffer.from(data.subarray(at, at + RESET_DIGEST_BYTES)).toString("hex"));
  }
  const signature = data.subarray(data.length - SIGNATURE_BYTES);
  const payload = signedPayload(CONTEXT_RESET, senderId, 0, body(ownId, digests));
  if (!verify(identity.signingKey, payload, signature)) {
    throw new E2EError("BAD_SIGNATURE", "reset request signature does not verify");
  }
  return { identity, digests };
}

/**
 * The recipient's side: collects the digests of messages that failed per sender and
 * sends one request per sender once the current batch of messages is handled and our
 * keys are published (the sender fetches them next). Each message is asked for once.
 */
export class ResetRequester {
  readonly #pending = new Map<string, string[]>();
  readonly #asked = new Set<string>();
  #scheduled = false;

  /**
   * `send` delivers C2C data (throws when not connected: the request is then dropped);
   * `ready` resolves once our keys are published; `own` is our current identity.
   */
  constructor(
    private readonly send: (to: string, data: Uint8Array) => void,
    private readonly ready: () => Promise<void>,
    private readonly own: () => Identity,
  ) {}

  /** Notes that `envelope` from `senderId` could not be decrypted; false when already asked. */
  add(senderId: string, envelope: Uint8Array): boolean {
    const digest = messageDigest(envelope);
    const key = `${senderId.toLowerCase()} ${digest}`;
    if (this.#asked.has(key)) return false;
    // Bounded: a flood of undecryptable messages must not grow memory without end.
    if (this.#asked.size >= 100_000) this.#asked.clear();
    this.#asked.add(key);
    const list = this.#pending.get(senderId.toLowerCase()) ?? [];
    list.push(digest);
    this.#pending.set(senderId.toLowerCase(), list);
    this.#schedule();
    return true;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // After the current batch (a whole queue of stored messages arrives at once).
    setTimeout(() => {
      void this.ready().then(() => {
        this.#scheduled = false;
        const batches = [...this.#pending];
        this.#pending.clear();
        for (const [to, digests] of batches) {
          for (let i = 0; i < digests.length; i += MAX_RESET_DIGESTS) {
            try {
              this.send(
                to,
                encodeResetEnvelope(this.own(), to, digests.slice(i, i + MAX_RESET_DIGESTS)),
              );
            } catch {
              // Not connected: the sender's next message fails again and asks anew.
            }
          }
        }
      });
    }, 0);
  }
}
