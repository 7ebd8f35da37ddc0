/**
 * What the commands share: exit codes, one-line errors, finding the identity file,
 * connecting with visible progress, and small output helpers.
 */
import { readdirSync, readFileSync } from "node:fs";
import { type Client, connect } from "../client/client.ts";
import { loadIdentity } from "../client/identity.ts";
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
import type { Receive } from "../wire/session.ts";

/** Exit codes, stable for scripts (documented in the README). */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  AUTH: 4,
  SERVER_KEY: 5,
  UNDELIVERABLE: 6,
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
  if (err instanceof HandshakeError)
    return err.stage === "authentication" ? EXIT.AUTH : EXIT.UNREACHABLE;
  if (err instanceof ConnectionError) return EXIT.UNREACHABLE;
  if (err instanceof UsageError || err instanceof KeyError || err instanceof StoreError)
    return EXIT.USAGE;
  return EXIT.FAILURE;
}

/** The one line printed for an error (no stack trace). */
export function describeError(err: unknown): string[] {
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
    return ["too many sessions of this identity at once (the server's max_sessions_per_client)"];
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

/** Writes a line to stderr. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
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
}

/**
 * Loads the identity and connects. `waitSeconds`: how long to keep retrying an
 * unreachable server (Infinity for `chat`), with a visible countdown on stderr.
 */
export async function connectFromFlags(
  flags: ConnectFlags,
  opts: { waitSeconds: number; countdown?: boolean; receive: Receive },
): Promise<Client> {
  const identity = await loadIdentity(findIdentityFile(flags.identity));
  const server = flags.server ?? identity.server;
  const clientPromise = connect({
    identity,
    server,
    waitForServer: opts.waitSeconds * 1000,
    // chat and listen receive; one-shot commands never see or take anyone's messages.
    session: { receive: opts.receive },
    ...(opts.countdown
      ? { onRetry: ({ delayMs, error }) => countdown(error.message, delayMs) }
      : {}),
  });
  return withProgress(`connecting to ${server}`, clientPromise);
}

/** Shows "…; retrying in N s", counting down each second (one updating line on a terminal). */
export function countdown(why: string, delayMs: number): void {
  const tty = process.stderr.isTTY;
  const end = Date.now() + delayMs;
  const show = () => {
    const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
    process.stderr.write(`${tty ? "\r\x1b[K" : ""}${why}; retrying in ${left} s${tty ? "" : "\n"}`);
  };
  show();
  if (!tty) return;
  const timer = setInterval(() => {
    if (Date.now() >= end) {
      clearInterval(timer);
      process.stderr.write("\r\x1b[K");
    } else show();
  }, 1000);
  timer.unref();
}

/** C0 controls but tab, and DEL: a message must not move the cursor or clear the screen. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/** Text of message data for display: UTF-8, control characters made visible. */
export function displayText(data: Uint8Array): string {
  return new TextDecoder()
    .decode(data)
    .replace(CONTROL_CHARS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
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
