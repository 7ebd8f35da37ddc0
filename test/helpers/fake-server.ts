/**
 * A server that plays backbone/1 by the book up to CONFIG and then says what the test
 * wants (a hostile or broken server), on 127.0.0.1. It runs the real server handshake
 * (`ServerHandshake`) against the keys it is given, sends `config` as the first CONFIG,
 * then `later` (each a CONFIG body) one by one, and answers HEARTBEAT so the client
 * stays happy. Every message the client sends is recorded decrypted; `stops` holds the
 * reasons of the client's STOPs.
 *
 * @example
 * await using fake = await FakeServer.start({ key, clients, config: { heartbeat_interval: 1e10 } });
 * await expect(connect({ identity, server: fake.address })).rejects.toThrow();
 * expect(fake.stops).toEqual(["protocol error"]);
 */
import type { Socket, TCPSocketListener } from "bun";
import type { Opener, Sealer } from "../../src/crypto/channel.ts";
import type { RsaPrivateKey, RsaPublicKey } from "../../src/crypto/rsa.ts";
import { ServerHandshake } from "../../src/handshake/server.ts";
import { idToText } from "../../src/ids.ts";
import { encodeFrame, FrameReader } from "../../src/wire/frame.ts";
import {
  ControlType,
  decodeMessage,
  decodeText,
  encodeControl,
  Format,
  type Message,
} from "../../src/wire/message.ts";

export interface FakeServerOptions {
  key: RsaPrivateKey;
  /** Client ID (text) → its public key: who may log in. */
  clients: Map<string, RsaPublicKey>;
  /** The first CONFIG's body. */
  config: Record<string, unknown>;
  /** CONFIG bodies sent after the first, each once the client has sent its first HEARTBEAT or message. */
  later?: Record<string, unknown>[];
}

interface Conn {
  hs: ServerHandshake;
  reader: FrameReader;
  session: { sealer: Sealer; opener: Opener } | null;
  pending: Uint8Array[];
  busy: boolean;
}

export class FakeServer implements AsyncDisposable {
  readonly #listener: TCPSocketListener<Conn>;
  readonly #opts: FakeServerOptions;
  /** Every message clients sent after the handshake, decoded. */
  readonly received: Message[] = [];
  /** The reasons of the STOPs clients sent. */
  readonly stops: string[] = [];
  /** Connections closed so far. */
  closed = 0;
  /** Sockets past the handshake (for `push`). */
  readonly #open = new Set<Socket<Conn>>();

  private constructor(opts: FakeServerOptions) {
    this.#opts = opts;
    this.#listener = Bun.listen<Conn>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => {
          const hs = new ServerHandshake({ key: opts.key });
          s.data = { hs, reader: new FrameReader(), session: null, pending: [], busy: false };
          s.write(encodeFrame(hs.challenge));
        },
        data: (s, chunk) => {
          s.data.reader.push(chunk, (payload) => {
            s.data.pending.push(payload.slice());
            return undefined;
          });
          void this.#drain(s);
        },
        close: (s) => {
          this.#open.delete(s);
          this.closed++;
        },
        error: () => {},
      },
    });
  }

  static async start(opts: FakeServerOptions): Promise<FakeServer> {
    return new FakeServer(opts);
  }

  get port(): number {
    return this.#listener.port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async #drain(s: Socket<Conn>): Promise<void> {
    const c = s.data;
    if (c.busy) return;
    c.busy = true;
    try {
      while (c.pending.length > 0) {
        const payload = c.pending.shift() as Uint8Array;
        if (!c.session) {
          const accepted = await c.hs.verify(
            payload,
            (id) => this.#opts.clients.get(idToText(id)) ?? null,
          );
          c.session = accepted.session;
          this.#open.add(s);
          s.write(
            encodeFrame(
              c.session.sealer.seal(encodeControl(ControlType.CONFIG, this.#opts.config)),
            ),
          );
          continue;
        }
        const msg = decodeMessage(c.session.opener.open(payload));
        this.received.push(msg);
        if (msg.format !== Format.CONTROL) continue;
        if (msg.type === ControlType.STOP) this.stops.push(decodeText(msg.body));
        if (msg.type === ControlType.HEARTBEAT) {
          s.write(encodeFrame(c.session.sealer.seal(encodeControl(ControlType.HEARTBEAT))));
        }
        const next = this.#opts.later?.shift();
        if (next) {
          s.write(encodeFrame(c.session.sealer.seal(encodeControl(ControlType.CONFIG, next))));
        }
      }
    } catch {
      s.terminate();
    } finally {
      c.busy = false;
    }
  }

  /** Sends `message` (any message data, sealed) to every client past the handshake. */
  push(message: Uint8Array): void {
    for (const s of this.#open) {
      const session = s.data.session;
      if (session) s.write(encodeFrame(session.sealer.seal(message)));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.stop(true);
  }
}
