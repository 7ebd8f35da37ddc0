#!/usr/bin/env bun
/**
 * The `backbone` command: one citty command per file under ./commands, each a thin
 * layer over the library. Errors end as one line on stderr and a non-zero exit code.
 */
import { type CommandDef, renderUsage, runCommand } from "citty";
import { escapeControls } from "../text/escape.ts";
import { VERSION } from "../version.ts";
import { PROTOCOL } from "../wire/constants.ts";
import { checkArgs } from "./args.ts";
import { chat } from "./commands/chat.ts";
import { clients } from "./commands/clients.ts";
import { e2eCommand } from "./commands/e2e.ts";
import { fingerprintCommand } from "./commands/fingerprint.ts";
import { keygen } from "./commands/keygen.ts";
import { listen } from "./commands/listen.ts";
import { migrate } from "./commands/migrate.ts";
import { revoke } from "./commands/revoke.ts";
import { room } from "./commands/room.ts";
import { send } from "./commands/send.ts";
import { serve } from "./commands/serve.ts";
import { status } from "./commands/status.ts";
import { verify } from "./commands/verify.ts";
import { CliError, describeError, EXIT, exitCodeOf } from "./common.ts";
import { didYouMean } from "./suggest.ts";

// biome-ignore lint/suspicious/noExplicitAny: citty's command table is heterogeneous
const COMMANDS: Record<string, CommandDef<any>> = {
  keygen,
  serve,
  chat,
  send,
  listen,
  room,
  status,
  clients,
  revoke,
  fingerprint: fingerprintCommand,
  verify,
  e2e: e2eCommand,
  migrate,
};

const main: CommandDef = {
  meta: {
    name: "backbone",
    version: VERSION,
    description: "Secure client-to-client messaging: keygen, serve, chat.",
  },
  subCommands: COMMANDS,
};

async function usage(name?: string): Promise<string> {
  if (!name) {
    const lines = [
      `backbone ${VERSION} — secure client-to-client messaging (${PROTOCOL})`,
      "",
      "Usage: backbone <command> [options]",
      "",
      "Commands:",
    ];
    for (const [cmdName, cmd] of Object.entries(COMMANDS)) {
      const meta = (await cmd.meta) as { description?: string } | undefined;
      lines.push(`  ${cmdName.padEnd(12)} ${meta?.description ?? ""}`);
    }
    lines.push(
      "  help [cmd]   Show help for a command",
      "",
      "Run `backbone <command> --help` for a command's options.",
      "Getting started: backbone keygen --name alice; backbone keygen --name bob; backbone serve; backbone chat bob --identity alice.identity",
    );
    return lines.join("\n");
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw unknownCommand(name);
  const text = await renderUsage(cmd, main);
  // citty colours its usage whatever the output is: keep escapes off pipes and files.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing terminal escapes
  return process.stdout.isTTY ? text : text.replace(/\x1b\[[0-9;]*m/g, "").replace(/ +$/gm, "");
}

/** `unknown command "sned"; did you mean send?` — for every command, and help/version. */
function unknownCommand(name: string): CliError {
  const hint = didYouMean(name, [...Object.keys(COMMANDS), "help", "version"]);
  return new CliError(
    `unknown command "${escapeControls(name)}"${hint ? `; ${hint}` : ""} (see \`backbone help\`)`,
    EXIT.USAGE,
  );
}

async function run(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  // No command at all is a usage error (exit 2, the page on stderr); asking for help is not.
  if (first === undefined) {
    process.stderr.write(`${await usage()}\n`);
    return EXIT.USAGE;
  }
  if (first === "help" || first === "--help" || first === "-h") {
    process.stdout.write(`${await usage(first === "help" ? rest[0] : undefined)}\n`);
    return EXIT.OK;
  }
  if (first === "--version" || first === "-V" || first === "version") {
    process.stdout.write(`backbone ${VERSION} (${PROTOCOL})\n`);
    return EXIT.OK;
  }
  const cmd = COMMANDS[first];
  if (!cmd) throw unknownCommand(first);
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${await usage(first)}\n`);
    return EXIT.OK;
  }
  await checkArgs(cmd, rest, first);
  const { result } = await runCommand(cmd, { rawArgs: rest });
  return typeof result === "number" ? result : EXIT.OK;
}

let code: number;
try {
  code = await run(process.argv.slice(2));
} catch (err) {
  for (const line of describeError(err)) process.stderr.write(`backbone: ${line}\n`);
  code = exitCodeOf(err);
}
// Exit now, even if stdin is still open (chat cut off while reading a pipe), once
// everything written has been flushed.
await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
await new Promise<void>((resolve) => process.stderr.write("", () => resolve()));
process.exit(code);
