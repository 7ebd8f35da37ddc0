/**
 * What the commands share: exit codes, one-line errors, finding the identity file,
 * connecting with visible progress, and small output helpers.
 */

import { readdirSync, readFileSync } from "node:fs";
import { type Client, connect } from "../client/client.ts";
import { type Identity, loadIdentity } from "../client/identity.ts";
import { RoomError } from "../client/rooms.ts";
import type { ConnectOptions } from "../client/types.ts";
import { isEnvelope } from "../e2e/envelope.ts";
import {
  BackboneError,
  ConnectionError,
  describeErrno,
  HandshakeError,
  KeyError,
  PinningError,
  StoreError,
  UsageError,
} from "../errors.ts";
import { escapeBytes, escapeControls } from "../text/escape.ts";
import type { Receive } from "../wire/session.ts";
import {
  closeTerminal,
  PASSPHRASE_ARG,
  passphraseSource,
  withPassphraseHint,
} from "./passphrase.ts";

/** Exit codes, stable for scripts (documented in the README). */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  AUTH: 4,
  SERVER_KEY: 5,
  UNDELIVERABLE: 6,
  /** The server refused a room request: not a member, invite-only, not the owner, a limit … */
  REFUSED: 10,
  /**
   * The key directory holds another E2E identity of this client (another machine's, or
   * an earlier install's) — nothing sent; `--e2e-takeover` replaces it (docs/E2E.md §
   * One identity, one device).
   */
  IDENTITY_ELSEWHERE: 11,
} as const;

/** An error the CLI reports as one line, with its exit code. */
export class CliError extends BackboneError {
  override name = "CliError";
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.FAILURE) {
    super("CLI", message);
    this.exitCode = exitCode;
  }
}

/** The exit code for any error. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof PinningError) return EXIT.SERVER_KEY;
  // Not the identity's fault: its other sessions fill the bound (final: src/client/retry.ts).
  if (err instanceof HandshakeError && err.code === "TOO_MANY_SESSIONS") return EXIT.UNREACHABLE;
  if (err instanceof HandshakeError && err.code === "UNAVAILABLE") return EXIT.UNREACHABLE;
  if (err instanceof HandshakeError)
    return err.stage === "authentication" ? EXIT.AUTH : EXIT.UNREACHABLE;
  if (err instanceof ConnectionError) return EXIT.UNREACHABLE;
  if (err instanceof RoomError) return roomExitCode(err);
  if (err instanceof UsageError || err instanceof KeyError || err instanceof StoreError)
    return EXIT.USAGE;
  return EXIT.FAILURE;
}

/**
 * The exit code of a room request's refusal (docs/PROTOCOL.md § Rooms, the `error`
 * codes): REFUSED, or FAILURE when the server could not do it (`failure`).
 */
export function roomExitCode(err: RoomError): number {
  return err.code === "failure" ? EXIT.FAILURE : EXIT.REFUSED;
}

/**
 * The one line printed for an error (no stack trace). Its text may quote a server
 * (a STOP or NOTICE reason) or a file: every line is made terminal-safe.
 */
export function describeError(err: unknown): string[] {
  return describeErrorRaw(err).map((line) => escapeControls(line));
}

function describeErrorRaw(err: unknown): string[] {
  if (err instanceof PinningError) {
    return [
      "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
      "@    WARNING: SERVER IDENTIFICATION HAS CHANGED!          @",
      "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
      "Someone could be eavesdropping on you right now (man-in-the-middle attack),",
      "or the server's key was replaced.",
      `The pinned server key is   ${err.expected}`,
      `the server presented       ${err.received}`,
      "Refusing to connect. If the change is legitimate, get a new identity file from the server's admin.",
    ];
  }
  if (err instanceof HandshakeError && err.code === "TOO_MANY_SESSIONS") {
    return [
      "too many sessions of this identity at once (the server's max_sessions_per_client): end one of its chat or listen processes, or raise the limit in the server's config",
    ];
  }
  if (err instanceof HandshakeError && err.code === "UNAVAILABLE") {
    return ["the server cannot read its registry now (its store is unreachable); try again later"];
  }
  if (err instanceof HandshakeError && err.stage === "authentication") {
    return ["authentication failed (unknown or revoked client, or wrong key)"];
  }
  if (err instanceof BackboneError) return [err.message];
  if (err instanceof Error) return [`unexpected error: ${err.message}`];
  return [`unexpected error: ${String(err)}`];
}

/**
 * The identity file to use: `--identity`, else `$BACKBONE_IDENTITY`, else the only
 * `*.identity` file in the current directory. Throws `CliError` (USAGE) otherwise.
 */
export function findIdentityFile(
  flag: string | undefined,
  env = process.env,
  cwd = process.cwd(),
): string {
  if (flag) return flag;
  if (env.BACKBONE_IDENTITY) return env.BACKBONE_IDENTITY;
  const found = readdirSync(cwd).filter((f) => f.endsWith(".identity"));
  if (found.length === 1) return found[0] as string;
  if (found.length === 0) {
    throw new CliError(
      "no identity: pass --identity FILE, set BACKBONE_IDENTITY, or run in a directory with one *.identity file",
      EXIT.USAGE,
    );
  }
  throw new CliError(
    `several identity files here (${found.join(", ")}): choose one with --identity FILE`,
    EXIT.USAGE,
  );
}

/** Writes a line to stderr, as one line with nothing in it that drives the terminal. */
export function note(text: string): void {
  process.stderr.write(`${escapeControls(text)}\n`);
}

/**
 * Shows `label…` on stderr if `task` takes more than a moment (on a terminal only),
 * then clears it.
 */
export async function withProgress<T>(label: string, task: Promise<T>): Promise<T> {
  if (!process.stderr.isTTY) return task;
  let shown = false;
  const timer = setTimeout(() => {
    shown = true;
    process.stderr.write(`${label}…`);
  }, 300);
  try {
    return await task;
  } finally {
    clearTimeout(timer);
    if (shown) process.stderr.write("\r\x1b[K");
  }
}

/** The options every client command takes. */
export const CLIENT_ARGS = {
  identity: {
    type: "string",
    description: "Identity file (default: $BACKBONE_IDENTITY or the only *.identity here)",
    valueHint: "FILE",
  },
  server: {
    type: "string",
    description: "Server address (default: the identity's)",
    valueHint: "HOST:PORT",
  },
  ...PASSPHRASE_ARG,
} as const;

/** Reads a text file the user named; a missing or unreadable one is a one-line usage error. */
export function readUserFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (cause) {
    throw new CliError(`cannot read ${path}: ${describeErrno(cause)}`, EXIT.USAGE);
  }
}

export interface ConnectFlags {
  identity?: string | undefined;
  server?: string | undefined;
  "passphrase-file"?: string | undefined;
}

/**
 * Loads the identity and connects. `waitSeconds`: how long to keep retrying an
 * unreachable server (Infinity for `chat`); `countdown` shows each wait on stderr.
 */
/**
 * The identity of `--identity` (or the default one), its private key unlocked with the
 * passphrase from `--passphrase-file` or asked on the terminal when it has one.
 */
export function loadIdentityFromFlags(flags: ConnectFlags): ReturnType<typeof loadIdentity> {
  return loadIdentity(findIdentityFile(flags.identity), {
    passphrase: passphraseSource(flags["passphrase-file"]),
  })
    .catch((err) => {
      throw withPassphraseHint(err);
    })
    .finally(closeTerminal);
}

export async function connectFromFlags(
  flags: ConnectFlags,
  opts: ConnectFlagOptions,
): Promise<Client> {
  return connectIdentity(await loadIdentityFromFlags(flags), flags, opts);
}

export interface ConnectFlagOptions {
  waitSeconds: number;
  countdown?: boolean;
  receive: Receive;
  /** The `incoming` hook of `connect` (the E2E layer, src/cli/e2e.ts). */
  incoming?: ConnectOptions["incoming"];
}

/** Connects `identity` as `flags` say (`--server`), with a countdown on a terminal. */
export async function connectIdentity(
  identity: Identity,
  flags: ConnectFlags,
  opts: ConnectFlagOptions,
): Promise<Client> {
  const server = flags.server ?? identity.server;
  let shown: (() => void) | undefined;
  const clientPromise = connect({
    identity,
    server,
    waitForServer: opts.waitSeconds * 1000,
    // chat and listen receive; one-shot commands never see or take anyone's messages.
    session: { receive: opts.receive },
    ...(opts.incoming ? { incoming: opts.incoming } : {}),
    ...(opts.countdown
      ? {
          onRetry: ({ delayMs, error }) => {
            shown?.();
            shown = countdown(error.message, delayMs);
          },
        }
      : {}),
  });
  try {
    return await withProgress(`connecting to ${server}`, clientPromise);
  } finally {
    // A countdown still on screen would run into the error line or the first output.
    shown?.();
  }
}

/**
 * Shows "…; retrying in N s" on stderr, counting down each second (one updating line
 * on a terminal, one line per wait elsewhere). Returns a function that clears it.
 */
export function countdown(why: string, delayMs: number): () => void {
  const tty = process.stderr.isTTY;
  const end = Date.now() + delayMs;
  const text = escapeControls(why);
  const show = () => {
    const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
    process.stderr.write(
      `${tty ? "\r\x1b[K" : ""}${text}; retrying in ${left} s${tty ? "" : "\n"}`,
    );
  };
  show();
  if (!tty) return () => {};
  let on = true;
  const stop = () => {
    if (!on) return;
    on = false;
    clearInterval(timer);
    process.stderr.write("\r\x1b[K");
  };
  const timer = setInterval(() => {
    if (Date.now() >= end) stop();
    else show();
  }, 1000);
  timer.unref();
  return stop;
}

/**
 * Message data as one line of text for display: UTF-8, invalid bytes as `\xNN`, and
 * every control, separator and bidi control as a visible escape (src/text/escape.ts).
 */
export function displayText(data: Uint8Array): string {
  // Only `--no-e2e` lets an E2E envelope through undecrypted (the E2E layer opens or
  // drops every one): a marker, not a screenful of escaped ciphertext.
  if (isEnvelope(data)) return E2E_UNREAD;
  return escapeBytes(data);
}

/** What `chat`/`listen --no-e2e` show for an end-to-end encrypted message. */
export const E2E_UNREAD = "[end-to-end encrypted: not readable with --no-e2e]";

/**
 * `JSON.stringify` as one line that is also safe on a terminal: the code points JSON
 * leaves raw (DEL, C1, U+2028/2029, bidi controls) written as `\uXXXX`, still valid JSON.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** HH:MM:SS of a date, local time. */
export function clock(d: Date): string {
  return d.toTimeString().slice(0, 8);
}

/** A duration in seconds as "3d 4h", "5m 2s" … */
export function ago(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
