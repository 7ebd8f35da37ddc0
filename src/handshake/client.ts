/**
 * The client side of the backbone/1 handshake, as bytes in and bytes out (no sockets).
 * docs/PROTOCOL.md § Handshake.
 *
 * @example
 * const hs = new ClientHandshake({ id, key, pinnedServerKey });
 * send(await hs.respond(challengePayload));
 * const { session, config } = hs.finish(configPayload);
 */
import { Opener, Sealer } from "../crypto/channel.ts";
import {
  concat,
  equalBytes,
  fingerprint,
  randomBytes,
  wipe,
  X25519Secret,
  x25519Secret,
} from "../crypto/primitives.ts";
import type { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import { HandshakeError, PinningError, WireError } from "../errors.ts";
import { ID_BYTES, R_C_BYTES } from "../wire/constants.ts";
import { decodeChallenge } from "../wire/handshake.ts";
import { ControlType, decodeJson, decodeMessage, decodeText, Format } from "../wire/message.ts";
import { authMessage, deriveKeys, transcriptHash } from "./schedule.ts";
import type { SessionKeys } from "./session.ts";

export interface ClientHandshakeOptions {
  /** This client's ID, 16 bytes. */
  id: Uint8Array;
  /** This client's private key. */
  key: RsaPrivateKey;
  /** The server key pinned at enrollment. There is no trust on first use. */
  pinnedServerKey: RsaPublicKey;
  /** Fixed ephemeral secret and r_c, for test vectors only. The handshake wipes them. */
  ephemeralSecret?: Uint8Array;
  rC?: Uint8Array;
}

/** What a completed client handshake yields. */
export interface ClientSession {
  session: SessionKeys;
  /** The JSON settings object of the first CONFIG. */
  config: Record<string, unknown>;
  /** The server key's fingerprint. */
  serverFingerprint: string;
}

export class ClientHandshake {
  readonly #opts: ClientHandshakeOptions;
  #s2c: Uint8Array | null = null;
  #sealer: Sealer | null = null;
  #state: "start" | "responding" | "responded" | "done" | "failed" = "start";

  constructor(opts: ClientHandshakeOptions) {
    if (opts.id.length !== ID_BYTES) throw new RangeError("client ID must be 16 bytes");
    this.#opts = opts;
  }

  /**
   * Checks the challenge and returns the response payload. Throws `PinningError` when
   * the server key is not the pinned one, `HandshakeError` (stage `challenge` or
   * `key-exchange`) otherwise. After any failure nothing secret is kept.
   */
  async respond(challengePayload: Uint8Array): Promise<Uint8Array> {
    if (this.#state !== "start") {
      throw new HandshakeError("challenge", "BAD_STATE", "challenge already answered");
    }
    this.#state = "responding";
    const eC = this.#opts.ephemeralSecret ?? x25519Secret();
    const rC = this.#opts.rC ?? randomBytes(R_C_BYTES);
    let shared: Uint8Array | undefined;
    let keys: { c2s: Uint8Array; s2c: Uint8Array } | undefined;
    let oaepPlain: Uint8Array | undefined;
    try {
      let challenge: ReturnType<typeof decodeChallenge>;
      try {
        challenge = decodeChallenge(challengePayload);
      } catch (cause) {
        throw new HandshakeError("challenge", "BAD_CHALLENGE", (cause as Error).message, { cause });
      }
      const pinned = this.#opts.pinnedServerKey;
      if (!equalBytes(challenge.serverSpki, pinned.spki)) {
        throw new PinningError(pinned.fingerprint, fingerprint(challenge.serverSpki));
      }
      const ephemeral = new X25519Secret(eC);
      const publicEC = ephemeral.publicKey;
      shared = ephemeral.shared(challenge.serverEphemeral);
      ephemeral.dispose();
      const th = transcriptHash(challengePayload, publicEC);
      keys = deriveKeys(shared, rC, th);
      const { id, key } = this.#opts;
      oaepPlain = concat(publicEC, rC);
      const [block, signature] = await Promise.all([
        pinned.encrypt(oaepPlain),
        key.sign(authMessage(th, id)),
      ]);
      const sealer = new Sealer(keys.c2s);
      const sealed = sealer.seal(concat(id, signature));
      this.#sealer = sealer;
      this.#s2c = keys.s2c;
      this.#state = "responded";
      return concat(block, sealed);
    } catch (err) {
      this.#fail();
      wipe(keys?.s2c);
      throw err instanceof HandshakeError
        ? err
        : new HandshakeError("key-exchange", "KEY_EXCHANGE_FAILED", "key exchange failed", {
            cause: err,
          });
    } finally {
      wipe(eC, rC, shared, keys?.c2s, oaepPlain);
    }
  }

  /**
   * Seals a message to send right after the response, before CONFIG arrives (c2s
   * counter 1, 2 …). Only ACK 0 is sent this way (docs/PROTOCOL.md § ACK).
   */
  sealEarly(message: Uint8Array): Uint8Array {
    if (this.#state !== "responded" || !this.#sealer) {
      throw new HandshakeError("response", "BAD_STATE", "no response was sent");
    }
    return this.#sealer.sealFrame(message);
  }

  /**
   * Opens the server's first frame. Returns the session when it is CONFIG; throws
   * `HandshakeError` stage `authentication` when it is STOP (the server refused us),
   * stage `config` when it does not open or is anything else.
   */
  finish(framePayload: Uint8Array): ClientSession {
    if (this.#state !== "responded" || !this.#s2c || !this.#sealer) {
      throw new HandshakeError("config", "BAD_STATE", "no response was sent");
    }
    const opener = new Opener(this.#s2c);
    wipe(this.#s2c);
    this.#s2c = null;
    try {
      const message = decodeMessage(opener.open(framePayload));
      if (message.format === Format.CONTROL && message.type === ControlType.STOP) {
        const reason = safeText(message.body);
        // A login past the server's max_sessions_per_client (docs/PROTOCOL.md § Sessions).
        // The registry unreadable (the store is away): not a refusal of this client.
        const code =
          reason === "too many sessions"
            ? "TOO_MANY_SESSIONS"
            : reason === "service unavailable"
              ? "UNAVAILABLE"
              : "AUTH_FAILED";
        throw new HandshakeError("authentication", code, reason || "authentication failed");
      }
      if (message.format !== Format.CONTROL || message.type !== ControlType.CONFIG) {
        throw new HandshakeError(
          "config",
          "BAD_CONFIG",
          "the server's first message is not CONFIG",
        );
      }
      const config = decodeJson(message.body);
      const session = { sealer: this.#sealer, opener };
      this.#state = "done";
      return { session, config, serverFingerprint: this.#opts.pinnedServerKey.fingerprint };
    } catch (err) {
      this.#fail();
      if (err instanceof HandshakeError) throw err;
      const code =
        err instanceof WireError && err.code === "DECRYPT_FAILED"
          ? "CONFIG_UNREADABLE"
          : "BAD_CONFIG";
      throw new HandshakeError("config", code, "the server's CONFIG is invalid", { cause: err });
    }
  }

  /** Drops every secret (after a timeout, say). */
  dispose(): void {
    if (this.#state !== "done") this.#fail();
  }

  #fail(): void {
    this.#state = "failed";
    wipe(this.#s2c);
    this.#s2c = null;
    this.#sealer = null;
  }
}

function safeText(body: Uint8Array): string {
  try {
    return decodeText(body).slice(0, 200);
  } catch {
    return "";
  }
}
