/**
 * A backbone server in its own process, for tests that crash, stop or restart it.
 *
 *   bun test/helpers/server-process.ts DATA_DIR [SETTINGS_JSON]
 *
 * Opens DATA_DIR's key (server.key) and SQLite store (backbone.db), starts
 * `BackboneServer` with the settings (default host 127.0.0.1, port 0), prints
 * `listening on HOST:PORT` on stdout and stays up. Logs go to stderr. SIGTERM or
 * SIGINT closes it cleanly; `kill -9` is what the crash tests send.
 */

import { StructuredLogger } from "../../src/log.ts";
import { loadServerKey, openStore } from "../../src/server/datadir.ts";
import { BackboneServer } from "../../src/server/server.ts";
import type { ServerSettings } from "../../src/server/settings.ts";

const [dir, json = "{}"] = process.argv.slice(2);
if (!dir) {
  process.stderr.write("usage: bun test/helpers/server-process.ts DATA_DIR [SETTINGS_JSON]\n");
  process.exit(2);
}
const settings: Partial<ServerSettings> = { host: "127.0.0.1", port: 0, ...JSON.parse(json) };
const key = await loadServerKey(dir);
const store = openStore(dir);
const log = new StructuredLogger({
  level: settings.log_level ?? "info",
  format: settings.log_format ?? "text",
});
const server = await BackboneServer.start({ key, store, settings, log });
process.stdout.write(`listening on ${server.hostname}:${server.port}\n`);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await server.close();
  store.close();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
