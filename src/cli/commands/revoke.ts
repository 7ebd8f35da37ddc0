/** `backbone revoke`: revoke a client; a running server cuts it off at once. */
import { defineCommand } from "citty";
import { defaultDataDir, openStore } from "../../server/datadir.ts";
import { escapeControls } from "../../text/escape.ts";
import { CliError, EXIT } from "../common.ts";

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
  },
  async run({ args }) {
    const store = openStore(args.data ?? defaultDataDir());
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
      process.stdout.write(`revoked client "${escapeControls(record.name)}" (${record.id})\n`);
      return EXIT.OK;
    } finally {
      store.close();
    }
  },
});
