/** `backbone migrate`: copy the registry and every held message from one store to another. */
import { defineCommand } from "citty";
import { runningServerPid } from "../../server/pidfile.ts";
import { migrateStore } from "../../store/migrate.ts";
import { isRedisUrl, openStoreAt } from "../../store/open.ts";
import { RedisStore, redactUrl } from "../../store/redis/store.ts";
import type { Store } from "../../store/store.ts";
import { CliError, EXIT } from "../common.ts";

export const migrate = defineCommand({
  meta: {
    name: "migrate",
    description:
      "Copy clients, rooms, E2E keys and held messages between a data directory and Redis",
  },
  args: {
    from: {
      type: "string",
      required: true,
      description: "Source: a data directory or redis://HOST:PORT[/DB]",
      valueHint: "DIR|URL",
    },
    to: {
      type: "string",
      required: true,
      description: "Target (must be empty): a data directory or redis://HOST:PORT[/DB]",
      valueHint: "DIR|URL",
    },
  },
  async run({ args }) {
    if (args.from === args.to)
      throw new CliError("--from and --to name the same store", EXIT.USAGE);
    for (const spec of [args.from, args.to]) {
      const pid = isRedisUrl(spec) ? null : runningServerPid(spec);
      if (pid !== null) {
        throw new CliError(
          `a server (pid ${pid}) is running on ${spec}; stop it first`,
          EXIT.USAGE,
        );
      }
    }
    const from = await openStoreAt(args.from, { create: false });
    let to: Store | undefined;
    try {
      if (from instanceof RedisStore && (await from.serversConnected()) > 0) {
        throw new CliError(
          `a server is using ${redactUrl(args.from)}; stop every node first`,
          EXIT.USAGE,
        );
      }
      to = await openStoreAt(args.to);
      const done = await migrateStore(from, to);
      process.stdout.write(
        `copied ${count(done.clients, "client")} (${count(done.bundles, "E2E key bundle")}), ${count(done.rooms, "room")} and ${count(done.messages, "held message")} for ${count(done.recipients, "recipient")} from ${redactUrl(args.from)} to ${redactUrl(args.to)}\n`,
      );
      process.stdout.write(
        isRedisUrl(args.to)
          ? `the source is unchanged; start the server with --store ${redactUrl(args.to)} and its --data directory (which keeps its server key)\n`
          : `the source is unchanged; copy server.key and server.pub into ${args.to} from the servers' data directory, then start the server with --data ${args.to}\n`,
      );
      return EXIT.OK;
    } finally {
      from.close();
      to?.close();
    }
  },
});

/** "1 room", "2 rooms". */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
