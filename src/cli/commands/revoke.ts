/**
 * `backbone revoke`: revoke a client. When it returns, a running server has stopped
 * every session of that client and dropped what it had queued (the server confirms
 * in its lease, server/nodes.ts) — or it says that no server is running.
 */
import { defineCommand } from "citty";
import { defaultDataDir } from "../../server/datadir.ts";
import { awaitRevocation } from "../../server/nodes.ts";
import { escapeControls } from "../../text/escape.ts";
import { CliError, EXIT } from "../common.ts";
import { openToolStore, STORE_ARG, storeSpec } from "../store-option.ts";

/** How long to wait for a running server to confirm (it checks every 250 ms). */
const CONFIRM_MS = 10_000;

export const revoke = defineCommand({
  meta: {
    name: "revoke",
    description: "Revoke a client (a running server disconnects it at once)",
  },
  args: {
    client: {
      type: "positional",
      required: true,
      description: "Client ID or name",
      valueHint: "ID|NAME",
    },
    data: { type: "string", description: "Server data directory", valueHint: "DIR" },
    ...STORE_ARG,
  },
  async run({ args }) {
    const dir = args.data ?? defaultDataDir();
    const store = await openToolStore(dir, storeSpec(args.store, dir));
    try {
      const record = await store.findClient(args.client);
      if (!record) throw new CliError(`no client "${args.client}"`, EXIT.USAGE);
      if (record.revokedAt !== null) {
        process.stdout.write(
          `client "${escapeControls(record.name)}" (${record.id}) was already revoked\n`,
        );
        return EXIT.OK;
      }
      await store.revokeClient(record.id, Math.floor(Date.now() / 1000));
      const serial = await store.revocationSerial();
      let servers: number;
      try {
        servers = await awaitRevocation(store, serial, CONFIRM_MS);
      } catch {
        throw new CliError(
          `revoked client "${escapeControls(record.name)}" (${record.id}) in the registry, but the running server did not confirm within ${CONFIRM_MS / 1000} s; check its log`,
          EXIT.FAILURE,
        );
      }
      const cut =
        servers > 0
          ? "the running server has stopped its sessions"
          : "no server is running (it will be refused at the next start)";
      process.stdout.write(
        `revoked client "${escapeControls(record.name)}" (${record.id}); ${cut}\n`,
      );
      return EXIT.OK;
    } finally {
      store.close();
    }
  },
});
