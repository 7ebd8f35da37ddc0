/**
 * A man in the middle for tests, on 127.0.0.1: it terminates each client's handshake
 * with its own RSA key (its own challenge, so it learns r_c and both session keys),
 * takes the client's ID and signature out of the response, and logs in to the real
 * server with them under fresh keys of its own. Whatever the server answers first is
 * re-encrypted for the client; if the server ever accepted, the relay would go on
 * re-encrypting every frame both ways (and could read them all).
 *
 * The protocol defeats it twice: a client that pins the real key refuses the relay's
 * challenge (PinningError), and a client tricked into pinning the relay's key signs a
 * transcript that covers the relay's key, which the real server's check rejects.
 *
 * @example
 * await using relay = await Mitm.start({ upstreamPort: server.port, key: attacker, serverKey });
 * await connect({ identity, server: relay.address }); // rejects with PinningError
 */
import type { Socket, TCPSocketListener } from "bun";
import { Opener, Sealer } from "../../src/crypto/channel.ts";
import {
  concat,
  randomBytes,
  x25519Public,
  x25519Secret,
  x25519Shared,
} from "../../src/crypto/primitives.ts";
import type { RsaPrivateKey, RsaPublicKey } from "../../src/crypto/rsa.ts";
import { deriveKeys, transcriptHash } from "../../src/handshake/schedule.ts";
import { encodeFrame, FrameReader } from "../../src/wire/frame.ts";
import { decodeChallenge, encodeChallenge, splitResponse } from "../../src/wire/handshake.ts";
import { decodeMessage, decodeText, Format } from "../../src/wire/message.ts";
import { FramedSocket } from "./framed.ts";

export interface MitmOptions {
  upstreamPort: number;
  /** The relay's own key, offered to clients in place of the server's. */
  key: RsaPrivateKey;
  /** The real server's key (public), to log in upstream. */
  serverKey: RsaPublicKey;
}

/** What the relay saw on one client connection. */
export interface MitmRecord {
  /** Bytes the client sent after the relay's challenge. */
  clientBytes: number;
  /** The client ID taken from the response, once the relay opened it. */
  clientId?: Uint8Array;
  /** The server's first message to the relay: "CONFIG", or "STOP <reason>". */
  upstreamFirst?: string;
  /** Frames re-encrypted after a (never expected) CONFIG. */
  relayed: number;
  error?: string;
}

/** A session key pair, as one side of a connection sees it. */
interface Keys {
  opener: Opener;
  sealer: Sealer;
}

/** One client connection through the relay. */
class Leg {
  readonly record: MitmRecord = { clientBytes: 0, relayed: 0 };
  readonly #reader = new FrameReader();
  readonly #secret = x25519Secret();
  readonly #challenge: Uint8Array;
  #up: Promise<FramedSocket>;
  #down: Keys | null = null;
  #upKeys: Keys | null = null;
  #work: Promise<void> = Promise.resolve();

  constructor(
    readonly socket: Socket<Leg>,
    readonly o: MitmOptions,
  ) {
    this.#up = FramedSocket.dial(o.upstreamPort);
    this.#up.catch(() => {}); // a failed dial surfaces in #onFrame
    this.#challenge = encodeChallenge(
      o.key.publicKey.spki,
      concat(x25519Public(this.#secret), randomBytes(2016)),
    );
    socket.write(encodeFrame(this.#challenge));
  }

  onData(chunk: Uint8Array): void {
    this.record.clientBytes += chunk.length;
    try {
      this.#reader.push(chunk, (payload) => {
        const copy = payload.slice();
        this.#work = this.#work.then(() => this.#onFrame(copy)).catch((err) => this.#fail(err));
        return undefined;
      });
    } catch (err) {
      this.#fail(err);
    }
  }

  #fail(err: unknown): void {
    this.record.error ??= String(err);
    this.close();
  }

  async #onFrame(payload: Uint8Array): Promise<void> {
    const up = await this.#up;
    if (this.#down && this.#upKeys) {
      // After a CONFIG (never expected): re-encrypt client → server.
      up.writeFrame(this.#upKeys.sealer.seal(this.#down.opener.open(payload)));
      this.record.relayed++;
      return;
    }
    // The client's response to the relay's challenge: the relay holds every key.
    const { block, sealed } = splitResponse(payload, this.o.key.publicKey.modulusBytes);
    const plain = await this.o.key.decrypt(block);
    const eC = plain.subarray(0, 32);
    const down = deriveKeys(
      x25519Shared(this.#secret, eC),
      plain.subarray(32),
      transcriptHash(this.#challenge, eC),
    );
    this.#down = { opener: new Opener(down.c2s), sealer: new Sealer(down.s2c) };
    const inner = this.#down.opener.open(sealed); // client_id || signature
    this.record.clientId = inner.slice(0, 16);
    // Log in upstream with the client's ID and signature, under the relay's own keys.
    const challenge = await up.nextFrame();
    const eS = decodeChallenge(challenge).serverEphemeral;
    const secret = x25519Secret();
    const publicE = x25519Public(secret);
    const rC = randomBytes(32);
    const keys = deriveKeys(x25519Shared(secret, eS), rC, transcriptHash(challenge, publicE));
    this.#upKeys = { opener: new Opener(keys.s2c), sealer: new Sealer(keys.c2s) };
    const oaep = await this.o.serverKey.encrypt(concat(publicE, rC));
    up.writeFrame(concat(oaep, this.#upKeys.sealer.seal(inner)));
    const first = this.#upKeys.opener.open(await up.nextFrame());
    const m = decodeMessage(first);
    this.record.upstreamFirst =
      m.format === Format.CONTROL && m.type === 0x0f ? `STOP ${decodeText(m.body)}` : "CONFIG";
    this.socket.write(encodeFrame(this.#down.sealer.seal(first)));
    if (m.format === Format.CONTROL && m.type === 0x0f) {
      this.socket.end();
      up.destroy();
      return;
    }
    void this.#pumpDown(up);
  }

  /** Server → client, re-encrypted (only after a CONFIG). */
  async #pumpDown(up: FramedSocket): Promise<void> {
    try {
      for (;;) {
        const plain = (this.#upKeys as Keys).opener.open(await up.nextFrame(60_000));
        this.socket.write(encodeFrame((this.#down as Keys).sealer.seal(plain)));
        this.record.relayed++;
      }
    } catch {
      this.close();
    }
  }

  close(): void {
    this.socket.terminate();
    void this.#up.then((up) => up.destroy()).catch(() => {});
  }
}

export class Mitm implements AsyncDisposable {
  /** One record per client connection, in order. */
  readonly records: MitmRecord[] = [];
  readonly #listener: TCPSocketListener<Leg>;
  readonly #legs = new Set<Leg>();

  private constructor(o: MitmOptions) {
    this.#listener = Bun.listen<Leg>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (socket) => {
          const leg = new Leg(socket, o);
          socket.data = leg;
          this.#legs.add(leg);
          this.records.push(leg.record);
        },
        data: (socket, chunk) => socket.data?.onData(chunk),
        close: (socket) => {
          if (socket.data) this.#legs.delete(socket.data);
        },
      },
    });
  }

  static async start(o: MitmOptions): Promise<Mitm> {
    return new Mitm(o);
  }

  get port(): number {
    return this.#listener.port;
  }

  /** `127.0.0.1:PORT`, to give a client as its server. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const leg of this.#legs) leg.close();
    this.#listener.stop(true);
  }
}
