/** `backbone listen`: print every incoming message, one line each. */
import { defineCommand } from "citty";
import { CLIENT_ARGS, clock, connectFromFlags, displayText, EXIT, note } from "../common.ts";
import { NameCache } from "../names.ts";

export const listen = defineCommand({
  meta: {
    name: "listen",
    description: "Print every incoming message, one per line (--json for scripts)",
  },
  args: {
    ...CLIENT_ARGS,
    json: {
      type: "boolean",
      description: "One JSON object per line: from, name, time, kind, data",
    },
  },
  async run({ args }) {
    const client = await connectFromFlags(args, {
      waitSeconds: Number.POSITIVE_INFINITY,
      countdown: true,
      receive: "all",
    });
    const names = new NameCache(client);
    const decoder = new TextDecoder("utf-8", { fatal: true });
    client.on("disconnect", ({ reason, willReconnect }) => {
      if (willReconnect) note(`connection lost (${reason}); reconnecting…`);
    });
    client.on("connect", () => note("connected"));
    // Ended by the server for good (revoked, replaced): say why, with chat's exit codes.
    let ended: string | undefined;
    client.on("disconnect", ({ reason, willReconnect }) => {
      if (!willReconnect && reason !== "closed by this client") {
        ended = reason;
        note(`connection lost (${reason})`);
      }
    });
    const stop = () => void client.close("listener stopped");
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    for await (const m of client.messages()) {
      const name = await names.get(m.from);
      const time = m.queuedAt ?? m.receivedAt;
      if (args.json) {
        let data: string;
        let encoding: string | undefined;
        try {
          data = decoder.decode(m.data);
        } catch {
          data = Buffer.from(m.data).toString("base64");
          encoding = "base64";
        }
        const row = {
          from: m.from,
          name,
          time: time.toISOString(),
          kind: m.kind,
          data,
          ...(encoding ? { encoding } : {}),
        };
        process.stdout.write(`${JSON.stringify(row)}\n`);
      } else {
        const tag =
          m.kind === "stored"
            ? " (while you were away)"
            : m.kind === "broadcast"
              ? " (to all)"
              : "";
        process.stdout.write(`[${clock(time)}] ${name}${tag}: ${displayText(m.data)}\n`);
      }
    }
    if (ended === undefined) return EXIT.OK;
    return ended === "revoked" ? EXIT.AUTH : EXIT.UNREACHABLE;
  },
});
