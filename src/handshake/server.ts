/**
 * The server side of the backbone/1 handshake, as bytes in and bytes out (no sockets).
 * docs/PROTOCOL.md § Handshake, steps 1 and 5.
 *
 * @example
 * const hs = new ServerHandshake({ key: serverKey });
 * send(hs.challenge);
 * const { clientId, session } = await hs.verify(responsePayload, (id) => registry.publicKey(id));
 * send(session.sealer.seal(encodeControl(ControlType.CONFIG, settings)));
 */

import { Opener, Sealer } from "../crypto/channel.ts";
import { concat, randomBytes, wipe, X25519Secret, x25519Secret } from "../crypto/primitives.ts";
import type { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import { HandshakeError } from "../errors.ts";
import { idToText } from "../ids.ts";
import { copyBytes } from "../wire/bytes.ts";
import {
  DEFAULT_CHALLENGE_SIZE,
  ID_BYTES,
  MAX_FRAME_PAYLOAD,
  MIN_CHALLENGE_SIZE,
  OAEP_PLAINTEXT_BYTES,
  X25519_BYTES,
} from "../wire/constants.ts";
import { encodeChallenge, splitResponse } from "../wire/handshake.ts";
import { ControlType, encodeControl } from "../wire/message.ts";
import { dummyKey } from "./dummy-keys.ts";
import { authMessage, deriveKeys, transcriptHash } from "./schedule.ts";
import type { SessionKeys } from "./session.ts";

/** The text of the STOP sent for every authentication failure, whatever the cause. */
export const AUTH_FAILED = "authentication failed";
/** STOP reason when the registry cannot be read (the store is away): try again later. */
export const UNAVAILABLE = "service unavailable";

export interface ServerHandshakeOptions {
  /** The server's private key. */
  key: RsaPrivateKey;
  /** Bytes of challenge_data (default 2048, at least 64). */
  challengeSize?: number;
  /** Fixed ephemeral secret and challenge randomness, for test vectors only. The secret is wiped. */
  ephemeralSecret?: Uint8Array;
  challengeRandom?: Uint8Array;
}

/**
 * The answer of a lookup for an unknown or revoked ID that wants the signature checked
 * against a key of its own choosing (one that no one holds, used for the first time
 * just as a client's key is on its first login), so that refusing an unknown ID costs
 * what refusing a registered one does. docs/SECURITY.md § Timing.
 */
export class StandIn {
  constructor(readonly key: RsaPublicKey) {}
}

/**
 * Finds a client's public key; `null` or a {@link StandIn} for an unknown or revoked
 * ID. `signatureBytes` is the size of the signature the response carries (so that a
 * lookup can spend on an unknown ID what it spends on a known one of that size).
 */
export type KeyLookup = (
  clientId: Uint8Array,
  signatureBytes?: number,
) => RsaPublicKey | StandIn | null | Promise<RsaPublicKey | StandIn | null>;

/** What a verified response yields. The caller seals CONFIG with `session.sealer` (counter 0). */
export interface Accepted {
  clientId: Uint8Array;
  clientKey: RsaPublicKey;
  session: SessionKeys;
}

export class ServerHandshake {
  /** The challenge payload to send (without its frame header). */
  readonly challenge: Uint8Array;
  readonly #key: RsaPrivateKey;
  #secret: Uint8Array | null;
  /** The ephemeral secret parsed once, for the public key now and the shared secret later. */
  #ephemeral: X25519Secret | null;
  #used = false;

  constructor(opts: ServerHandshakeOptions) {
    const size = opts.challengeSize ?? DEFAULT_CHALLENGE_SIZE;
    const keyBytes = opts.key.publicKey.spki.length;
    if (
      !Number.isInteger(size) ||
      size < MIN_CHALLENGE_SIZE ||
      2 + keyBytes + size > MAX_FRAME_PAYLOAD
    ) {
      throw new RangeError(
        `challenge_size must be an integer from ${MIN_CHALLENGE_SIZE} to ${MAX_FRAME_PAYLOAD - 2 - keyBytes}`,
      );
    }
    this.#key = opts.key;
    this.#secret = opts.ephemeralSecret ?? x25519Secret();
    this.#ephemeral = new X25519Secret(this.#secret);
    const random = opts.challengeRandom ?? randomBytes(size - X25519_BYTES);
    if (random.length !== size - X25519_BYTES)
      throw new RangeError("challengeRandom has the wrong length");
    this.challenge = encodeChallenge(
      opts.key.publicKey.spki,
      concat(this.#ephemeral.publicKey, random),
    );
  }

  /**
   * Checks a response payload. Every failure throws `HandshakeError`; when the
   * response decrypted but the client is not accepted (unknown, revoked, wrong key,
   * bad signature) its `reply` is the STOP `authentication failed` payload to send
   * before closing. Any other failure means: close without a word.
   */
  async verify(response: Uint8Array, lookup: KeyLookup): Promise<Accepted> {
    if (this.#used || !this.#secret || !this.#ephemeral)
      throw new HandshakeError("response", "BAD_STATE", "response already processed");
    this.#used = true;
    const ephemeral = this.#ephemeral;
    const serverKey = this.#key.publicKey;
    let plain: Uint8Array | undefined;
    let shared: Uint8Array | undefined;
    let keys: { c2s: Uint8Array; s2c: Uint8Array } | undefined;
    try {
      // Before any RSA work: exact length and a block below the modulus.
      let parts: ReturnType<typeof splitResponse>;
      try {
        parts = splitResponse(response, serverKey.modulusBytes);
      } catch (cause) {
        throw new HandshakeError("response", "BAD_RESPONSE", "response has the wrong length", {
          cause,
        });
      }
      if (!serverKey.isBelowModulus(parts.block)) {
        throw new HandshakeError("response", "BAD_RESPONSE", "OAEP block is not below the modulus");
      }
      try {
        plain = await this.#key.decrypt(parts.block);
      } catch (cause) {
        throw new HandshakeError("key-exchange", "OAEP_FAILED", "OAEP block does not decrypt", {
          cause,
        });
      }
      if (plain.length !== OAEP_PLAINTEXT_BYTES) {
        throw new HandshakeError("key-exchange", "OAEP_FAILED", "OAEP plaintext is not 64 bytes");
      }
      const clientEphemeral = plain.subarray(0, X25519_BYTES);
      shared = ephemeral.shared(clientEphemeral);
      const th = transcriptHash(this.challenge, clientEphemeral);
      keys = deriveKeys(shared, plain.subarray(X25519_BYTES), th);
      const opener = new Opener(keys.c2s);
      const sealer = new Sealer(keys.s2c);
      let inner: Uint8Array;
      try {
        inner = opener.open(parts.sealed);
      } catch (cause) {
        throw new HandshakeError("response", "RESPONSE_UNREADABLE", "response does not open", {
          cause,
        });
      }
      // A copy: `inner` is a Buffer, whose slice() is a view that would keep it alive.
      const clientId = copyBytes(inner, 0, ID_BYTES);
      const signature = inner.subarray(ID_BYTES);
      const refuse = (code: string, message: string) => {
        const err = new HandshakeError("authentication", code, message, {
          reply: sealer.seal(encodeControl(ControlType.STOP, AUTH_FAILED)),
        });
        err.clientId = idToText(clientId); // any 16 bytes format as UUID text
        return err;
      };
      let found: Awaited<ReturnType<KeyLookup>>;
      try {
        found = await lookup(clientId, signature.length);
      } catch (cause) {
        // Not the client's fault: it hears so (and retries), rather than a silent close.
        const err = new HandshakeError("response", "UNAVAILABLE", "the registry cannot be read", {
          cause,
          reply: sealer.seal(encodeControl(ControlType.STOP, UNAVAILABLE)),
        });
        err.clientId = idToText(clientId);
        throw err;
      }
      const clientKey = found instanceof StandIn ? null : found;
      const standIn = found instanceof StandIn ? found.key : null;
      // An unknown ID is checked against a stand-in (or dummy) key of the same size, so
      // timing does not tell.
      const checkKey =
        clientKey && clientKey.modulusBytes === signature.length
          ? clientKey
          : standIn && standIn.modulusBytes === signature.length
            ? standIn
            : await dummyKey(signature.length);
      const valid = await checkKey.verify(authMessage(th, clientId), signature);
      if (!clientKey) throw refuse("UNKNOWN_CLIENT", "unknown or revoked client");
      if (!valid || checkKey !== clientKey)
        throw refuse("BAD_SIGNATURE", "signature does not verify");
      return { clientId, clientKey, session: { sealer, opener } };
    } catch (err) {
      if (err instanceof HandshakeError) throw err;
      throw new HandshakeError("key-exchange", "KEY_EXCHANGE_FAILED", "key exchange failed", {
        cause: err,
      });
    } finally {
      this.dispose();
      wipe(plain, shared, keys?.c2s, keys?.s2c);
    }
  }

  /** Wipes the ephemeral secret (after a timeout, say). Idempotent. */
  dispose(): void {
    wipe(this.#secret);
    this.#secret = null;
    this.#ephemeral?.dispose();
    this.#ephemeral = null;
  }
}
