/**
 * The client's side of liveness (docs/PROTOCOL.md § Liveness): a HEARTBEAT after
 * `heartbeat_interval` without sending — or without receiving, so a client that only
 * sends still hears from the server — and the connection dropped when the server has
 * said nothing for `heartbeat_timeout`, though it answers every HEARTBEAT.
 */
import { ControlType, encodeControl } from "../wire/message.ts";
import type { ConnectionSettings } from "../wire/settings.ts";
import type { Link } from "./link.ts";
import type { Requests } from "./requests.ts";

export class Heartbeat {
  readonly #link: () => Link | null;
  readonly #settings: () => ConnectionSettings;
  readonly #requests: Requests;
  #timer: ReturnType<typeof setInterval> | null = null;
  #last = 0;

  /** `link`: the open link, if any; `settings`: the latest CONFIG's. */
  constructor(link: () => Link | null, settings: () => ConnectionSettings, requests: Requests) {
    this.#link = link;
    this.#settings = settings;
    this.#requests = requests;
  }

  /** (Re)starts the checks, four per interval or timeout, whichever is shorter. */
  start(): void {
    this.stop();
    const s = this.#settings();
    const every = Math.max(20, Math.min(s.heartbeat_interval, s.heartbeat_timeout) * 250);
    this.#timer = setInterval(() => this.#tick(), every);
    this.#timer.unref?.();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    const link = this.#link();
    if (!link?.open) return;
    const s = this.#settings();
    const now = performance.now();
    if (now - link.lastReceived > s.heartbeat_timeout * 1000) {
      link.terminate(); // dead: the link ends, and the client reconnects
      return;
    }
    const interval = s.heartbeat_interval * 1000;
    if (
      now - link.lastSent >= interval ||
      (now - link.lastReceived >= interval && now - this.#last >= interval)
    ) {
      this.#last = now;
      this.#requests.expect(ControlType.HEARTBEAT, null);
      link.send(encodeControl(ControlType.HEARTBEAT));
    }
  }
}
