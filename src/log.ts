/**
 * Structured logs: one line per event, human-readable text by default or JSON on
 * request, to stderr (stdout stays for a program's own output).
 *
 * Every event name, field name and string value goes through `escapeControls`
 * (src/text/escape.ts) here, in both formats, so nothing a client controls (a STOP
 * reason, a name, an error text) can put C0/C1 controls, U+2028/U+2029 or bidi
 * controls into a log line, whichever call site logs it.
 */
import { escapeControls } from "./text/escape.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, string | number | boolean | null | undefined>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  format?: "text" | "json";
  level?: LogLevel;
  /** Where lines go; stderr by default. */
  write?: (line: string) => void;
}

/** A logger whose format and level can change while it runs (on a config reload). */
export class StructuredLogger implements Logger {
  format: "text" | "json";
  level: LogLevel;
  readonly #write: (line: string) => void;

  constructor(opts: LoggerOptions = {}) {
    this.format = opts.format ?? "text";
    this.level = opts.level ?? "info";
    this.#write = opts.write ?? ((line) => process.stderr.write(line));
  }

  debug(event: string, fields?: LogFields): void {
    this.#log("debug", event, fields);
  }
  info(event: string, fields?: LogFields): void {
    this.#log("info", event, fields);
  }
  warn(event: string, fields?: LogFields): void {
    this.#log("warn", event, fields);
  }
  error(event: string, fields?: LogFields): void {
    this.#log("error", event, fields);
  }

  #log(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (ORDER[level] < ORDER[this.level]) return;
    const time = new Date().toISOString();
    const name = escapeControls(event);
    if (this.format === "json") {
      const safe: Record<string, unknown> = { time, level, event: name };
      for (const [k, v] of Object.entries(fields)) {
        safe[escapeControls(k)] = typeof v === "string" ? escapeControls(v) : v;
      }
      this.#write(`${JSON.stringify(safe)}\n`);
      return;
    }
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${name}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const text = escapeControls(String(v));
      line += ` ${escapeControls(k)}=${/[\s"=]/.test(text) || text === "" ? JSON.stringify(text) : text}`;
    }
    this.#write(`${line}\n`);
  }
}

/** A logger that drops everything (library default). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
