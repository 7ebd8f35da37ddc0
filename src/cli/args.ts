/**
 * Strict argument checking on top of citty (which ignores unknown flags): an unknown
 * or misspelt option, a missing value or a stray argument is a usage error, as in
 * any careful CLI.
 */
import type { ArgDef, CommandDef } from "citty";
import { escapeControls } from "../text/escape.ts";
import { CliError, EXIT } from "./common.ts";
import { didYouMean } from "./suggest.ts";

/** Commands whose last positional takes every remaining word (`send ID words…`). */
const VARIADIC = new Set(["send", "room"]);

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

// biome-ignore lint/suspicious/noExplicitAny: any citty command
export async function checkArgs(cmd: CommandDef<any>, raw: string[], name: string): Promise<void> {
  const defs = ((await cmd.args) ?? {}) as Record<string, ArgDef>;
  const flags = new Map<string, ArgDef>();
  for (const [key, def] of Object.entries(defs)) {
    if (def.type === "positional") continue;
    flags.set(kebab(key), def);
    const aliases = "alias" in def && def.alias ? ([] as string[]).concat(def.alias) : [];
    for (const a of aliases) flags.set(a, def);
    if (def.type === "boolean") flags.set(`no-${kebab(key)}`, def);
  }
  const positionals = Object.values(defs).filter((d) => d.type === "positional");
  let words = 0;
  const given = new Set<ArgDef>();
  for (let i = 0; i < raw.length; i++) {
    const arg = raw[i] as string;
    if (arg === "--") {
      words += raw.length - i - 1;
      break;
    }
    if (arg.startsWith("-") && arg !== "-") {
      const [flag = "", value] = arg.replace(/^--?/, "").split(/=(.*)/s, 2);
      const def = flags.get(flag);
      if (def) given.add(def);
      if (!def) {
        const known = [...flags.keys()].filter((f) => f.length > 1 && !f.startsWith("no-"));
        const hint = didYouMean(flag, [...known, "help"], "--");
        throw new CliError(
          `${name}: unknown option ${escapeControls(arg.split("=")[0] ?? "")}${hint ? `; ${hint}` : ""} (see \`backbone ${name} --help\`)`,
          EXIT.USAGE,
        );
      }
      if (def.type === "string" || def.type === "enum") {
        const v = value ?? raw[++i];
        if (v === undefined)
          throw new CliError(`${name}: option --${flag} needs a value`, EXIT.USAGE);
        if (def.type === "enum" && def.options && !def.options.includes(v)) {
          throw new CliError(
            `${name}: --${flag} must be one of ${def.options.join(", ")}`,
            EXIT.USAGE,
          );
        }
      }
      continue;
    }
    words++;
  }
  const required = positionals.filter((d) => d.required).length;
  if (words < required) {
    const missing = Object.entries(defs).filter(([, d]) => d.type === "positional" && d.required)[
      words
    ]?.[0];
    throw new CliError(
      `${name}: missing argument <${missing}> (see \`backbone ${name} --help\`)`,
      EXIT.USAGE,
    );
  }
  // A required option (`migrate --from/--to`): the same one line, exit 2.
  for (const [key, def] of Object.entries(defs)) {
    if (def.type === "positional" || !def.required || given.has(def)) continue;
    throw new CliError(
      `${name}: missing option --${kebab(key)} (see \`backbone ${name} --help\`)`,
      EXIT.USAGE,
    );
  }
  if (words > positionals.length && !VARIADIC.has(name)) {
    throw new CliError(`${name}: too many arguments (see \`backbone ${name} --help\`)`, EXIT.USAGE);
  }
}
