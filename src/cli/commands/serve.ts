/** `backbone serve`: run the server on the embedded store, or on Redis (`--store`). */
import { existsSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { defineCommand } from "citty";
import { formatHostPort } from "../../client/address.ts";
import { UsageError } from "../../errors.ts";
import { StructuredLogger } from "../../log.ts";
import { type Cluster, joinRedisCluster } from "../../server/cluster.ts";
import {
  dataPaths,
  defaultDataDir,
  loadOrCreateServerKey,
  undoCreate,
} from "../../server/datadir.ts";
import { pidFilePath, runningServerPid } from "../../server/pidfile.ts";
import { BackboneServer } from "../../server/server.ts";
import {
  DEFAULT_SERVER_SETTINGS,
  mergeSettings,
  readSettingsFile,
  type ServerSettings,
} from "../../server/settings.ts";
import { writeFileNoFollow } from "../../store/files.ts";
import type { Store } from "../../store/store.ts";
import { CliError, EXIT } from "../common.ts";
import {
  openServerStore,
  refuseNewKeyForOldClients,
  STORE_ARG,
  storeFile,
  storeSpec,
} from "../store-option.ts";

export const serve = defineCommand({
  meta: {
    name: "serve",
    description: "Run the server (creates its key and data directory on first run)",
  },
  args: {
    data: {
      type: "string",
      description: "Data directory (default: $BACKBONE_DATA or ~/.local/share/backbone)",
      valueHint: "DIR",
    },
    host: {
      type: "string",
      description: "Address to listen on (default 0.0.0.0)",
      valueHint: "HOST",
    },
    port: {
      type: "string",
      description: "TCP port (default 7447; 0 picks a free one)",
      valueHint: "PORT",
    },
    config: {
      type: "string",
      description: "Settings file, TOML or JSON (default: DIR/config.toml if present)",
      valueHint: "FILE",
    },
    "log-format": {
      type: "enum",
      options: ["text", "json"],
      description: "Log format on stderr (default text)",
    },
    "log-level": {
      type: "enum",
      options: ["debug", "info", "warn", "error"],
      description: "Least severe level logged (default info)",
    },
    ...STORE_ARG,
    "reuse-port": {
      type: "boolean",
      description:
        "Share the port with other servers of one cluster on this machine (one per core)",
    },
    monitor: {
      type: "string",
      description:
        "Serve health, metrics and a status page over HTTP on HOST:PORT (off by default; loopback unless a token is set)",
      valueHint: "HOST:PORT",
    },
    "monitor-token-file": {
      type: "string",
      description: "File holding the monitor's bearer token (mode 0600; required off loopback)",
      valueHint: "FILE",
    },
  },
  async run({ args }) {
    const dir = args.data ?? defaultDataDir();
    const paths = dataPaths(dir);
    // Looked for again at each SIGHUP: DIR/config.toml may be created while running.
    const configFile = () => args.config ?? (existsSync(paths.config) ? paths.config : undefined);
    const flags: Record<string, unknown> = {
      host: args.host,
      port: args.port,
      log_format: args["log-format"],
      log_level: args["log-level"],
      store: args.store ?? process.env.BACKBONE_STORE,
      reuse_port: args["reuse-port"],
      monitor: args.monitor,
      monitor_token_file: args["monitor-token-file"],
    };
    const load = (file = configFile()): ServerSettings => {
      const fromFile = file ? readSettingsFile(file) : {};
      const base = mergeSettings(DEFAULT_SERVER_SETTINGS, fromFile, file ?? "config");
      return mergeSettings(base, flags, "command line");
    };
    const settings = load();
    const log = new StructuredLogger({ format: settings.log_format, level: settings.log_level });
    // Checked before anything starts: a monitor refused is a one-line error, not a half-up server.
    const monitor = await prepareMonitor(settings, dir);

    const { key, created, made } = await loadOrCreateServerKey(dir, {
      onCreate: () => log.info("creating server key", { dir }),
    });
    if (created)
      log.info("server key created", { fingerprint: key.publicKey.fingerprint, path: paths.key });
    const pidFile = pidFilePath(paths.dir);
    let server: BackboneServer;
    let store: Store;
    try {
      claimPidFile(pidFile, dir);
      try {
        const spec = storeSpec(settings.store);
        store = await openServerStore(dir, spec, key, log);
        // The tools given only --data (keygen, revoke, clients) then find the same store.
        if (spec) writeFileNoFollow(storeFile(dir), `${spec}\n`, 0o600);
        else rmSync(storeFile(dir), { force: true });
      } catch (err) {
        rmSync(pidFile, { force: true });
        throw err;
      }
      let cluster: Cluster | undefined;
      try {
        // Clients but no server key here: refused before a new key locks them out.
        await refuseNewKeyForOldClients(dir, store, created);
        // On Redis, this server is a node of a cluster (docs/CLUSTER.md).
        const spec = storeSpec(settings.store);
        if (spec)
          cluster = await joinRedisCluster(spec, { host: hostname(), pid: process.pid }, log);
        server = await BackboneServer.start({
          key,
          store: monitor ? monitor.wrapStore(store) : store,
          settings,
          log,
          ...(cluster ? { cluster } : {}),
        });
      } catch (err) {
        await cluster?.leave().catch(() => {});
        store.close();
        rmSync(pidFile, { force: true });
        throw err;
      }
    } catch (err) {
      // A first start that failed leaves nothing behind: no server key nobody ever used.
      if (made) undoCreate(paths, made);
      throw withListenHint(err);
    }
    try {
      await monitor?.start(server);
    } catch (err) {
      await server.close("server shutting down");
      store.close();
      rmSync(pidFile, { force: true });
      // As for the server's own port: a first start that failed leaves nothing behind.
      if (made) undoCreate(paths, made);
      throw withListenHint(err);
    }
    process.stdout.write(
      `listening on ${formatHostPort(server.hostname, server.port)} (server key ${key.publicKey.fingerprint})\n`,
    );
    log.info("listening", {
      host: server.hostname,
      port: server.port,
      data: dir,
      config: configFile(),
    });
    if (monitor) {
      process.stdout.write(`monitor on ${monitor.url}\n`);
      log.info("monitor listening", { url: monitor.url, token: monitor.config.token !== null });
    }

    const done = Promise.withResolvers<void>();
    const shutdown = (signal: string) => {
      log.info("shutting down", { signal });
      server
        .close("server shutting down")
        .catch((err) => log.error("shutdown failed", { error: String(err) }))
        .finally(() => done.resolve());
    };
    process.on("SIGINT", () => shutdown("SIGINT"));
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGHUP", () => {
      try {
        const file = configFile();
        const next = load(file);
        if (
          next.monitor !== settings.monitor ||
          next.monitor_token_file !== settings.monitor_token_file
        )
          log.warn("monitor changes take effect at the next start");
        server.reload(next, file ?? "command line");
      } catch (err) {
        log.error("reload failed; keeping the running settings", { error: (err as Error).message });
      }
    });
    await done.promise;
    await monitor?.stop();
    store.close();
    rmSync(pidFile, { force: true });
    return EXIT.OK;
  },
});

/**
 * The monitor of `--monitor` / `monitor = "HOST:PORT"`, loaded only then (prom-client
 * and the page cost nothing otherwise). Throws `UsageError` for a bad address, a
 * non-loopback address without a token, or a bad token file.
 */
async function prepareMonitor(settings: ServerSettings, dir: string) {
  if (!settings.monitor) {
    if (settings.monitor_token_file)
      throw new UsageError(
        "BAD_SETTING",
        "a monitor token file is set but no monitor (--monitor HOST:PORT)",
      );
    return null;
  }
  const { createMonitor, monitorConfig } = await import("../../monitor/index.ts");
  const config = monitorConfig(settings.monitor, settings.monitor_token_file);
  return createMonitor({ config, dataDir: dir });
}

/** A port already taken: says how to choose another. */
function withListenHint(err: unknown): unknown {
  const code = ((err as Error).cause as { code?: string } | undefined)?.code;
  if (err instanceof UsageError && err.code === "LISTEN_FAILED" && code === "EADDRINUSE") {
    return new CliError(
      `${err.message}; choose another with --port N (or port = N in config.toml)`,
      EXIT.USAGE,
    );
  }
  // The monitor's port is taken: the same words and the option that changes it.
  if (err instanceof UsageError && err.code === "MONITOR_LISTEN" && code === "EADDRINUSE") {
    const at = err.message.replace(/^cannot listen for the monitor on (\S+): .*$/, "$1");
    const port = at.slice(at.lastIndexOf(":") + 1);
    return new CliError(
      `cannot listen for the monitor on ${at}: port ${port} is already in use; choose another with --monitor HOST:PORT (or monitor = "HOST:PORT" in config.toml)`,
      EXIT.USAGE,
    );
  }
  return err;
}

/** Refuses to run two servers on one data directory. */
function claimPidFile(path: string, dir: string): void {
  const pid = runningServerPid(dir);
  if (pid !== null) {
    throw new CliError(`another server (pid ${pid}) is already running on ${dir}`, EXIT.USAGE);
  }
  try {
    writeFileNoFollow(path, `${process.pid}\n`, 0o644); // a planted symlink is replaced, never followed
  } catch (cause) {
    throw new CliError((cause as Error).message, EXIT.USAGE);
  }
}

/** The port set in DIR/config.toml, if any (keygen writes it into identities). */
export function configuredPort(dir: string): number | undefined {
  const { config } = dataPaths(dir);
  if (!existsSync(config)) return undefined;
  try {
    const port = readSettingsFile(config).port;
    return typeof port === "number" && port > 0 ? port : undefined;
  } catch (err) {
    if (err instanceof UsageError) return undefined;
    throw err;
  }
}
