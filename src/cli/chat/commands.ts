/**
 * The commands of `backbone chat` on a terminal (`/to`, `/join`, `/leave`, `/who`,
 * `/status`, `/help`, `/quit`): a line typed by hand that starts with `/` (and not
 * `//`). Each has taken effect before the next line is handled (terminal.ts).
 */
import type { Client } from "../../client/client.ts";
import type { E2EManager } from "../../e2e/session-manager.ts";
import { ago } from "../common.ts";
import { roomKeyTags } from "../e2e-rooms.ts";
import { isRoomAddress, leaveRoom, roomPeer, roomWho } from "../rooms-ui.ts";

export const HELP = [
  "/to ID|NAME     talk to someone else (or to a room: /to #NAME)",
  "/who            who you are and whether your peer is online (in a room: its members)",
  "/join #NAME     join a room (public, or one you are invited to) and talk there",
  "/leave [#NAME]  leave a room (default: the one you talk to)",
  "/status         the server's status",
  "/help           this list",
  "/quit           leave (Ctrl-D on an empty line, Ctrl-C too)",
  "//text          send a line that starts with / (as /text)",
  "keys: Enter sends; a paste is one message (never commands), sent with Enter;",
  "  Ctrl-C clears the line; ←/→ Home/End Ctrl-A/E move; Ctrl-W/U/K delete;",
  "  ↑/↓ recall earlier lines; Ctrl-L redraws",
];

/** Whom the chat talks to: a client, or a room (`id` `#name`). */
export interface Peer {
  id: string;
  name: string;
}

/** What the commands need of the chat. */
export interface ChatControl {
  readonly client: Client;
  /** The E2E layer (null with --no-e2e). */
  readonly e2e: E2EManager | null;
  readonly peer: Peer;
  /** Talk to `peer` from now on (its presence unknown until checked). */
  switchTo(peer: Peer): void;
  checkPresence(): Promise<void>;
  say(text: string): void;
  /** Leaves the chat as `/quit` does. */
  quit(): Promise<void>;
}

/** Runs the command line `text` (`/cmd args`); failures throw (shown as `* reason`). */
export async function runCommand(chat: ChatControl, text: string): Promise<void> {
  const [cmd = "", ...rest] = text.slice(1).trim().split(/\s+/);
  const arg = rest.join(" ");
  const client = chat.client;
  switch (cmd) {
    case "help":
      for (const line of HELP) chat.say(line);
      return;
    case "quit":
      return chat.quit();
    case "who":
      return who(chat);
    case "status": {
      const s = await client.serverStatus();
      return chat.say(
        `server ${client.server}: ${s.clients_online} of ${s.clients_registered} clients online, up ${ago(s.uptime)}, ${s.messages_routed} messages routed, ${s.messages_queued} queued`,
      );
    }
    case "join": {
      if (!arg) return chat.say("usage: /join #NAME");
      chat.switchTo(await roomPeer(client, arg.startsWith("#") ? arg : `#${arg}`));
      return chat.say(`* now talking in ${chat.peer.name}`);
    }
    case "leave": {
      const room = arg || (isRoomAddress(chat.peer.id) ? chat.peer.id : "");
      if (!room) return chat.say("usage: /leave #NAME");
      return chat.say(`* ${await leaveRoom(client, room)}`);
    }
    case "to": {
      if (!arg) return chat.say("usage: /to ID|NAME");
      if (isRoomAddress(arg)) return runCommand(chat, `/join ${arg}`);
      const [e] = await client.clientStatus([arg]);
      if (!e || !("id" in e)) return chat.say(`no client "${arg}"`);
      chat.switchTo({ id: e.id, name: e.name });
      chat.say(`* now talking to ${e.name}`);
      void chat.checkPresence();
      return;
    }
    default:
      chat.say(
        `unknown command /${cmd} (try /help; to send a line that starts with /, begin it with //)`,
      );
  }
}

/** `/who`: who you are, and your peer's presence (in a room: its members and their keys). */
async function who(chat: ChatControl): Promise<void> {
  const { client, peer } = chat;
  chat.say(`you are ${client.name} (${client.id})`);
  if (isRoomAddress(peer.id)) {
    const keys = chat.e2e ? await roomKeyTags(chat.e2e, peer.id) : undefined;
    for (const line of await roomWho(client, peer.id, keys)) chat.say(line);
    return;
  }
  const [e] = await client.clientStatus([peer.id]);
  if (!e || !("id" in e)) return chat.say(`${peer.name} is no longer registered`);
  const seen = e.online
    ? "online"
    : e.last_seen
      ? `offline, last seen ${ago(Date.now() / 1000 - e.last_seen)} ago`
      : "offline, never seen";
  return chat.say(`talking to ${e.name} (${e.id}): ${seen}`);
}
