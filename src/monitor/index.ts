/**
 * The monitoring port of `backbone serve --monitor HOST:PORT` (in the spirit of
 * nats-server's): /healthz, /metrics (Prometheus), /varz and /connz (NATS-shaped
 * JSON) and a live status page at /. Loaded only when a monitor is configured.
 *
 * @example
 * const monitor = createMonitor({ config: monitorConfig("127.0.0.1:8222", undefined), dataDir });
 * const server = await BackboneServer.start({ key, store: monitor.wrapStore(store), settings });
 * await monitor.start(server);
 * console.log(monitor.url); // http://127.0.0.1:8222/
 * …
 * await monitor.stop();
 */
import { hostname } from "node:os";
import type { Server } from "bun";
import type { Store } from "../store/store.ts";
import type { MonitorConfig } from "./config.ts";
import { History } from "./history.ts";
import { serveHttp } from "./http.ts";
import { Metrics } from "./metrics.ts";
import { Probe } from "./probe.ts";
import type { MonitorTarget } from "./target.ts";
import { type TimedStore, timedStore } from "./timed-store.ts";

export { isLoopback, type MonitorConfig, monitorConfig, parseMonitorAddress } from "./config.ts";
export type { MonitorTarget, NodeInfo } from "./target.ts";

export interface MonitorOptions {
  config: MonitorConfig;
  /** The node label of every series (default: this machine's host name). */
  node?: string;
  /** The data directory (its free space counts toward health). */
  dataDir?: string;
}

export class Monitor {
  readonly config: MonitorConfig;
  readonly node: string;
  readonly #opts: MonitorOptions;
  #timed: TimedStore | undefined;
  #probe: Probe | null = null;
  #history: History | null = null;
  #http: Server<undefined> | null = null;
  #metrics: Metrics | null = null;

  constructor(opts: MonitorOptions) {
    this.#opts = opts;
    this.config = opts.config;
    this.node = opts.node ?? hostname();
  }

  /** The store the server should use: `store`, timed into the latency histogram. */
  wrapStore(store: Store): Store {
    this.#timed = timedStore(store, { observe: (op, s) => this.#metricsNow().observe(op, s) });
    return this.#timed.store;
  }

  #metricsNow(): Metrics {
    this.#probe ??= new Probe({
      ...(this.#opts.dataDir ? { dataDir: this.#opts.dataDir } : {}),
      ...(this.#timed ? { timed: this.#timed } : {}),
    });
    this.#metrics ??= new Metrics(this.node, this.#probe);
    return this.#metrics;
  }

  /** Starts serving `target`. Throws `UsageError` `MONITOR_LISTEN` when the port is taken. */
  async start(target: MonitorTarget): Promise<void> {
    const metrics = this.#metricsNow();
    const probe = this.#probe as Probe;
    metrics.attach(target);
    probe.attach(target);
    const history = new History();
    history.start(target, probe);
    this.#history = history;
    try {
      this.#http = serveHttp({
        config: this.config,
        node: this.node,
        target,
        metrics,
        probe,
        history,
      });
    } catch (err) {
      history.stop();
      probe.stop();
      throw err;
    }
  }

  /** The page's address, e.g. `http://127.0.0.1:8222/`. */
  get url(): string {
    const host = this.#http?.hostname ?? this.config.host;
    const port = this.#http?.port ?? this.config.port;
    return `http://${host.includes(":") ? `[${host}]` : host}:${port}/`;
  }

  get port(): number {
    return this.#http?.port ?? this.config.port;
  }

  /** Stops serving (open event streams are cut). */
  async stop(): Promise<void> {
    this.#history?.stop();
    this.#probe?.stop();
    await this.#http?.stop(true);
    this.#http = null;
  }
}

/** A monitor for `serve`; see the module example. */
export function createMonitor(opts: MonitorOptions): Monitor {
  return new Monitor(opts);
}
