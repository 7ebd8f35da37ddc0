/** `backbone send`: send one message and exit once the server has taken it. */
import { defineCommand } from "citty";
import type { Notice } from "../../client/types.ts";
import { UsageError } from "../../errors.ts";
import { CLIENT_ARGS, CliError, EXIT, note } from "../common.ts";
import { connectWithE2E, E2E_ARGS, E2E_SEND_ARGS, sendDirect } from "../e2e.ts";
import { checkRoomFlags, sendRoomLine } from "../e2e-rooms.ts";
import { isRoomAddress, sendToRoom } from "../rooms-ui.ts";

export const send = defineCommand({
  meta: {
    name: "send",
    description: "Send one message (from the arguments, or stdin) and exit when the server has it",
  },
  args: {
    to: {
      type: "positional",
      required: true,
      description: "Recipient ID or name, or #NAME of a room",
      valueHint: "ID|NAME",
    },
    message: {
      type: "positional",
      required: false,
      description: "The message (default: all of stdin)",
      valueHint: "MESSAGE…",
    },
    ...CLIENT_ARGS,
    ...E2E_ARGS,
    ...E2E_SEND_ARGS,
    wait: {
      type: "string",
      description: "Seconds to keep trying an unreachable server (default 10)",
      valueHint: "SECONDS",
    },
  },
  async run({ args }) {
    const words = args._.slice(1);
    const text = words.length > 0 ? words.join(" ") : await readStdin();
    if (text.length === 0)
      throw new CliError("empty message: nothing to send (give text or pipe some in)", EXIT.USAGE);
    const wait = args.wait === undefined ? 10 : Number(args.wait);
    if (!Number.isFinite(wait) || wait < 0)
      throw new CliError("--wait must be a number of seconds", EXIT.USAGE);
    // On a terminal the wait for an unreachable server counts down, rather than
    // leaving the user with --wait silent seconds.
    const { client, e2e } = await connectWithE2E(args, {
      waitSeconds: wait,
      countdown: Boolean(process.stderr.isTTY),
      receive: "none",
    });
    try {
      if (isRoomAddress(args.to)) {
        // End-to-end encrypted to each member (docs/E2E.md § Rooms) unless --no-e2e.
        checkRoomFlags(args.to, args);
        const code = await sendToRoom(client, args.to, text, {
          send: (room, data) => sendRoomLine(client, e2e, room, data, args),
          ...(e2e ? { settle: () => e2e.idle() } : {}),
        });
        await e2e?.keysSynced; // a first run publishes this client's keys
        return code;
      }
      const to = await client.resolve(args.to).catch(() => {
        throw new CliError(`no client "${args.to}"`, EXIT.UNDELIVERABLE);
      });
      const notices: Notice[] = [];
      client.on("notice", (n) => notices.push(n));
      try {
        await sendDirect(client, e2e, to, text, args.to, args);
      } catch (err) {
        // Over the server's size limit: the server would refuse it (exit 6, as a NOTICE
        // too_large would), not a mistake in how the command was called.
        if (err instanceof UsageError && err.code === "TOO_LARGE")
          throw new CliError(`not sent: ${err.message}`, EXIT.UNDELIVERABLE);
        throw err;
      }
      await client.ping(); // the server has handled the message once this returns
      await e2e?.keysSynced; // a first run publishes this client's keys
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
