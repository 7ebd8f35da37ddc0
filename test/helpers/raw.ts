/**
 * A "raw" backbone/1 client for tests (and, later, fuzzing): it performs the real
 * handshake with `ClientHandshake`, then hands the test the session's own sealer and
 * opener, so a test can send any plaintext message_data (reserved types, forged
 * addresses, truncated headers), any bytes at all (a tampered or replayed frame, a
 * size-0 frame), read what the server sends back decrypted, and watch the close.
 *
 * Two layers, usable alone:
 * - `FramedSocket` (framed.ts): a TCP connection split into frames, which can write raw
 *   bytes, pause reading (so the server sees TCP backpressure), half-close and be cut.
 * - `RawSession`: a `FramedSocket` after a successful handshake, with the session's
 *   counters (c2s and s2c next = 1).
 *
 * Frames are opened strictly in arrival order, so a test must not run two `next()`
 * calls at once on one session (the s2c counter would go wrong).
 *
 * @example
 * await using raw = await RawSession.login(port, identity);
 * raw.send(new Uint8Array([0x35]));                  // reserved: discarded
 * expect(await raw.heartbeat()).toEqual([]);         // nothing came back before the answer
 */
import type { Opener, Sealer } from "../../src/crypto/channel.ts";
import type { RsaPrivateKey, RsaPublicKey } from "../../src/crypto/rsa.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { idToBytes } from "../../src/ids.ts";
import { BROADCAST_ID } from "../../src/wire/constants.ts";
import {
  type Body,
  ControlType,
  decodeJson,
  decodeMessage,
  decodeText,
  encodeControl,
  Format,
  type Message,
} from "../../src/wire/message.ts";
import { DEFAULT_WAIT_MS, FramedSocket } from "./framed.ts";

export { FramedSocket, RawClosedError } from "./framed.ts";

/** What a raw client needs to log in: the same fields as a library `Identity`. */
export interface RawIdentity {
  id: string;
  key: RsaPrivateKey;
  serverKey: RsaPublicKey;
}

/** An authenticated backbone/1 session driven by hand. */
export class RawSession implements AsyncDisposable {
  readonly sock: FramedSocket;
  /** This client's ID (text). */
  readonly id: string;
  /** The first CONFIG's JSON. */
  readonly config: Record<string, unknown>;
  /** Seals c2s frames; its counter is the next one the server expects. */
  readonly sealer: Sealer;
  /** Opens s2c frames, in order. */
  readonly opener: Opener;

  private constructor(
    sock: FramedSocket,
    id: string,
    session: { sealer: Sealer; opener: Opener },
    config: Record<string, unknown>,
  ) {
    this.sock = sock;
    this.id = id;
    this.sealer = session.sealer;
    this.opener = session.opener;
    this.config = config;
  }

  /** Connects to `host:port` and logs in as `identity`. Rejects like `handshake`. */
  static async login(
    port: number,
    identity: RawIdentity,
    host = "127.0.0.1",
    early: Uint8Array[] = [],
  ): Promise<RawSession> {
    const sock = await FramedSocket.dial(port, host);
    try {
      return await RawSession.handshake(sock, identity, early);
    } catch (err) {
      sock.destroy();
      throw err;
    }
  }

  /**
   * Runs the client side of the handshake on an open socket. Rejects with
   * `HandshakeError` (refused: stage `authentication`; `PinningError`), or
   * `RawClosedError` when the server closed without answering.
   */
  static async handshake(
    sock: FramedSocket,
    identity: RawIdentity,
    early: Uint8Array[] = [],
  ): Promise<RawSession> {
    const hs = new ClientHandshake({
      id: idToBytes(identity.id),
      key: identity.key,
      pinnedServerKey: identity.serverKey,
    });
    try {
      const challenge = await sock.nextFrame();
      sock.writeFrame(await hs.respond(challenge));
      // Messages sent right after the response, before CONFIG (e.g. ACK 0).
      for (const m of early) sock.write(hs.sealEarly(m));
      const { session, config } = hs.finish(await sock.nextFrame());
      return new RawSession(sock, identity.id.toLowerCase(), session, config);
    } finally {
      hs.dispose();
    }
  }

  // ---- sending ------------------------------------------------------------------------

  /** Seals `message` as a whole frame with the next c2s counter, without writing it. */
  seal(message: Uint8Array): Uint8Array {
    return this.sealer.sealFrame(message);
  }

  /** Seals and writes any message_data. */
  send(message: Uint8Array): void {
    this.sock.write(this.seal(message));
  }

  /** Writes bytes as they are (no sealing, no frame header). */
  sendRaw(bytes: Uint8Array): void {
    this.sock.write(bytes);
  }

  /** Sends `byte0 || body` where byte0 is `0x10 | type` (any type, reserved ones too). */
  sendControl(type: number, body?: Body): void {
    this.send(encodeControl(type as ControlType, body));
  }

  /** Sends `byte0 || address || data` with any byte 0 (C2C or not) and any 16-byte address. */
  sendC2C(to: string | Uint8Array, data: Uint8Array | string, byte0 = 0x00): void {
    this.send(c2c(byte0, to, data));
  }

  // ---- receiving ----------------------------------------------------------------------

  /** The next frame, decrypted (throws `WireError` DECRYPT_FAILED if it does not open). */
  async next(timeoutMs = DEFAULT_WAIT_MS): Promise<Uint8Array> {
    return this.opener.open(await this.sock.nextFrame(timeoutMs));
  }

  /** The next frame, decrypted and decoded. */
  async nextMessage(timeoutMs = DEFAULT_WAIT_MS): Promise<Message> {
    return decodeMessage(await this.next(timeoutMs));
  }

  /** Reads messages until one matches `done`; returns the ones before it and the match. */
  async readUntil(
    done: (m: Message) => boolean,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<{ before: Message[]; match: Message }> {
    const before: Message[] = [];
    const end = performance.now() + timeoutMs;
    for (;;) {
      const m = await this.nextMessage(Math.max(1, end - performance.now()));
      if (done(m)) return { before, match: m };
      before.push(m);
    }
  }

  /**
   * Sends HEARTBEAT and waits for its answer; returns every message that arrived
   * before the answer (the server handles frames in order: a barrier).
   */
  async heartbeat(timeoutMs = DEFAULT_WAIT_MS): Promise<Message[]> {
    this.sendControl(ControlType.HEARTBEAT);
    return (await this.readUntil((m) => isControl(m, ControlType.HEARTBEAT), timeoutMs)).before;
  }

  /** Sends a request of `type` and returns the JSON body of its reply. */
  async request(
    type: number,
    body?: Body,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<Record<string, unknown>> {
    this.sendControl(type, body);
    const { match } = await this.readUntil((m) => isControl(m, type), timeoutMs);
    return decodeJson((match as Extract<Message, { format: 1 }>).body);
  }

  /** SERVER_STATUS as JSON. */
  serverStatus(): Promise<Record<string, unknown>> {
    return this.request(ControlType.SERVER_STATUS);
  }

  /**
   * Reads until the server's STOP and then the close; returns the STOP reason and the
   * messages before it. Fails if the connection closes without a STOP.
   */
  async expectStop(timeoutMs = DEFAULT_WAIT_MS): Promise<{ reason: string; before: Message[] }> {
    const { before, match } = await this.readUntil(
      (m) => isControl(m, ControlType.STOP),
      timeoutMs,
    );
    await this.sock.waitClosed(timeoutMs);
    const reason = decodeText((match as Extract<Message, { format: 1 }>).body);
    return { reason, before };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.sock[Symbol.asyncDispose]();
  }
}

/** `byte0 || address || data` without any checks (the address must be 16 bytes). */
export function c2c(byte0: number, to: string | Uint8Array, data: Uint8Array | string): Uint8Array {
  const address = typeof to === "string" ? idToBytes(to) : to;
  if (address.length !== 16) throw new RangeError("an address is 16 bytes");
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const out = new Uint8Array(17 + bytes.length);
  out[0] = byte0;
  out.set(address, 1);
  out.set(bytes, 17);
  return out;
}

/** The broadcast address, 16 × 0xff. */
export const BROADCAST_ADDRESS: Uint8Array = BROADCAST_ID;

/** True when `m` is a control message (C2S/S2C) of `type`. */
export function isControl(m: Message, type: number): m is Extract<Message, { format: 1 }> {
  return m.format === Format.CONTROL && m.type === type;
}

/** The JSON body of a control message. */
export function jsonBody(m: Message): Record<string, unknown> {
  if (m.format !== Format.CONTROL) throw new TypeError("not a control message");
  return decodeJson(m.body);
}

/** The text of a C2C message's data. */
export function text(m: Message): string {
  if (m.format !== Format.C2C) throw new TypeError("not a C2C message");
  return new TextDecoder().decode(m.data);
}
