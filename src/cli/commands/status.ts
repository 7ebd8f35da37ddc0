/** `backbone status`: the server's status, asked over the protocol. */
import { defineCommand } from "citty";
import { ago, CLIENT_ARGS, connectFromFlags, EXIT } from "../common.ts";

export const status = defineCommand({
  meta: { name: "status", description: "Show the server's status" },
  args: {
    ...CLIENT_ARGS,
    json: { type: "boolean", description: "Print the raw JSON" },
  },
  async run({ args }) {
    const client = await connectFromFlags(args, { waitSeconds: 0, receive: "none" });
    try {
      const s = await client.serverStatus();
      if (args.json) {
        process.stdout.write(`${JSON.stringify(s)}\n`);
        return EXIT.OK;
      }
      const rows: [string, unknown][] = [
        ["server", `${client.server} (${s.protocol}, backbone ${s.version})`],
        ["server key", s.server_key],
        ["uptime", ago(Number(s.uptime))],
        ["clients online", `${s.clients_online} of ${s.clients_registered} registered`],
        ["messages routed", s.messages_routed],
        [
          "messages queued",
          `${s.messages_queued} held for offline clients (${s.messages_stored} stored since start)`,
        ],
        ["messages discarded", s.messages_discarded],
        ["connections", `${s.connections} since start`],
      ];
      for (const [k, v] of rows) process.stdout.write(`${`${k}:`.padEnd(20)}${String(v)}\n`);
      return EXIT.OK;
    } finally {
      await client.close("done");
    }
  },
});
