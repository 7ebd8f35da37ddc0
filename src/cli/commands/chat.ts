/**
 * `backbone chat`: talk with one client. On a terminal: a prompt, messages printed
 * above it, presence changes, slash commands. Through pipes: every stdin line is sent,
 * every message received is printed as one line `NAME: TEXT`.
 */
import { createInterface } from "node:readline";
import { defineCommand } from "citty";
import type { Client } from "../../client/client.ts";
import type { IncomingMessage } from "../../client/types.ts";
import { escapeControls } from "../../text/escape.ts";
import { describeNotice } from "../chat/notices.ts";
import { terminalChat } from "../chat/terminal.ts";
import { CLIENT_ARGS, CliError, displayText, EXIT, note } from "../common.ts";
import { connectWithE2E, E2E_ARGS, E2E_SEND_ARGS, sendDirect } from "../e2e.ts";
import {
  checkRoomFlags,
  describeRoomEventE2E,
  describeRoomPresence,
  sendRoomLine,
  warnRoomOnce,
} from "../e2e-rooms.ts";
import { NameCache } from "../names.ts";
import { describeRoomNotice, isRoomAddress, roomPeer, roomPrefix } from "../rooms-ui.ts";
import { reportEnd, type SessionEnd, sessionEnd } from "../session.ts";
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
    ...E2E_ARGS,
    ...E2E_SEND_ARGS,
  },
  async run({ args }) {
    if (isRoomAddress(args.peer)) checkRoomFlags(args.peer, args);
    const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
    if (tty) return terminalChat(args);
    const { client, e2e } = await connectWithE2E(args, {
      waitSeconds: Number.POSITIVE_INFINITY,
      countdown: true,
      receive: "all",
    });
    // Revoked or refused from now on — also during the peer lookup — ends the chat.
    const ended = sessionEnd(client);
    // Stored messages come right after connecting: queue them from now on, not from
    // after the peer lookup's round trip (by then they would be gone).
    const incoming = client.messages();
    const names = new NameCache(client);
    const peer = await Promise.race([resolvePeer(client, args.peer, names), ended]);
    if (!("id" in peer)) return reportEnd(peer);
    // Lines go through the E2E layer (in order; see src/cli/e2e.ts), a room's encrypted
    // to each member (src/cli/e2e-rooms.ts); membership changes show the member's key.
    const sendLine: SendLine = (to, line) =>
      isRoomAddress(to.id)
        ? sendRoomLine(client, e2e, to.id, line, args)
        : sendDirect(client, e2e, to.id, line, to.name, args);
    client.on("room", async (e) => {
      for (const line of await describeRoomEventE2E(e2e, e, client.id)) note(`* ${line}`);
    });
    e2e?.on("roomMember", (p) => {
      for (const line of describeRoomPresence(p)) note(`* ${line}`);
    });
    if (isRoomAddress(peer.id)) await warnRoomOnce(e2e, peer.id, new Set(), note);
    return piped(client, peer, names, incoming, sendLine, ended);
  },
});

interface Peer {
  id: string;
  name: string;
}

/** Sends one line to a peer (through the E2E layer when there is one). */
type SendLine = (to: Peer, line: string) => Promise<unknown>;

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
  sendLine: SendLine,
  ended: Promise<SessionEnd>,
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
  client.on("notice", async (n) => {
    // An E2E room message that missed members: the layer re-sends it to them itself.
    if (n.status === "recipients") return;
    note(
      isRoomAddress(n.address)
        ? describeRoomNotice(n)
        : describeNotice(n, await names.get(n.address)),
    );
  });
  let ending = false;
  const cutOff = Promise.withResolvers<number>();
  client.on("disconnect", ({ reason, willReconnect }) => {
    if (!ending && willReconnect) note(`connection lost (${reason}); reconnecting`);
  });
  // Revoked, or refused when reconnecting: say why, and exit as a one-shot would.
  void ended.then((end) => cutOff.resolve(reportEnd(end)));
  client.on("connect", () => note("reconnected"));
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  let lastSend: Promise<unknown> = Promise.resolve();
  let refused = 0;
  // The exit code of the first line refused: 6 (too long, undeliverable), or 7/9 when the
  // E2E layer refused it (a verified key changed; --strict or --peer-key), as `send` exits.
  let refusedCode: number = EXIT.UNDELIVERABLE;
  const input = (async () => {
    for await (const line of lines) {
      lineNo++;
      if (line.length === 0 || ending) continue;
      const n = lineNo;
      // In order, one after the other (the E2E layer may wait for the peer's keys).
      lastSend = lastSend.then(() =>
        sendLine(peer, line).catch((err: Error) => {
          // A line the server or the E2E layer refuses (too long, say) is reported and
          // skipped; the rest still go.
          if (refused++ === 0 && err instanceof CliError && err.exitCode !== EXIT.FAILURE)
            refusedCode = err.exitCode;
          note(`backbone: line ${n} not sent: ${err.message}`);
        }),
      );
    }
    return -1;
  })();
  const code = await Promise.race([input, cutOff.promise]);
  ending = true;
  if (code >= 0) {
    lines.close();
    return code;
  }
  await lastSend;
  if (client.connected) await client.ping().catch(() => {});
  await client.close("end of input");
  return refused > 0 ? refusedCode : EXIT.OK;
}
