/**
 * `backbone chat`: talk with one client. On a terminal: a prompt, messages printed
 * above it, presence changes, slash commands. Through pipes: every stdin line is sent,
 * every message received is printed as one line `NAME: TEXT`.
 */
import { createInterface } from "node:readline";
import { defineCommand } from "citty";
import type { Client } from "../../client/client.ts";
import type { IncomingMessage, Notice } from "../../client/types.ts";
import {
  ago,
  CLIENT_ARGS,
  CliError,
  clock,
  connectFromFlags,
  countdown,
  displayText,
  EXIT,
  note,
} from "../common.ts";
import { NameCache } from "../names.ts";

/** How often the peer's presence is checked (CLIENT_STATUS) on a terminal. */
const PRESENCE_EVERY_MS = 2000;

const HELP = [
  "/to ID|NAME   talk to someone else",
  "/who          who you are and whether your peer is online",
  "/status       the server's status",
  "/help         this list",
  "/quit         leave (Ctrl-D and Ctrl-C too)",
];

export const chat = defineCommand({
  meta: {
    name: "chat",
    description: "Chat with one client (interactive on a terminal, line by line through pipes)",
  },
  args: {
    peer: {
      type: "positional",
      required: true,
      description: "ID or name of the client to talk to",
      valueHint: "ID|NAME",
    },
    ...CLIENT_ARGS,
  },
  async run({ args }) {
    const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
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
    return tty ? interactive(client, peer, names, incoming) : piped(client, peer, names, incoming);
  },
});

interface Peer {
  id: string;
  name: string;
}

async function resolvePeer(client: Client, query: string, names: NameCache): Promise<Peer> {
  const [entry] = await client.clientStatus([query]);
  if (!entry || !("id" in entry)) {
    await client.close("unknown peer");
    throw new CliError(`no client "${query}"`, EXIT.UNDELIVERABLE);
  }
  names.set(entry.id, entry.name);
  return { id: entry.id, name: entry.name };
}

function describeNotice(n: Notice, name: string): string {
  switch (n.status) {
    case "queued":
      return `${name} is offline: your message is stored and will be delivered when they log in`;
    case "unknown":
      return `${name} does not exist (any more): message not delivered`;
    default:
      return `message to ${name} not delivered (${n.status}): ${n.reason}`;
  }
}

/** Exit code when the server ends the session for good. */
function finalCode(reason: string): number {
  return reason === "revoked" || reason === "authentication failed" ? EXIT.AUTH : EXIT.UNREACHABLE;
}

/** Pipes: lines in, lines out; ends at end of input once the server has everything. */
async function piped(
  client: Client,
  peer: Peer,
  names: NameCache,
  incoming: AsyncIterable<IncomingMessage>,
): Promise<number> {
  void (async () => {
    for await (const m of incoming)
      process.stdout.write(`${await names.get(m.from)}: ${displayText(m.data)}\n`);
  })();
  client.on("notice", async (n) => note(describeNotice(n, await names.get(n.address))));
  let ending = false;
  const cutOff = Promise.withResolvers<number>();
  client.on("disconnect", ({ reason, willReconnect }) => {
    if (ending) return;
    note(`connection lost (${reason})${willReconnect ? "; reconnecting" : ""}`);
    if (!willReconnect) cutOff.resolve(finalCode(reason));
  });
  client.on("connect", () => note("reconnected"));
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  const input = (async () => {
    for await (const line of lines) {
      if (line.length > 0 && !ending) client.send(peer.id, line);
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
  return EXIT.OK;
}

/** A terminal: prompt line, messages above it. */
async function interactive(
  client: Client,
  first: Peer,
  names: NameCache,
  incoming: AsyncIterable<IncomingMessage>,
): Promise<number> {
  let peer = first;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  const setPrompt = () => rl.setPrompt(`${peer.name}> `);
  /** Prints a line above the prompt, keeping what the user is typing. */
  const say = (text: string) => {
    process.stdout.write(`\r\x1b[K${text}\n`);
    rl.prompt(true);
  };
  const done = Promise.withResolvers<number>();
  let ending = false;
  const quit = async (reason: string) => {
    if (ending) return;
    ending = true;
    clearInterval(presenceTimer);
    rl.close();
    await client.close(reason);
    done.resolve(EXIT.OK);
  };

  let online: boolean | null = null;
  const checkPresence = async () => {
    if (!client.connected) return;
    try {
      const [e] = await client.clientStatus([peer.id]);
      const now = Boolean(e && "online" in e && e.online);
      if (online === null && !now)
        say(`* ${peer.name} is offline: what you send is stored for them`);
      if (online !== null && now !== online)
        say(`* ${peer.name} is ${now ? "now online" : "offline"}`);
      online = now;
    } catch {
      // asked again on the next tick
    }
  };
  const presenceTimer = setInterval(checkPresence, PRESENCE_EVERY_MS);

  void (async () => {
    for await (const m of incoming) {
      const name = await names.get(m.from);
      const tag =
        m.kind === "stored" ? " (while you were away)" : m.kind === "broadcast" ? " (to all)" : "";
      say(`[${clock(m.queuedAt ?? m.receivedAt)}] ${name}${tag}: ${displayText(m.data)}`);
    }
  })();
  client.on("notice", async (n) => say(`* ${describeNotice(n, await names.get(n.address))}`));
  client.on("disconnect", ({ reason, willReconnect }) => {
    if (ending) return;
    say(`* connection lost (${reason})${willReconnect ? "; reconnecting…" : ""}`);
    if (!willReconnect) {
      ending = true;
      clearInterval(presenceTimer);
      rl.close();
      done.resolve(finalCode(reason));
    }
  });
  client.on("reconnecting", ({ delayMs, error }) =>
    countdown(`* ${error?.message ?? "reconnecting"}`, delayMs),
  );
  client.on("connect", () => say("* reconnected"));

  const commands: Record<string, (arg: string) => Promise<void> | void> = {
    help: () => {
      for (const line of HELP) say(line);
    },
    quit: () => quit("bye"),
    who: async () => {
      say(`you are ${client.name} (${client.id})`);
      const [e] = await client.clientStatus([peer.id]);
      if (!e || !("id" in e)) return say(`${peer.name} is no longer registered`);
      const seen = e.online
        ? "online"
        : e.last_seen
          ? `offline, last seen ${ago(Date.now() / 1000 - e.last_seen)} ago`
          : "offline, never seen";
      say(`talking to ${e.name} (${e.id}): ${seen}`);
    },
    status: async () => {
      const s = await client.serverStatus();
      say(
        `server ${client.server}: ${s.clients_online} of ${s.clients_registered} clients online, up ${ago(s.uptime)}, ${s.messages_routed} messages routed, ${s.messages_queued} queued`,
      );
    },
    to: async (arg) => {
      if (!arg) return say("usage: /to ID|NAME");
      const [e] = await client.clientStatus([arg]);
      if (!e || !("id" in e)) return say(`no client "${arg}"`);
      peer = { id: e.id, name: e.name };
      names.set(e.id, e.name);
      online = null;
      setPrompt();
      say(`* now talking to ${peer.name}`);
      void checkPresence();
    },
  };

  rl.on("line", async (line) => {
    const text = line.trim();
    if (text.startsWith("/")) {
      const [cmd = "", ...rest] = text.slice(1).split(/\s+/);
      const run = commands[cmd];
      if (!run) say(`unknown command /${cmd} (try /help)`);
      else
        await Promise.resolve(run(rest.join(" "))).catch((err: Error) => say(`* ${err.message}`));
    } else if (text.length > 0) {
      try {
        client.send(peer.id, line);
      } catch (err) {
        say(`* not sent: ${(err as Error).message}`);
      }
    }
    rl.prompt();
  });
  rl.on("SIGINT", () => void quit("bye"));
  rl.on("close", () => void quit("bye"));
  client.on("close", () => done.resolve(EXIT.OK));

  say(
    `connected to ${client.server} as ${client.name}; talking to ${peer.name} (/help for commands)`,
  );
  setPrompt();
  rl.prompt();
  void checkPresence();
  return done.promise;
}
