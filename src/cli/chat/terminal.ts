/**
 * `backbone chat` on a terminal: the input line at the bottom (../tty/editor.ts), a
 * status line above it while the server is out of reach, and above both every message
 * and note as a block whose continuation rows are indented — nothing a peer or the
 * server sends can pass for another line, or drive the terminal.
 *
 * Lines are handled one at a time, in the order entered: a command typed by hand has
 * taken effect before the next line is sent (`/to carol`, then a line: it goes to
 * carol). A bracketed paste is one message, never a command. Typed lines wait while
 * the server is unreachable and go out once it is back. The commands (`/to`, `/join`,
 * …) are in commands.ts, what is shown above the input line in screen.ts.
 */
import { type Client, connect } from "../../client/client.ts";
import type { loadIdentity } from "../../client/identity.ts";
import type { IncomingMessage } from "../../client/types.ts";
import type { E2EManager } from "../../e2e/session-manager.ts";
import { escapeControls } from "../../text/escape.ts";
import { CliError, EXIT, loadIdentityFromFlags } from "../common.ts";
import { attachE2E, type E2EFlags, openE2E, sendDirect } from "../e2e.ts";
import {
  describeRoomEventE2E,
  describeRoomPresence,
  sendRoomLine,
  warnRoomOnce,
} from "../e2e-rooms.ts";
import { NameCache } from "../names.ts";
import { describeRoomNotice, isRoomAddress, roomPeer } from "../rooms-ui.ts";
import { describeEnd, reportEnd } from "../session.ts";
import { LineEditor } from "../tty/editor.ts";
import { type ChatControl, type Peer, runCommand } from "./commands.ts";
import { describeNotice } from "./notices.ts";
import { ChatScreen } from "./screen.ts";

/** How often the peer's presence is checked (CLIENT_STATUS). */
const PRESENCE_EVERY_MS = 2000;

/** How long leaving waits for a command still in flight (its lines after it then count as unsent). */
const LEAVE_WAIT_MS = 3000;

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
  /** Notes, messages and the status line above the input line (screen.ts). */
  readonly #screen: ChatScreen;
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
    this.#screen = new ChatScreen(this.editor);
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
    this.#e2e = openE2E(identity, this.#flags, (line) => this.#screen.say(line));
    editor.setStatus(`connecting to ${escapeControls(this.#server)}…`);
    const connecting = connect({
      identity,
      server: this.#server,
      waitForServer: Number.POSITIVE_INFINITY,
      onRetry: ({ delayMs, error }) => this.#screen.countdown(error.message, delayMs),
      ...(this.#e2e ? { incoming: this.#e2e.incoming } : {}),
    });
    connecting.catch(() => {}); // when the user left first, nobody waits for it
    const client = await Promise.race([connecting, this.#done.promise.then(() => null)]);
    if (!client) return this.#done.promise;
    this.#client = client;
    if (this.#e2e) attachE2E(client, this.#e2e, (line) => this.#screen.say(line));
    this.#screen.stopCountdown();
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
    this.#screen.say(
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
      void warnRoomOnce(this.#e2e, p.id, this.#roomsNoted, (line) => this.#screen.say(`* ${line}`));
    this.#names?.set(p.id, p.name);
    this.editor.setPrompt(`${escapeControls(p.name)}> `);
  }

  #watch(client: Client, incoming: AsyncIterable<IncomingMessage>): void {
    void (async () => {
      for await (const m of incoming)
        this.#screen.message(m, await (this.#names as NameCache).get(m.from), this.#e2e !== null);
    })();
    client.on("notice", async (n) => {
      // An E2E room message that missed members: the layer re-sends it to them itself.
      if (n.status === "recipients") return;
      this.#screen.say(
        `* ${isRoomAddress(n.address) ? describeRoomNotice(n) : describeNotice(n, await (this.#names as NameCache).get(n.address))}`,
      );
    });
    client.on("room", async (e) => {
      for (const line of await describeRoomEventE2E(this.#e2e, e, client.id))
        this.#screen.say(`* ${line}`);
    });
    // A member never seen joining, announced before its first message.
    this.#e2e?.on("roomMember", (p) => {
      for (const line of describeRoomPresence(p)) this.#screen.say(`* ${line}`);
    });
    client.on("disconnect", ({ reason, willReconnect }) => {
      if (this.#leaving || !willReconnect) return;
      this.#heldNoteShown = false;
      this.#screen.say(`* connection lost (${reason}); reconnecting`);
    });
    client.on("reconnecting", ({ delayMs, error }) =>
      this.#screen.countdown(error?.message ?? "reconnecting", delayMs),
    );
    client.on("connect", () => {
      this.#screen.stopCountdown();
      this.editor.setStatus("");
      this.#screen.say("* reconnected");
    });
    client.on("close", ({ error }) => {
      if (!error || this.#quitting) return;
      // Revoked, refused on a reconnect, the server's key changed: say why, exit.
      this.#quitting = true;
      this.#leaving = true;
      this.#screen.stopCountdown();
      this.editor.stop();
      this.#done.resolve(reportEnd(describeEnd(error)));
    });
  }

  // ---- input ----------------------------------------------------------------------

  #enter(text: string, pasted: boolean): void {
    if (!text.trim() || this.#quitting) return; // empty lines are not messages
    const held = !this.#isReady;
    if (held) {
      this.#screen.record(text, this.#peer.name);
      this.#screen.say("* held: it goes out once connected");
    }
    this.#waiting++;
    this.#chain = this.#chain
      .then(() => this.#ready.promise)
      .then(() => this.#handle(text, pasted, held))
      .catch((err: Error) => this.#screen.say(`* ${err.message}`))
      .finally(() => this.#waiting--);
  }

  async #handle(text: string, pasted: boolean, recorded: boolean): Promise<void> {
    if (this.#leaving) return;
    const command = !pasted && text.startsWith("/") && !text.startsWith("//");
    if (!recorded) this.#screen.record(text, this.#peer.name);
    if (command) return this.#command(text);
    // `//text` sends `/text`, as in IRC clients; a paste goes as it is.
    const body = (!pasted && text.startsWith("//") ? text.slice(1) : text).replace(/\n+$/, "");
    const client = this.#client as Client;
    const peer = this.#peer;
    const e2e = this.#e2e !== null;
    if (isRoomAddress(peer.id) && this.#flags["peer-key"])
      return this.#screen.say("* not sent: --peer-key pins one peer, not a room (use --strict)");
    if (!client.connected) {
      if (!this.#heldNoteShown) {
        this.#heldNoteShown = true;
        this.#screen.say("* not connected: what you send goes out once the connection is back");
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
      this.#screen.say(`* not sent: ${(err as Error).message}`);
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

  #command(text: string): Promise<void> {
    const chat = this;
    const control: ChatControl = {
      client: this.#client as Client,
      e2e: this.#e2e,
      get peer() {
        return chat.#peer;
      },
      switchTo: (peer) => {
        this.#setPeer(peer);
        this.#online = null;
      },
      checkPresence: () => this.#checkPresence(),
      say: (line) => this.#screen.say(line),
      quit: () => this.#leave(true),
    };
    return runCommand(control, text);
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
        this.#screen.say(`* ${peer.name} is offline: what you send is stored for them`);
      if (this.#online !== null && now !== this.#online)
        this.#screen.say(`* ${peer.name} is ${now ? "now online" : "offline"}`);
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
      this.#screen.stopCountdown();
      if (client) await client.close("terminal closed").catch(() => {});
      this.#done.resolve(EXIT.OK);
      return;
    }
    if (client?.connected && !fromCommand)
      await Promise.race([this.#chain, Bun.sleep(LEAVE_WAIT_MS)]);
    this.#leaving = true;
    this.#screen.stopCountdown();
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
