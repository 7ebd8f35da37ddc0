/**
 * A TCP proxy on 127.0.0.1 for fault tests: it sits between a client and the server
 * and forwards bytes both ways (with backpressure), until a test breaks the network:
 *
 * - `cutAfter(dir, n)`: forward exactly `n` more bytes in one direction, then cut both
 *   sides — a connection lost in the middle of a frame;
 * - `stallAfter(dir, n)`: the same, but the link then stalls (see `stall`);
 * - `cutAll()`: cut every link now (a client killed, a cable pulled and noticed);
 * - `stall()`: stop forwarding and reading on every open link, silently, keeping both
 *   sockets open — a half-open connection (the peer's kernel holds it, nothing moves);
 * - `refuse(true)`: new connections are closed at once (the network is down).
 *
 * @example
 * await using proxy = await TcpProxy.start(server.port);
 * const client = await connect({ identity, server: proxy.address });
 * proxy.stall(); // the client must notice within heartbeat_timeout
 */
import type { Socket, TCPSocketListener } from "bun";

/** `up`: client → server; `down`: server → client. */
export type Direction = "up" | "down";

type End = Socket<Link>;

/** One proxied connection: the client's socket and the proxy's own to the server. */
export class Link {
  client: End | null = null;
  server: End | null = null;
  state: "open" | "stalled" | "closed" = "open";
  bytes = { up: 0, down: 0 };
  /** Bytes the client sent before the server side was connected. */
  early: Uint8Array[] = [];
  readonly #queues = { up: [] as Uint8Array[], down: [] as Uint8Array[] };

  constructor(readonly proxy: TcpProxy) {}

  /** Forwards `chunk` in `dir`, honouring an armed cut. */
  forward(dir: Direction, chunk: Uint8Array): void {
    if (this.state !== "open") return;
    const cut = this.proxy.armed;
    let data = chunk;
    let cutNow = false;
    if (cut && cut.dir === dir) {
      if (data.length >= cut.left) {
        data = data.subarray(0, cut.left);
        cutNow = true;
        this.proxy.armed = null;
      } else cut.left -= data.length;
    }
    this.bytes[dir] += data.length;
    if (data.length > 0) this.#write(dir, new Uint8Array(data));
    if (cutNow) {
      if (cut?.action === "stall") this.stall();
      else this.cut(dir);
      cut?.done.resolve();
    }
  }

  #write(dir: Direction, data: Uint8Array): void {
    const to = dir === "up" ? this.server : this.client;
    const from = dir === "up" ? this.client : this.server;
    const queue = this.#queues[dir];
    if (!to) return;
    if (queue.length > 0) {
      queue.push(data);
      return;
    }
    const n = to.write(data);
    if (n < data.length) {
      queue.push(data.subarray(Math.max(0, n)));
      from?.pause(); // backpressure: read no more until the other side drains
    }
  }

  /** The socket `to` (the destination of `dir`) can take more. */
  drained(dir: Direction): void {
    if (this.state !== "open") return;
    const to = dir === "up" ? this.server : this.client;
    const from = dir === "up" ? this.client : this.server;
    const queue = this.#queues[dir];
    while (to && queue.length > 0) {
      const next = queue[0] as Uint8Array;
      const n = to.write(next);
      if (n < next.length) {
        queue[0] = next.subarray(Math.max(0, n));
        return;
      }
      queue.shift();
    }
    from?.resume();
  }

  /**
   * Cuts the link: the receiver of `dir` gets what was forwarded and then a FIN (it
   * sees a frame cut short), the other side is reset.
   */
  cut(dir: Direction = "down"): void {
    if (this.state === "closed") return;
    this.state = "closed";
    const receiver = dir === "up" ? this.server : this.client;
    const other = dir === "up" ? this.client : this.server;
    receiver?.end();
    other?.terminate();
    this.proxy.links.delete(this);
  }

  /** Stops moving bytes without closing anything. */
  stall(): void {
    if (this.state !== "open") return;
    this.state = "stalled";
    this.client?.pause();
    this.server?.pause();
  }

  /**
   * One side closed: close the other (after what is queued for it). A stalled link
   * passes nothing on, not even the close: the other side never hears of it.
   */
  closed(): void {
    if (this.state === "closed" || this.state === "stalled") return;
    this.state = "closed";
    this.client?.end();
    this.server?.end();
    this.proxy.links.delete(this);
  }

  destroy(): void {
    this.state = "closed";
    this.client?.terminate();
    this.server?.terminate();
  }
}

export class TcpProxy implements AsyncDisposable {
  /** Links currently open or stalled. */
  readonly links = new Set<Link>();
  /** Every link ever accepted (stalled ones stay here until the proxy closes). */
  readonly all: Link[] = [];
  /** Connections accepted and refused at once while `refuse(true)`. */
  refused = 0;
  armed: {
    dir: Direction;
    left: number;
    action: "cut" | "stall";
    done: PromiseWithResolvers<void>;
  } | null = null;
  #refusing = false;
  readonly #listener: TCPSocketListener<Link>;

  private constructor(
    readonly targetPort: number,
    readonly targetHost: string,
  ) {
    this.#listener = Bun.listen<Link>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => this.#accept(s),
        data: (s, chunk) => {
          const link = s.data;
          if (!link) return;
          if (!link.server) link.early.push(new Uint8Array(chunk));
          else link.forward("up", chunk);
        },
        drain: (s) => s.data?.drained("down"),
        close: (s) => s.data?.closed(),
        error: () => {},
      },
    });
  }

  /** Starts a proxy to `targetHost:targetPort` on a free port of 127.0.0.1. */
  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    return new TcpProxy(targetPort, targetHost);
  }

  get port(): number {
    return this.#listener.port;
  }

  /** `127.0.0.1:PORT`, for a client's `server` option. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  #accept(client: End): void {
    if (this.#refusing) {
      this.refused++;
      client.terminate();
      return;
    }
    const link = new Link(this);
    link.client = client;
    client.data = link;
    this.links.add(link);
    this.all.push(link);
    Bun.connect<Link>({
      hostname: this.targetHost,
      port: this.targetPort,
      data: link,
      socket: {
        open: (server) => {
          link.server = server;
          if (link.state === "closed") {
            server.terminate();
            return;
          }
          for (const chunk of link.early.splice(0)) link.forward("up", chunk);
        },
        data: (_s, chunk) => link.forward("down", chunk),
        drain: () => link.drained("up"),
        close: () => link.closed(),
        error: () => {},
      },
    }).catch(() => link.closed());
  }

  /**
   * Arms a cut: once `bytes` more bytes have passed in `dir` (on any open link), exactly
   * those are forwarded and that link is cut. Resolves when the cut has happened.
   */
  cutAfter(dir: Direction, bytes: number): Promise<void> {
    const done = Promise.withResolvers<void>();
    this.armed = { dir, left: bytes, action: "cut", done };
    return done.promise;
  }

  /** Like `cutAfter`, but the link then stalls (see `stall`) instead of being cut. */
  stallAfter(dir: Direction, bytes: number): Promise<void> {
    const done = Promise.withResolvers<void>();
    this.armed = { dir, left: bytes, action: "stall", done };
    return done.promise;
  }

  /** Cuts every open or stalled link at once (both sides reset). */
  cutAll(): void {
    for (const link of [...this.links]) {
      link.state = "open";
      link.client?.terminate();
      link.server?.terminate();
      link.state = "closed";
      this.links.delete(link);
    }
  }

  /** Every open link stops forwarding and reading, silently; nothing is closed. */
  stall(): void {
    for (const link of this.links) link.stall();
  }

  /** While on, new connections are closed at once without reaching the server. */
  refuse(on: boolean): void {
    this.#refusing = on;
  }

  async close(): Promise<void> {
    this.#listener.stop(true);
    for (const link of this.all) link.destroy();
    this.links.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
