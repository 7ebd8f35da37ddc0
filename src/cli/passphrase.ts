/**
 * The passphrase of an encrypted private key, as OpenSSH gets it: asked on the
 * controlling terminal (/dev/tty, so it works with stdin piped) without echo, or read
 * from `--passphrase-file FILE`. Never from an argument, where `ps` and shell history
 * would show it.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { ReadStream } from "node:tty";
import { readSecretFile } from "../crypto/keyfile.ts";
import type { PassphraseSource } from "../crypto/keyformats.ts";
import { KeyError } from "../errors.ts";

/** The option every client command takes. */
export const PASSPHRASE_ARG = {
  "passphrase-file": {
    type: "string",
    description:
      "File holding the passphrase of an encrypted private key (default: asked on the terminal)",
    valueHint: "FILE",
  },
} as const;

/**
 * Where the passphrase comes from: `file` (read now, mode 0600 or stricter; its first
 * line, without the line end; tried once), else the terminal (asked up to three times;
 * nothing when there is no terminal).
 */
export function passphraseSource(file: string | undefined): PassphraseSource {
  if (file !== undefined) {
    const text = readSecretFile(file, "a passphrase file");
    const line = text.split(/\r?\n/, 1)[0] ?? "";
    let used = false;
    return async () => {
      if (used) return undefined;
      used = true;
      return line;
    };
  }
  return askTerminal;
}

/**
 * The controlling terminal while passphrases are asked: prompts are written to
 * /dev/tty; answers are read from stdin when it is that terminal (the one reader the
 * command goes on using: a second stream on the terminal would swallow the next line
 * typed, and closing it would reset the terminal's mode), else from /dev/tty (stdin
 * piped, as in `echo hi | backbone send bob`).
 */
interface Terminal {
  /** /dev/tty, for the prompts. */
  fd: number;
  input: NodeJS.ReadStream | ReadStream;
  /** Whether `input` is our own stream on /dev/tty (closed when done), not stdin. */
  own: boolean;
}
let terminal: Terminal | undefined;

function openTerminal(): Terminal | undefined {
  if (terminal) return terminal;
  let fd: number;
  try {
    fd = openSync("/dev/tty", "r+");
  } catch {
    return undefined;
  }
  if (process.stdin.isTTY) {
    terminal = { fd, input: process.stdin, own: false };
  } else {
    terminal = { fd, input: new ReadStream(fd), own: true };
  }
  return terminal;
}

/** Releases the terminal used to ask a passphrase, if any (after the key is unlocked). */
export function closeTerminal(): void {
  if (!terminal) return;
  if (terminal.own) {
    terminal.input.destroy(); // closes fd
  } else {
    terminal.input.pause();
    closeSync(terminal.fd);
  }
  terminal = undefined;
}

/**
 * Asks on /dev/tty with echo off (raw mode); `undefined` when there is no terminal or
 * on Ctrl-D. Ctrl-C ends the program (exit 130), as at a shell prompt. Call
 * `closeTerminal` when done asking.
 */
export async function askTerminal(prompt: string): Promise<string | undefined> {
  const tty = openTerminal();
  if (!tty) return undefined;
  const { fd, input } = tty;
  try {
    input.setRawMode(true);
  } catch {
    closeTerminal();
    return undefined;
  }
  writeSync(fd, prompt);
  const answer = await new Promise<string | undefined>((resolve) => {
    let typed = "";
    const done = (value: string | undefined) => {
      input.off("data", onData);
      input.pause();
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done(typed);
        if (ch === "\x04") return done(typed.length > 0 ? typed : undefined);
        if (ch === "\x03") {
          input.setRawMode(false);
          writeSync(fd, "\r\n");
          process.exit(130);
        }
        if (ch === "\x7f" || ch === "\b") typed = [...typed].slice(0, -1).join("");
        else if (ch === "\x15")
          typed = ""; // Ctrl-U
        else if (ch >= " ") typed += ch;
      }
    };
    input.on("data", onData);
    input.resume();
  });
  input.setRawMode(false);
  writeSync(fd, "\r\n");
  return answer;
}

/** An encrypted key and no passphrase: the CLI's one line says how to give one. */
export function withPassphraseHint(err: unknown): unknown {
  if (err instanceof KeyError && err.code === "KEY_ENCRYPTED") {
    return new KeyError(
      err.code,
      `${err.message}: run on a terminal to be asked for it, or give --passphrase-file FILE`,
    );
  }
  return err;
}
