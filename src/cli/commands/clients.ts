/** `backbone clients`: the registry, read from the server's data directory. */
import { existsSync } from "node:fs";
import { defineCommand } from "citty";
import { checkDataDirPath, dataPaths, defaultDataDir } from "../../server/datadir.ts";
import { lastLease, liveNodes } from "../../server/nodes.ts";
import { SqliteStore } from "../../store/sqlite.ts";
import type { Store } from "../../store/store.ts";
import { escapeControls } from "../../text/escape.ts";
import { ago, CliError, EXIT, note, safeJson } from "../common.ts";
import { openToolStore, STORE_ARG, storeSpec } from "../store-option.ts";

export const clients = defineCommand({
  meta: {
    name: "clients",
    description: "List registered clients: id, name, key, online, last seen",
  },
  args: {
    data: { type: "string", description: "Server data directory", valueHint: "DIR" },
    ...STORE_ARG,
    json: { type: "boolean", description: "One JSON object per line" },
  },
  async run({ args }) {
    const dir = args.data ?? defaultDataDir();
    const spec = storeSpec(args.store, dir);
    if (!spec) {
      checkDataDirPath(dir);
      if (!existsSync(dataPaths(dir).db))
        throw new CliError(`no server data in ${dir}`, EXIT.USAGE);
    }
    const store: Store = spec ? await openToolStore(dir, spec) : new SqliteStore(dataPaths(dir).db);
    try {
      const list = await store.listClients();
      const now = Math.floor(Date.now() / 1000);
      // "Online" is only what a running server says: after a crash the store still holds
      // the flags of that moment, and the last renewal of its lease bounds "last seen".
      const running = (await liveNodes(store)).length > 0;
      if (!running) {
        const crashedAt = Math.floor((await lastLease(store)) / 1000);
        for (const c of list) {
          if (c.online && crashedAt > 0) c.lastSeen = Math.max(c.lastSeen ?? 0, crashedAt);
          c.online = false;
        }
        if (list.length > 0)
          note("backbone: no server is running: nobody is online; LAST SEEN as last recorded");
      }
      if (args.json) {
        for (const c of list) {
          const row = {
            id: c.id,
            name: c.name,
            fingerprint: c.fingerprint,
            online: c.online,
            last_seen: c.lastSeen,
            created: c.createdAt,
            revoked: c.revokedAt,
          };
          process.stdout.write(`${safeJson(row)}\n`);
        }
        return EXIT.OK;
      }
      if (list.length === 0) {
        process.stdout.write("no clients yet (add one with `backbone keygen --name NAME`)\n");
        return EXIT.OK;
      }
      const rows = list.map((c) => [
        c.id,
        escapeControls(c.name),
        c.fingerprint,
        c.revokedAt !== null ? "revoked" : c.online ? "online" : "offline",
        c.online ? "now" : c.lastSeen === null ? "never" : `${ago(now - c.lastSeen)} ago`,
      ]);
      const head = ["ID", "NAME", "KEY", "STATUS", "LAST SEEN"];
      const widths = head.map((h, i) =>
        Math.max(h.length, ...rows.map((r) => (r[i] as string).length)),
      );
      for (const r of [head, ...rows]) {
        process.stdout.write(
          `${r
            .map((v, i) => v.padEnd(widths[i] as number))
            .join("  ")
            .trimEnd()}\n`,
        );
      }
      return EXIT.OK;
    } finally {
      store.close();
    }
  },
});
