/**
 * The E2E layer for the CLI commands (docs/E2E.md): the `--no-e2e` and `--e2e-state`
 * options, connecting with the layer, and its warnings on stderr (rooms: ./e2e-rooms.ts). End-to-end
 * encryption is on by default; plaintext only with `--no-e2e` or to a peer without
 * keys (with a warning).
 */
import type { Client } from "../client/client.ts";
import type { Identity } from "../client/identity.ts";
import { E2EError } from "../e2e/errors.ts";
import { E2EManager } from "../e2e/session-manager.ts";
import { escapeControls } from "../text/escape.ts";
import {
  CliError,
  type ConnectFlagOptions,
  type ConnectFlags,
  connectIdentity,
  EXIT,
  loadIdentityFromFlags,
  note,
} from "./common.ts";

/** `--e2e-takeover` (docs/E2E.md § One identity, one device). */
export const E2E_TAKEOVER_ARG = {
  "e2e-takeover": {
    type: "boolean",
    description:
      "Publish this machine's E2E keys even though another device's (or an earlier install's) are published for this identity; the other stops receiving end-to-end",
  },
} as const;

/** Options of the commands that send or receive direct messages. */
export const E2E_ARGS = {
  // citty reads `--no-e2e` as `e2e: false`.
  e2e: {
    type: "boolean",
    default: true,
    description:
      "End-to-end encrypt direct messages to peers with keys, and room messages to each member with keys",
    negativeDescription:
      "Send and receive without end-to-end encryption (the server can read the messages)",
  },
  "e2e-state": {
    type: "string",
    description:
      "E2E state directory (default: $BACKBONE_E2E_STATE or ~/.local/state/backbone/e2e/<id>)",
    valueHint: "DIR",
  },
  ...E2E_TAKEOVER_ARG,
} as const;

/** Options of the commands that send (`send`, `chat`): pinning for programs. */
export const E2E_SEND_ARGS = {
  "peer-key": {
    type: "string",
    description:
      "Send only if the peer's E2E identity key is this one (as `backbone verify` shows it); else exit 9",
    valueHint: "SHA256:…",
  },
  strict: {
    type: "boolean",
    description:
      "Send only end-to-end encrypted, and only to a verified (or --peer-key) peer — to a room only if every member is verified; else exit 9",
  },
} as const;

/** Exit code when `--strict` or `--peer-key` refused to send. */
export const EXIT_E2E_REQUIRED = 9;

export interface E2EFlags extends ConnectFlags {
  e2e?: boolean | undefined;
  "e2e-state"?: string | undefined;
  "e2e-takeover"?: boolean | undefined;
}

/**
 * The exit code of an E2E error not handled on its own: `IDENTITY_ELSEWHERE` (the key
 * directory holds another E2E identity of this client) 11, anything else 1.
 */
export function e2eExitCode(err: E2EError): number {
  return err.code === "IDENTITY_ELSEWHERE" ? EXIT.IDENTITY_ELSEWHERE : EXIT.FAILURE;
}

/** Exit code when sending is refused because a verified peer's key changed. */
export const EXIT_KEY_CHANGED = 7;

/**
 * What to run after a verified peer's key changed: `verify --accept` shows the new
 * safety number and asks again (plain `verify` only refuses while a change is pending).
 */
export function acceptHint(peer: string): string {
  return `(check the new key with: backbone verify ${escapeControls(peer)} --accept)`;
}

/** Where the E2E layer's warnings go: stderr by default, above the input in the terminal chat. */
export type Say = (line: string) => void;

/**
 * The E2E layer of `identity` unless `--no-e2e` (null then): its state opened before
 * connecting, so that no stored message arrives before it can be decrypted. Throws
 * `CliError` for contradictory flags or a state that cannot be opened.
 */
export function openE2E(
  identity: Identity,
  flags: E2EFlags,
  say: Say = note,
  { elsewhereIsFatal = false } = {},
): E2EManager | null {
  const pinned = (flags as { "peer-key"?: string })["peer-key"];
  const strict = (flags as { strict?: boolean }).strict;
  if (flags.e2e === false && (pinned || strict)) {
    throw new CliError("--no-e2e cannot be combined with --peer-key or --strict", EXIT.USAGE);
  }
  if (pinned !== undefined && !/^SHA256:[A-Za-z0-9+/]{43}$/.test(pinned)) {
    throw new CliError(
      `--peer-key: not a key fingerprint: ${JSON.stringify(pinned)} (expected SHA256:…)`,
      EXIT.USAGE,
    );
  }
  if (flags.e2e === false) return null;
  const stateDir = flags["e2e-state"] ?? process.env.BACKBONE_E2E_STATE;
  let e2e: E2EManager;
  try {
    e2e = E2EManager.open(identity.id, {
      ...(stateDir ? { stateDir } : {}),
      ...(flags["e2e-takeover"] ? { takeover: true } : {}),
    });
  } catch (err) {
    // A state directory that is unsafe, damaged or rolled back is a bad file the user
    // must fix (exit 2, as a bad identity file is); a lock or an I/O error is not.
    if (err instanceof E2EError)
      throw new CliError(
        `${err.message}; or run with --no-e2e`,
        STATE_FILE_FAULTS.has(err.code) ? EXIT.USAGE : EXIT.FAILURE,
      );
    throw err;
  }
  reportWarnings(e2e, say, elsewhereIsFatal);
  return e2e;
}

const STATE_FILE_FAULTS = new Set(["STATE_UNSAFE", "STATE_CORRUPT", "ROLLED_BACK"]);

/** Puts the layer to work on a connected client (key publication, warnings). */
export function attachE2E(client: Client, e2e: E2EManager, say: Say = note): void {
  client.on("incomingError", ({ error }) =>
    say(
      `warning: could not save the E2E state (${error.message}); messages are not acknowledged and will come again at the next login`,
    ),
  );
  e2e.attach(client);
  // After the command's own close listeners too, and never throwing into them.
  client.once("close", () => {
    try {
      e2e.close();
    } catch {
      // the state is saved by each change; a lock left behind is taken over by PID
    }
  });
}

/**
 * Connects like `connectFromFlags`, with the E2E layer unless `--no-e2e`.
 */
export async function connectWithE2E(
  flags: E2EFlags,
  opts: Omit<ConnectFlagOptions, "incoming">,
): Promise<{ client: Client; e2e: E2EManager | null }> {
  const identity = await loadIdentityFromFlags(flags);
  const e2e = openE2E(identity, flags, note, { elsewhereIsFatal: true });
  try {
    const client = await connectIdentity(identity, flags, {
      ...opts,
      ...(e2e ? { incoming: e2e.incoming } : {}),
    });
    if (e2e) {
      // Another device's E2E identity is published for us: the command stops with that
      // one line (exit 1) before it sends anything (E2EManager.send refuses meanwhile).
      // Not awaited here: the command's message listener must be in place first.
      e2e.on("syncFailed", ({ error }) => {
        if (!(error instanceof E2EError && error.code === "IDENTITY_ELSEWHERE")) return;
        void client
          .close("E2E identity elsewhere")
          .catch(() => {})
          .then(() =>
            process.stderr.write(`backbone: ${error.message}\n`, () =>
              process.exit(EXIT.IDENTITY_ELSEWHERE),
            ),
          );
      });
      attachE2E(client, e2e);
    }
    return { client, e2e };
  } catch (err) {
    e2e?.close();
    throw err;
  }
}

/**
 * Sends `data` to `to` (an ID): through the E2E layer when there is one. Throws
 * `CliError` with EXIT_KEY_CHANGED when a verified peer's key changed.
 */
export async function sendDirect(
  client: Client,
  e2e: E2EManager | null,
  to: string,
  data: string | Uint8Array,
  name?: string,
  flags: { "peer-key"?: string | undefined; strict?: boolean | undefined } = {},
): Promise<{ e2e: boolean }> {
  // To yourself (your other sessions) there is no pairwise session: they share your key.
  const self = to.toLowerCase() === client.id.toLowerCase();
  // --strict and --peer-key promise end-to-end encryption, which a note to yourself lacks.
  if (e2e && self && (flags.strict || flags["peer-key"]))
    throw new CliError(
      `not sent: a note to yourself is not end-to-end encrypted (your sessions share one key), and ${flags.strict ? "--strict" : "--peer-key"} sends only what is`,
      EXIT_E2E_REQUIRED,
    );
  if (!e2e || self) {
    client.send(to, data);
    return { e2e: false };
  }
  try {
    return await e2e.send(to, data, {
      ...(name ? { name } : {}),
      ...(flags["peer-key"] ? { peerKey: flags["peer-key"] } : {}),
      ...(flags.strict ? { strict: true } : {}),
    });
  } catch (err) {
    const pinning = flags["peer-key"] || flags.strict;
    if (
      err instanceof E2EError &&
      (err.code === "PEER_KEY_MISMATCH" ||
        err.code === "UNVERIFIED" ||
        (pinning && err.code === "NO_KEYS"))
    ) {
      throw new CliError(err.message, EXIT_E2E_REQUIRED);
    }
    if (err instanceof E2EError && err.code === "NAME_CHANGED") {
      throw new CliError(err.message, EXIT_KEY_CHANGED);
    }
    if (err instanceof E2EError && err.code === "KEY_CHANGED") {
      throw new CliError(`${err.message} ${acceptHint(err.peer ?? to)}`, EXIT_KEY_CHANGED);
    }
    // Too large to send: refused, as the server's own size limit is (exit 6).
    if (err instanceof E2EError && err.code === "TOO_LARGE")
      throw new CliError(`not sent: ${err.message}`, EXIT.UNDELIVERABLE);
    if (err instanceof E2EError) throw new CliError(err.message, e2eExitCode(err));
    throw err;
  }
}

/**
 * How a peer is named in a warning: `name (id)` when its name is known, else its ID;
 * escaped (the name comes from the server).
 */
export function peerLabel(e2e: E2EManager, id: string, name?: string): string {
  const known = name || e2e.state.knownPeers.get(id)?.name;
  return known ? `${escapeControls(known)} (${escapeControls(id)})` : escapeControls(id);
}

/**
 * The E2E layer's warnings. The plaintext and decryption warnings are shown once per
 * peer (and direction) per run: a chat line after line to a peer without keys says it
 * once, not at every line; a loud key change is shown every time it happens.
 */
function reportWarnings(e2e: E2EManager, note: Say, elsewhereIsFatal: boolean): void {
  const shown = new Set<string>();
  const once = (key: string) => {
    if (shown.has(key)) return false;
    shown.add(key);
    return true;
  };
  e2e.on("keyChanged", ({ id, previous, fingerprint, blocked }) => {
    note("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
    note("@    WARNING: PEER IDENTITY KEY HAS CHANGED!               @");
    note("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
    note(`The E2E identity key of ${peerLabel(e2e, id)} changed: ${previous} → ${fingerprint}.`);
    note("It may have re-installed, or someone may be impersonating it.");
    note(
      blocked
        ? `It was verified: nothing is sent to it until you check: backbone verify ${id} --accept`
        : `Compare safety numbers: backbone verify ${id}`,
    );
  });
  e2e.on("keyRolledOver", ({ id, previous, fingerprint, verified }) => {
    note(
      `note: ${peerLabel(e2e, id)} replaced its E2E identity key by one signed with the old (${previous} → ${fingerprint})${verified ? "; still verified" : ""}`,
    );
  });
  e2e.on("resent", ({ id, count, refused }) => {
    if (refused) {
      note(
        `warning: ${peerLabel(e2e, id)} could not decrypt messages of yours (it re-installed or lost its session); not sent again: ${refused}`,
      );
    }
    if (count > 0) {
      note(
        `note: ${peerLabel(e2e, id)} could not decrypt ${count === 1 ? "a message" : `${count} messages`} of yours (it re-installed or lost its session); sent again on a new session`,
      );
    }
  });
  e2e.on("nameChanged", ({ name, previous, id, blocked }) => {
    note(
      `WARNING: the name "${escapeControls(name)}" now belongs to client ${id}, not ${previous} as before.`,
    );
    note(
      blocked
        ? "The earlier one was verified: nothing is sent to the new one by name."
        : "A new client may have taken the name, or the server is lying about it.",
    );
  });
  e2e.on("plaintext", ({ id, name, direction, reason }) => {
    if (!once(`plaintext ${direction} ${id}`)) return;
    const verb = direction === "out" ? "sending to" : "received from";
    note(
      `warning: ${verb} ${escapeControls(name || e2e.state.knownPeers.get(id)?.name || id)} without end-to-end encryption: ${reason}`,
    );
  });
  e2e.on("roomSkipped", ({ room, id, name, reason }) => {
    note(
      `warning: ${escapeControls(name || id)} in #${escapeControls(room)} gets no end-to-end encrypted messages: ${reason} (use --no-e2e to send plaintext to everyone)`,
    );
  });
  e2e.on("decryptFailed", ({ from, message, retry }) => {
    if (!once(`decrypt ${from}`)) return;
    const say = (label: string) =>
      note(
        `warning: an end-to-end encrypted message from ${label} could not be decrypted: ${message}${retry ? "; asked the sender to start a new session and send it again" : ""} (later failures from this peer are not repeated)`,
      );
    if (e2e.state.knownPeers.get(from)?.name) return say(peerLabel(e2e, from));
    // Not in known_peers (a re-install lost it): ask the server for the name.
    void lookupName(e2e, from).then((name) => say(peerLabel(e2e, from, name)));
  });
  e2e.on("syncFailed", ({ error }) => {
    if (error instanceof E2EError && error.code === "IDENTITY_ELSEWHERE") {
      // connectWithE2E stops with it as the one error line; the terminal chat says it here.
      if (!elsewhereIsFatal && once("elsewhere")) note(`error: ${error.message}`);
      return;
    }
    note(`warning: could not publish E2E keys: ${error.message}`);
  });
}

/** The server's name for `id`, or "" (not connected, unknown, or the request failed). */
async function lookupName(e2e: E2EManager, id: string): Promise<string> {
  const client = e2e.client;
  if (!client?.connected) return "";
  try {
    const [entry] = await client.clientStatus([id]);
    return entry && "name" in entry ? String(entry.name) : "";
  } catch {
    return "";
  }
}
