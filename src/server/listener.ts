/**
 * The server's listening socket (`Bun.listen`): every socket callback run under a guard
 * (a bug that throws ends that connection only, logged as an error), and listening
 * paused while the connections would leave too few file descriptors (fd-limit.ts) —
 * accept() would otherwise fail with EMFILE in a busy loop — then resumed on the port
 * first bound.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "../log.ts";
import type { Connection } from "./connection.ts";
import { DescriptorGuard, raiseFdLimit } from "./fd-limit.ts";
import { listenError } from "./listen-error.ts";
import type { ServerSettings } from "./settings.ts";

/** What the server does when a socket opens or closes (data and drain go to its Connection). */
export interface SocketEvents {
  open(socket: Socket<Connection>): void;
  close(socket: Socket<Connection>): void;
}

export class Listener {
  readonly #settings: () => Readonly<ServerSettings>;
  readonly #log: Logger;
  readonly #events: SocketEvents;
  #listener: TCPSocketListener<Connection> | null = null;
  /** The port bound (the real one when started with port 0), to listen again on. */
  #boundPort: number | null = null;
  /** When to stop and resume listening for want of descriptors (fd-limit.ts). */
  #fds: DescriptorGuard | null = null;

  constructor(settings: () => Readonly<ServerSettings>, log: Logger, events: SocketEvents) {
    this.#settings = settings;
    this.#log = log;
    this.#events = events;
  }

  /**
   * Raises the descriptor limit, listens on `port`, and starts guarding descriptors
   * (`open`: connections open now). Throws `UsageError` `LISTEN_FAILED`.
   */
  start(port: number, open: number): void {
    const fds = raiseFdLimit();
    this.#listen(port);
    this.#fds = new DescriptorGuard(fds, open, this.#log);
  }

  /** The address listened on. */
  get hostname(): string {
    return this.#listener?.hostname ?? this.#settings().host;
  }

  /** The port listened on (the real one when started with port 0). */
  get port(): number {
    return this.#listener?.port ?? this.#boundPort ?? this.#settings().port;
  }

  /** True while the descriptor guard keeps the listener closed. */
  get paused(): boolean {
    return this.#fds?.paused ?? false;
  }

  #listen(port: number): void {
    const s = this.#settings();
    try {
      this.#listener = Bun.listen<Connection>({
        hostname: s.host,
        port,
        // Bun takes reusePort for listeners too; its types list it for connect only.
        ...(s.reuse_port ? ({ reusePort: true } as object) : {}),
        socket: {
          open: (socket) => this.#guard(socket, () => this.#events.open(socket)),
          data: (socket, chunk) => this.#guard(socket, () => socket.data?.onData(chunk)),
          drain: (socket) => this.#guard(socket, () => socket.data?.onDrain()),
          close: (socket) => this.#guard(socket, () => this.#events.close(socket)),
          error: (socket, error) => {
            this.#log.debug("socket error", { addr: socket.remoteAddress, error: error.message });
          },
        },
      });
    } catch (cause) {
      throw listenError(s.host, port, cause);
    }
    this.#boundPort = this.#listener.port;
  }

  /**
   * Stops listening when `open` connections would leave too few descriptors, and
   * listens again once enough have closed (a failure to is logged, tried again later).
   */
  checkDescriptors(open: number): void {
    if (!this.#fds) return;
    const action = this.#fds.check(open);
    if (action === "pause") {
      this.#listener?.stop(false); // existing connections stay
      this.#listener = null;
    } else if (action === "resume") {
      try {
        this.#listen(this.#boundPort ?? this.#settings().port);
      } catch (err) {
        this.#log.error("cannot listen again", { error: (err as Error).message });
        return; // tried again at the next close or sweep
      }
      this.#fds.resumed(open);
    }
  }

  /** Stops accepting; `closeActive`: also closes every open connection's socket. */
  stop(closeActive: boolean): void {
    this.#listener?.stop(closeActive);
  }

  /**
   * Runs a socket callback; a bug that throws is logged as an error and ends that
   * connection only (Bun would hand it to the socket's error handler, where a network
   * error is routine and logged at debug level).
   */
  #guard(socket: Socket<Connection>, task: () => void): void {
    try {
      task();
    } catch (err) {
      this.#log.error("internal error", {
        addr: socket.remoteAddress,
        id: socket.data?.idText || undefined,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
      if (socket.data) socket.data.stop("internal error");
      else socket.terminate();
    }
  }
}
