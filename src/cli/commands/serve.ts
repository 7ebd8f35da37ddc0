/** `backbone serve`: run the server on the embedded store. */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { defineCommand } from "citty";
import { formatHostPort } from "../../client/address.ts";
import { describeErrno, UsageError } from "../../errors.ts";
import { StructuredLogger } from "../../log.ts";
import {
  dataPaths,
  defaultDataDir,
  loadOrCreateServerKey,
  openStore,
  undoCreate,
} from "../../server/datadir.ts";
import { BackboneServer } from "../../server/server.ts";
import {
  DEFAULT_SERVER_SETTINGS,
  mergeSettings,
  readSettingsFile,
  type ServerSettings,
} from "../../server/settings.ts";
import { CliError, EXIT } from "../common.ts";

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
    };
    const load = (file = configFile()): ServerSettings => {
      const fromFile = file ? readSettingsFile(file) : {};
      const base = mergeSettings(DEFAULT_SERVER_SETTINGS, fromFile, file ?? "config");
      return mergeSettings(base, flags, "flags");
    };
    const settings = load();
    const log = new StructuredLogger({ format: settings.log_format, level: settings.log_level });

    const { key, created, made } = await loadOrCreateServerKey(dir, {
      onCreate: () => log.info("creating server key", { dir }),
    });
    if (created)
      log.info("server key created", { fingerprint: key.publicKey.fingerprint, path: paths.key });
    const pidFile = `${paths.dir}/serve.pid`;
    let server: BackboneServer;
    let store: ReturnType<typeof openStore>;
    try {
      claimPidFile(pidFile, dir);
      try {
        store = openStore(dir);
      } catch (err) {
        rmSync(pidFile, { force: true });
        throw err;
      }
      try {
        server = await BackboneServer.start({ key, store, settings, log });
      } catch (err) {
        store.close();
        rmSync(pidFile, { force: true });
        throw err;
      }
    } catch (err) {
      // A first start that failed leaves nothing behind: no server key nobody ever used.
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
        server.reload(load(file), file ?? "flags");
      } catch (err) {
        log.error("reload failed; keeping the running settings", { error: (err as Error).message });
      }
    });
    await done.promise;
    store.close();
    rmSync(pidFile, { force: true });
    return EXIT.OK;
  },
});

/** A port already taken: says how to choose another. */
function withListenHint(err: unknown): unknown {
  const code = ((err as Error).cause as { code?: string } | undefined)?.code;
  if (err instanceof UsageError && err.code === "LISTEN_FAILED" && code === "EADDRINUSE") {
    return new CliError(
      `${err.message}; choose another with --port N (or port = N in config.toml)`,
      EXIT.USAGE,
    );
  }
  return err;
}

/** Refuses to run two servers on one data directory. */
function claimPidFile(path: string, dir: string): void {
  if (existsSync(path)) {
    const pid = Number(readFileSync(path, "utf8").trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new CliError(`another server (pid ${pid}) is already running on ${dir}`, EXIT.USAGE);
    }
  }
  try {
    writeFileSync(path, `${process.pid}\n`);
  } catch (cause) {
    throw new CliError(`cannot write ${path}: ${describeErrno(cause)}`, EXIT.USAGE);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
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
