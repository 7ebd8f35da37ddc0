/**
 * A TCP connection (Bun.connect) read as backbone/1 frames, for tests: it splits what
 * arrives into frame payloads, writes any bytes at all, can pause reading (so the
 * server meets TCP backpressure), half-close, and be cut; a test can wait for a frame
 * or for the close. `RawSession` (raw.ts) runs a handshake over it.
 *
 * @example
 * await using sock = await FramedSocket.dial(port);
 * const challenge = await sock.nextFrame();
 * await sock.waitClosed(); // e.g. after connection_timeout
 */
import type { Socket } from "bun";
import { MAX_FRAME_PAYLOAD } from "../../src/wire/constants.ts";
import { encodeFrame, FrameReader } from "../../src/wire/frame.ts";

/** How long a read waits by default before it fails the test. */
export const DEFAULT_WAIT_MS = 5000;

/** The connection closed before the awaited frame arrived. */
export class RawClosedError extends Error {
  override name = "RawClosedError";
}

/** A TCP connection read as backbone frames; writes are raw bytes. */
export class FramedSocket implements AsyncDisposable {
  /** Every complete frame received so far (payloads, without the size header). */
  framesReceived = 0;
  bytesReceived = 0;
  /** Set when the socket reported an error (e.g. a reset), or the server sent a bad frame size. */
  error: Error | null = null;

  readonly #socket: Socket<undefined>;
  readonly #reader = new FrameReader(MAX_FRAME_PAYLOAD);
  readonly #frames: Uint8Array[] = [];
  readonly #closed = Promise.withResolvers<void>();
  #isClosed = false;
  #wake: (() => void) | null = null;
  #out: Uint8Array[] = [];

  private constructor(socket: Socket<undefined>) {
    this.#socket = socket;
  }

  /** Opens a TCP connection to `host:port`. Rejects when it cannot connect. */
  static async dial(port: number, host = "127.0.0.1"): Promise<FramedSocket> {
    let self: FramedSocket | null = null;
    const early: Uint8Array[] = [];
    let closedEarly = false;
    const socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_s, chunk) => {
          if (self) self.#onData(chunk);
          else early.push(new Uint8Array(chunk));
        },
        drain: () => {
          if (self) self.#onDrain();
        },
        close: () => {
          if (self) self.#onClose();
          else closedEarly = true;
        },
        error: (_s, err) => {
          if (self) self.error ??= err;
        },
      },
    });
    self = new FramedSocket(socket);
    for (const chunk of early) self.#onData(chunk);
    if (closedEarly) self.#onClose();
    return self;
  }

  /** Resolves when the connection has closed (for any reason). */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Frames received and not yet taken with `nextFrame`. */
  get buffered(): number {
    return this.#frames.length;
  }

  #onData(chunk: Uint8Array): void {
    this.bytesReceived += chunk.length;
    try {
      this.#reader.push(chunk, (payload) => {
        this.#frames.push(payload.slice());
        this.framesReceived++;
        return undefined;
      });
    } catch (err) {
      this.error ??= err as Error;
      this.#socket.terminate();
    }
    this.#notify();
  }

  #onClose(): void {
    this.#isClosed = true;
    this.#closed.resolve();
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /**
   * The next frame's payload. Rejects with `RawClosedError` when the connection closed
   * and no frame is left, or with a timeout error after `timeoutMs`.
   */
  async nextFrame(timeoutMs = DEFAULT_WAIT_MS): Promise<Uint8Array> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const frame = this.#frames.shift();
      if (frame) return frame;
      if (this.#isClosed) throw new RawClosedError("connection closed");
      const left = end - performance.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      const woken = new Promise<void>((resolve) => (this.#wake = resolve));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([woken, new Promise<void>((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }

  /** Waits for the close; rejects after `timeoutMs` if the connection is still open. */
  async waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`connection still open after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes raw bytes (queued behind anything the socket has not taken yet). */
  write(bytes: Uint8Array): void {
    if (this.#isClosed) return;
    if (this.#out.length > 0) {
      this.#out.push(bytes.slice());
      return;
    }
    const n = this.#socket.write(bytes);
    if (n >= 0 && n < bytes.length) this.#out.push(bytes.slice(n));
  }

  /** Writes `size (u16) || payload`. */
  writeFrame(payload: Uint8Array): void {
    this.write(encodeFrame(payload));
  }

  #onDrain(): void {
    while (this.#out.length > 0) {
      const next = this.#out[0] as Uint8Array;
      const n = this.#socket.write(next);
      if (n < 0) return;
      if (n < next.length) {
        this.#out[0] = next.subarray(n);
        return;
      }
      this.#out.shift();
    }
  }

  /** Stops reading from the socket: the server sees TCP backpressure. */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /** Half-close: sends FIN, keeps reading. */
  shutdown(): void {
    this.#socket.shutdown();
  }

  /** Graceful close (FIN after pending writes). */
  end(): void {
    this.#socket.end();
  }

  /** Cuts the connection at once. */
  destroy(): void {
    this.#socket.terminate();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#isClosed) this.destroy();
  }
}
