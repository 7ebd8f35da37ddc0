/**
 * `backbone chat` on a terminal: the input line at the bottom (../tty/editor.ts), a
 * status line above it while the server is out of reach, and above both every message
 * and note as a block whose continuation rows are indented — nothing a peer or the
 * server sends can pass for another line, or drive the terminal.
 *
 * Lines are handled one at a time, in the order entered: a command typed by hand has
 * taken effect before the next line is sent (`/to carol`, then a line: it goes to
 * carol). A bracketed paste is one message, never a command. Typed lines wait while
 * the server is unreachable and go out once it is back.
 */
import { type Client, connect } from "../../client/client.ts";
import type { loadIdentity } from "../../client/identity.ts";
import type { IncomingMessage } from "../../client/types.ts";
import type { E2EManager } from "../../e2e/session-manager.ts";
import { escapeBytes, escapeControls } from "../../text/escape.ts";
import { ago, CliError, clock, EXIT, loadIdentityFromFlags } from "../common.ts";
import { attachE2E, type E2EFlags, openE2E, sendDirect } from "../e2e.ts";
import { describeRoomEventE2E, roomKeyTags, sendRoomLine, warnRoomOnce } from "../e2e-rooms.ts";
import { NameCache } from "../names.ts";
import {
  describeRoomNotice,
  isRoomAddress,
  leaveRoom,
  roomPeer,
  roomPrefix,
  roomWho,
} from "../rooms-ui.ts";
import { describeEnd, reportEnd } from "../session.ts";
import { LineEditor } from "../tty/editor.ts";
import { width, wrapBlock } from "../tty/layout.ts";
import { describeNotice } from "./notices.ts";

/** How often the peer's presence is checked (CLIENT_STATUS). */
const PRESENCE_EVERY_MS = 2000;

/** How long leaving waits for a command still in flight (its lines after it then count as unsent). */
const LEAVE_WAIT_MS = 3000;

/** Width of "[12:00:00] ": continuation rows of a message start under the sender. */
const MESSAGE_INDENT = 11;

export const HELP = [
  "/to ID|NAME   talk to someone else (or to a room: /to #NAME)",
  "/who          who you are and whether your peer is online (in a room: its members)",
  "/join #NAME   join a room (public, or one you are invited to) and talk there",
  "/leave [#NAME] leave a room (default: the one you talk to)",
  "/status       the server's status",
  "/help         this list",
  "/quit         leave (Ctrl-D on an empty line, Ctrl-C too)",
  "//text        send a line that starts with / (as /text)",
  "keys: Enter sends; a paste is one message (never commands), sent with Enter;",
  "  Ctrl-C clears the line; ←/→ Home/End Ctrl-A/E move; Ctrl-W/U/K delete;",
  "  ↑/↓ recall earlier lines; Ctrl-L redraws",
];

interface Peer {
  id: string;
  name: string;
}

export interface ChatArgs extends E2EFlags {
  peer: string;
  "peer-key"?: string | undefined;
  strict?: boolean | undefined;
}

/** Runs the chat until the user leaves or the server ends the session; returns the exit code. */
export async function terminalChat(args: ChatArgs): Promise<number> {
  const identity = await loadIdentityFromFlags(args);
  const server = args.server ?? identity.server;
  const chat = new TerminalChat(args, server);
  try {
    return await chat.run(identity);
  } finally {
    try {
      chat.editor.stop(); // on a terminal that is gone this write fails: nothing to restore
    } catch {}
    chat.closeE2E();
  }
}

class TerminalChat {
  readonly editor: LineEditor;
  readonly #server: string;
  readonly #query: string;
  readonly #done = Promise.withResolvers<number>();
  #client: Client | null = null;
  #names: NameCache | null = null;
  #peer: Peer;
  /** Resolves once connected and the peer is known: lines wait for it. */
  readonly #ready = Promise.withResolvers<void>();
  #isReady = false;
  /** Lines entered, handled one after the other. */
  #chain: Promise<void> = Promise.resolve();
  #waiting = 0;
  /** Leaving has begun (set at once, so a second Ctrl-C does not start it again). */
  #quitting = false;
  /** Past the point where lines are still handled. */
  #leaving = false;
  #online: boolean | null = null;
  #countdown: ReturnType<typeof setInterval> | null = null;
  #heldNoteShown = false;
  readonly #flags: ChatArgs;
  /** Rooms whose trust warning (unverified or keyless members) was shown. */
  readonly #roomsNoted = new Set<string>();
  /** The E2E layer (null with --no-e2e). */
  #e2e: E2EManager | null = null;

  constructor(flags: ChatArgs, server: string) {
    const query = flags.peer;
    this.#flags = flags;
    this.#query = query;
    this.#server = server;
    this.#peer = { id: "", name: escapeControls(query) };
    this.editor = new LineEditor(process.stdin, process.stdout, {
      line: (text, pasted) => this.#enter(text, pasted),
      interrupt: () => void this.#leave(false),
      eof: () => void this.#leave(false),
    });
  }

  async run(identity: Awaited<ReturnType<typeof loadIdentity>>): Promise<number> {
    const editor = this.editor;
    editor.setPrompt(`${this.#peer.name}> `);
    editor.start();
    for (const sig of ["SIGINT", "SIGTERM"] as const)
      process.on(sig, () => void this.#leave(false));
    // The terminal went away (window closed, SSH dropped): leave at once, writing nothing
    // more to it — a session left behind would take the client's messages.
    const gone = () => void this.#leave(false, true);
    process.on("SIGHUP", gone);
    process.stdin.once("end", gone);
    process.stdin.on("error", gone);
    process.stdout.on("error", gone);
    // The E2E state is opened before connecting: stored messages are decrypted on arrival.
    this.#e2e = openE2E(identity, this.#flags, (line) => this.#say(line));
    editor.setStatus(`connecting to ${escapeControls(this.#server)}…`);
    const connecting = connect({
      identity,
      server: this.#server,
      waitForServer: Number.POSITIVE_INFINITY,
      onRetry: ({ delayMs, error }) => this.#showCountdown(error.message, delayMs),
      ...(this.#e2e ? { incoming: this.#e2e.incoming } : {}),
    });
    connecting.catch(() => {}); // when the user left first, nobody waits for it
    const client = await Promise.race([connecting, this.#done.promise.then(() => null)]);
    if (!client) return this.#done.promise;
    this.#client = client;
    if (this.#e2e) attachE2E(client, this.#e2e, (line) => this.#say(line));
    this.#stopCountdown();
    editor.setStatus("");
    // Stored messages come right after connecting: queue them from now on.
    const incoming = client.messages();
    const names = new NameCache(client);
    this.#names = names;
    const peer = await this.#resolve(client).catch(async (err) => {
      if (this.#quitting) return null; // the user left meanwhile
      await client.close("unknown peer");
      throw err;
    });
    if (this.#quitting || !peer) return this.#done.promise;
    this.#setPeer(peer);
    this.#watch(client, incoming);
    this.#say(
      `connected to ${client.server} as ${client.name}; talking to ${peer.name} (/help for commands)`,
    );
    this.#isReady = true;
    this.#ready.resolve();
    void this.#checkPresence();
    const presence = setInterval(() => void this.#checkPresence(), PRESENCE_EVERY_MS);
    try {
      return await this.#done.promise;
    } finally {
      clearInterval(presence);
    }
  }

  /** The peer asked for: a client by ID or name, or a room (`#ops`, joined on the way). */
  async #resolve(client: Client): Promise<Peer> {
    if (isRoomAddress(this.#query)) return roomPeer(client, this.#query);
    const [entry] = await client.clientStatus([this.#query]);
    if (!entry || !("id" in entry))
      throw new CliError(`no client "${this.#query}"`, EXIT.UNDELIVERABLE);
    return { id: entry.id, name: entry.name };
  }

  /** Closes the E2E layer when the chat ends before it was handed to a client. */
  closeE2E(): void {
    if (!this.#client) this.#e2e?.close();
  }

  #setPeer(p: Peer): void {
    this.#peer = p;
    // Members not verified or without keys: said once per room (src/cli/e2e-rooms.ts).
    if (isRoomAddress(p.id))
      void warnRoomOnce(this.#e2e, p.id, this.#roomsNoted, (line) => this.#say(`* ${line}`));
    this.#names?.set(p.id, p.name);
    this.editor.setPrompt(`${escapeControls(p.name)}> `);
  }

  #watch(client: Client, incoming: AsyncIterable<IncomingMessage>): void {
    void (async () => {
      for await (const m of incoming)
        this.#showMessage(m, await (this.#names as NameCache).get(m.from));
    })();
    client.on("notice", async (n) => {
      // An E2E room message that missed members: the layer re-sends it to them itself.
      if (n.status === "recipients") return;
      this.#say(
        `* ${isRoomAddress(n.address) ? describeRoomNotice(n) : describeNotice(n, await (this.#names as NameCache).get(n.address))}`,
      );
    });
    client.on("room", async (e) => {
      for (const line of await describeRoomEventE2E(this.#e2e, e, client.id))
        this.#say(`* ${line}`);
    });
    client.on("disconnect", ({ reason, willReconnect }) => {
      if (this.#leaving || !willReconnect) return;
      this.#heldNoteShown = false;
      this.#say(`* connection lost (${reason}); reconnecting`);
    });
    client.on("reconnecting", ({ delayMs, error }) =>
      this.#showCountdown(error?.message ?? "reconnecting", delayMs),
    );
    client.on("connect", () => {
      this.#stopCountdown();
      this.editor.setStatus("");
      this.#say("* reconnected");
    });
    client.on("close", ({ error }) => {
      if (!error || this.#quitting) return;
      // Revoked, refused on a reconnect, the server's key changed: say why, exit.
      this.#quitting = true;
      this.#leaving = true;
      this.#stopCountdown();
      this.editor.stop();
      this.#done.resolve(reportEnd(describeEnd(error)));
    });
  }

  // ---- output ---------------------------------------------------------------------

  /** A note: one block, escaped, wrapped with its continuation rows indented. */
  #say(text: string): void {
    this.editor.print(wrapBlock("", [escapeControls(text)], 2, this.editor.columns));
  }

  #showMessage(m: IncomingMessage, name: string): void {
    const tag =
      (m.stored ? " (while you were away)" : m.kind === "broadcast" ? " (to all)" : "") +
      // A plaintext message is shown as such, never as encrypted (rooms too).
      (this.#e2e && m.e2e === false ? " (not end-to-end encrypted)" : "");
    const head = `[${clock(m.queuedAt ?? m.receivedAt)}] ${roomPrefix(m)}${escapeControls(name)}${tag}: `;
    const lines = escapeBytes(m.data, { multiline: true }).split("\n");
    this.editor.print(wrapBlock(head, lines, MESSAGE_INDENT, this.editor.columns));
  }

  /** The line as entered, under the prompt it was sent with. */
  #record(text: string): void {
    const prompt = `${escapeControls(this.#peer.name)}> `;
    const lines = escapeControls(text, { multiline: true }).split("\n");
    this.editor.print(wrapBlock(prompt, lines, width(prompt), this.editor.columns));
  }

  #showCountdown(why: string, delayMs: number): void {
    this.#stopCountdown();
    const end = Date.now() + delayMs;
    const show = () => {
      const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      // The countdown first: on a narrow screen the reason is what gets cut.
      this.editor.setStatus(`* retrying in ${left} s: ${escapeControls(why)}`);
    };
    show();
    this.#countdown = setInterval(show, 1000);
  }

  #stopCountdown(): void {
    if (this.#countdown) clearInterval(this.#countdown);
    this.#countdown = null;
  }

  // ---- input ----------------------------------------------------------------------

  #enter(text: string, pasted: boolean): void {
    if (!text.trim() || this.#quitting) return; // empty lines are not messages
    const held = !this.#isReady;
    if (held) {
      this.#record(text);
      this.#say("* held: it goes out once connected");
    }
    this.#waiting++;
    this.#chain = this.#chain
      .then(() => this.#ready.promise)
      .then(() => this.#handle(text, pasted, held))
      .catch((err: Error) => this.#say(`* ${err.message}`))
      .finally(() => this.#waiting--);
  }

  async #handle(text: string, pasted: boolean, recorded: boolean): Promise<void> {
    if (this.#leaving) return;
    const command = !pasted && text.startsWith("/") && !text.startsWith("//");
    if (!recorded) this.#record(text);
    if (command) return this.#command(text);
    // `//text` sends `/text`, as in IRC clients; a paste goes as it is.
    const body = (!pasted && text.startsWith("//") ? text.slice(1) : text).replace(/\n+$/, "");
    const client = this.#client as Client;
    const peer = this.#peer;
    const e2e = this.#e2e !== null;
    if (isRoomAddress(peer.id) && this.#flags["peer-key"])
      return this.#say("* not sent: --peer-key pins one peer, not a room (use --strict)");
    if (!client.connected) {
      if (!this.#heldNoteShown) {
        this.#heldNoteShown = true;
        this.#say("* not connected: what you send goes out once the connection is back");
      }
      // The E2E layer may need the server (the peer's keys): wait for it, lines in order.
      // Without it the client library holds the line itself until it is back.
      if (e2e) await this.#reconnected(client);
      if (this.#leaving) return;
    }
    try {
      // A room's lines are encrypted to each member (src/cli/e2e-rooms.ts).
      if (isRoomAddress(peer.id)) await sendRoomLine(client, this.#e2e, peer.id, body, this.#flags);
      else if (!e2e) client.send(peer.id, body);
      else await sendDirect(client, this.#e2e, peer.id, body, peer.name, this.#flags);
    } catch (err) {
      this.#say(`* not sent: ${(err as Error).message}`);
    }
  }

  /** Resolves once `client` is connected again (or closed for good). */
  #reconnected(client: Client): Promise<void> {
    if (client.connected) return Promise.resolve();
    return new Promise((resolve) => {
      client.once("connect", () => resolve());
      client.once("close", () => resolve());
    });
  }

  async #command(text: string): Promise<void> {
    const [cmd = "", ...rest] = text.slice(1).trim().split(/\s+/);
    const arg = rest.join(" ");
    const client = this.#client as Client;
    switch (cmd) {
      case "help":
        for (const line of HELP) this.#say(line);
        return;
      case "quit":
        return this.#leave(true);
      case "who": {
        this.#say(`you are ${client.name} (${client.id})`);
        if (isRoomAddress(this.#peer.id)) {
          const keys = this.#e2e ? await roomKeyTags(this.#e2e, this.#peer.id) : undefined;
          for (const line of await roomWho(client, this.#peer.id, keys)) this.#say(line);
          return;
        }
        const [e] = await client.clientStatus([this.#peer.id]);
        if (!e || !("id" in e)) return this.#say(`${this.#peer.name} is no longer registered`);
        const seen = e.online
          ? "online"
          : e.last_seen
            ? `offline, last seen ${ago(Date.now() / 1000 - e.last_seen)} ago`
            : "offline, never seen";
        return this.#say(`talking to ${e.name} (${e.id}): ${seen}`);
      }
      case "status": {
        const s = await client.serverStatus();
        return this.#say(
          `server ${client.server}: ${s.clients_online} of ${s.clients_registered} clients online, up ${ago(s.uptime)}, ${s.messages_routed} messages routed, ${s.messages_queued} queued`,
        );
      }
      case "join": {
        if (!arg) return this.#say("usage: /join #NAME");
        this.#setPeer(await roomPeer(client, arg.startsWith("#") ? arg : `#${arg}`));
        this.#online = null;
        return this.#say(`* now talking in ${this.#peer.name}`);
      }
      case "leave": {
        const room = arg || (isRoomAddress(this.#peer.id) ? this.#peer.id : "");
        if (!room) return this.#say("usage: /leave #NAME");
        return this.#say(`* ${await leaveRoom(client, room)}`);
      }
      case "to": {
        if (!arg) return this.#say("usage: /to ID|NAME");
        if (isRoomAddress(arg)) return this.#command(`/join ${arg}`);
        const [e] = await client.clientStatus([arg]);
        if (!e || !("id" in e)) return this.#say(`no client "${arg}"`);
        this.#setPeer({ id: e.id, name: e.name });
        this.#online = null;
        this.#say(`* now talking to ${e.name}`);
        void this.#checkPresence();
        return;
      }
      default:
        this.#say(
          `unknown command /${cmd} (try /help; to send a line that starts with /, begin it with //)`,
        );
    }
  }

  async #checkPresence(): Promise<void> {
    const client = this.#client;
    // A room: membership events say who comes and goes.
    if (!client?.connected || this.#leaving || isRoomAddress(this.#peer.id)) return;
    const peer = this.#peer;
    try {
      const [e] = await client.clientStatus([peer.id]);
      if (peer !== this.#peer) return; // switched meanwhile
      const now = Boolean(e && "online" in e && e.online);
      if (this.#online === null && !now)
        this.#say(`* ${peer.name} is offline: what you send is stored for them`);
      if (this.#online !== null && now !== this.#online)
        this.#say(`* ${peer.name} is ${now ? "now online" : "offline"}`);
      this.#online = now;
    } catch {
      // asked again on the next tick
    }
  }

  /**
   * Leaves (Ctrl-C or Ctrl-D on an empty line, /quit, a signal). Lines already entered
   * are sent first when connected — waiting at most {@link LEAVE_WAIT_MS} for a
   * command still in flight. Exit 0, or 3 (with a line on stderr) when some lines
   * never reached the server.
   */
  async #leave(fromCommand: boolean, terminalGone = false): Promise<void> {
    if (this.#quitting) return;
    this.#quitting = true;
    try {
      await this.#finish(fromCommand, terminalGone);
    } catch {
      // Whatever failed on the way out (a terminal that is gone), the chat ends.
      this.#done.resolve(terminalGone ? EXIT.OK : EXIT.FAILURE);
    }
  }

  async #finish(fromCommand: boolean, terminalGone: boolean): Promise<void> {
    const client = this.#client;
    if (terminalGone) {
      this.#leaving = true;
      this.#stopCountdown();
      if (client) await client.close("terminal closed").catch(() => {});
      this.#done.resolve(EXIT.OK);
      return;
    }
    if (client?.connected && !fromCommand)
      await Promise.race([this.#chain, Bun.sleep(LEAVE_WAIT_MS)]);
    this.#leaving = true;
    this.#stopCountdown();
    // Lines still queued behind a command (the /quit being handled is not one of them),
    // and what the client holds while disconnected.
    const queued = this.#waiting - (fromCommand ? 1 : 0);
    const buffered = this.#isReady && client && !client.connected ? client.pendingBytes : 0;
    this.editor.stop();
    if (client) await client.close("bye").catch(() => {});
    if (queued > 0 || buffered > 0) {
      process.stderr.write(
        !this.#isReady
          ? `backbone: left before the server was reached: ${queued} line(s) not sent\n`
          : queued > 0
            ? `backbone: left with ${queued} line(s) not sent yet\n`
            : "backbone: left while disconnected: what was sent since the connection was lost did not reach the server\n",
      );
      this.#done.resolve(EXIT.UNREACHABLE);
    } else {
      this.#done.resolve(EXIT.OK);
    }
  }
}
