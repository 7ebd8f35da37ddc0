/**
 * `backbone chat`: talk with one client. On a terminal: a prompt, messages printed
 * above it, presence changes, slash commands. Through pipes: every stdin line is sent,
 * every message received is printed as one line `NAME: TEXT`.
 */
import { createInterface } from "node:readline";
import { defineCommand } from "citty";
import type { Client } from "../../client/client.ts";
import type { IncomingMessage } from "../../client/types.ts";
import { UsageError } from "../../errors.ts";
import { escapeControls } from "../../text/escape.ts";
import { describeNotice } from "../chat/notices.ts";
import { terminalChat } from "../chat/terminal.ts";
import { CLIENT_ARGS, CliError, connectFromFlags, displayText, EXIT, note } from "../common.ts";
import { NameCache } from "../names.ts";
import { describeRoomNotice, isRoomAddress, roomPeer, roomPrefix } from "../rooms-ui.ts";
import { reportEnd, sessionEnd } from "../session.ts";
import { messageText } from "../tty/lines.ts";

export const chat = defineCommand({
  meta: {
    name: "chat",
    description: "Chat with one client (interactive on a terminal, line by line through pipes)",
  },
  args: {
    peer: {
      type: "positional",
      required: true,
      description: "ID or name of the client to talk to, or #NAME of a room",
      valueHint: "ID|NAME",
    },
    ...CLIENT_ARGS,
  },
  async run({ args }) {
    const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
    if (tty) return terminalChat(args);
    const client = await connectFromFlags(args, {
      waitSeconds: Number.POSITIVE_INFINITY,
      countdown: true,
      receive: "all",
    });
    // Stored messages come right after connecting: queue them from now on, not from
    // after the peer lookup's round trip (by then they would be gone).
    const incoming = client.messages();
    const names = new NameCache(client);
    const peer = await resolvePeer(client, args.peer, names);
    return piped(client, peer, names, incoming);
  },
});

interface Peer {
  id: string;
  name: string;
}

async function resolvePeer(client: Client, query: string, names: NameCache): Promise<Peer> {
  if (isRoomAddress(query))
    return roomPeer(client, query).catch(async (err) => {
      await client.close("unknown room");
      throw err;
    });
  const [entry] = await client.clientStatus([query]);
  if (!entry || !("id" in entry)) {
    await client.close("unknown peer");
    throw new CliError(`no client "${query}"`, EXIT.UNDELIVERABLE);
  }
  names.set(entry.id, entry.name);
  return { id: entry.id, name: entry.name };
}

/** Pipes: lines in, lines out; ends at end of input once the server has everything. */
async function piped(
  client: Client,
  peer: Peer,
  names: NameCache,
  incoming: AsyncIterable<IncomingMessage>,
): Promise<number> {
  // One message, one line: the name and the text with every control made visible.
  void (async () => {
    for await (const m of incoming)
      process.stdout.write(
        messageText(
          `${roomPrefix(m)}${escapeControls(await names.get(m.from))}: `,
          displayText(m.data),
        ),
      );
  })();
  client.on("notice", async (n) =>
    note(
      isRoomAddress(n.address)
        ? describeRoomNotice(n)
        : describeNotice(n, await names.get(n.address)),
    ),
  );
  let ending = false;
  const cutOff = Promise.withResolvers<number>();
  client.on("disconnect", ({ reason, willReconnect }) => {
    if (!ending && willReconnect) note(`connection lost (${reason}); reconnecting`);
  });
  // Revoked, or refused when reconnecting: say why, and exit as a one-shot would.
  void sessionEnd(client).then((end) => cutOff.resolve(reportEnd(end)));
  client.on("connect", () => note("reconnected"));
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  let refused = 0;
  const input = (async () => {
    for await (const line of lines) {
      lineNo++;
      if (line.length === 0 || ending) continue;
      try {
        client.send(peer.id, line);
      } catch (err) {
        // One line too long for the server is reported and skipped; the rest still go.
        if (!(err instanceof UsageError && err.code === "TOO_LARGE")) throw err;
        refused++;
        note(`backbone: line ${lineNo} not sent: ${err.message}`);
      }
    }
    return -1;
  })();
  const code = await Promise.race([input, cutOff.promise]);
  ending = true;
  if (code >= 0) {
    lines.close();
    return code;
  }
  if (client.connected) await client.ping().catch(() => {});
  await client.close("end of input");
  return refused > 0 ? EXIT.UNDELIVERABLE : EXIT.OK;
}
