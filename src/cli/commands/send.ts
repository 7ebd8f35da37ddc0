/** `backbone send`: send one message and exit once the server has taken it. */
import { defineCommand } from "citty";
import type { Notice } from "../../client/types.ts";
import { CLIENT_ARGS, CliError, connectFromFlags, EXIT, note } from "../common.ts";

export const send = defineCommand({
  meta: {
    name: "send",
    description: "Send one message (from the arguments, or stdin) and exit when the server has it",
  },
  args: {
    to: {
      type: "positional",
      required: true,
      description: "Recipient ID or name",
      valueHint: "ID|NAME",
    },
    message: {
      type: "positional",
      required: false,
      description: "The message (default: all of stdin)",
      valueHint: "MESSAGE…",
    },
    ...CLIENT_ARGS,
    wait: {
      type: "string",
      description: "Seconds to keep trying an unreachable server (default 10)",
      valueHint: "SECONDS",
    },
  },
  async run({ args }) {
    const words = args._.slice(1);
    const text = words.length > 0 ? words.join(" ") : await readStdin();
    const wait = args.wait === undefined ? 10 : Number(args.wait);
    if (!Number.isFinite(wait) || wait < 0)
      throw new CliError("--wait must be a number of seconds", EXIT.USAGE);
    const client = await connectFromFlags(args, { waitSeconds: wait, receive: "none" });
    try {
      const to = await client.resolve(args.to).catch(() => {
        throw new CliError(`no client "${args.to}"`, EXIT.UNDELIVERABLE);
      });
      const notices: Notice[] = [];
      client.on("notice", (n) => notices.push(n));
      client.send(to, text);
      await client.ping(); // the server has handled the message once this returns
      const notice = notices.find((n) => n.address === to);
      if (!notice) return EXIT.OK;
      if (notice.status === "queued") {
        note(`${args.to} is offline: stored for delivery at its next login`);
        return EXIT.OK;
      }
      throw new CliError(`not delivered (${notice.status}): ${notice.reason}`, EXIT.UNDELIVERABLE);
    } finally {
      await client.close("done");
    }
  },
});

async function readStdin(): Promise<Uint8Array> {
  if (process.stdin.isTTY)
    throw new CliError("no message: give it as arguments or on stdin", EXIT.USAGE);
  const data = new Uint8Array(await Bun.stdin.arrayBuffer());
  // One trailing newline is the shell's, not the message's.
  return data.at(-1) === 0x0a ? data.subarray(0, data.length - 1) : data;
}
