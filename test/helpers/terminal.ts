/**
 * A real pseudo-terminal for tests: tmux runs the compiled binary in a detached
 * session on its own socket (in the sandbox, so it goes with it); keys go in with
 * `send-keys`, pastes with `paste-buffer -p` (bracketed when the program asked for
 * it, as a terminal does), the screen comes back with `capture-pane`.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, type Sandbox, WAIT_MS } from "./binary.ts";

export const TMUX = Bun.which("tmux");
let sessions = 0;

export interface TerminalOptions {
  columns?: number;
  rows?: number;
  /** Standard input from a pipe that stays open (output still to the terminal). */
  pipeStdin?: boolean;
}

export class Terminal implements Disposable {
  readonly socket: string;
  readonly #conf: string;
  readonly #env: Record<string, string>;
  /** Where the shell around the command writes its exit status. */
  readonly #status: string;

  constructor(sb: Sandbox, command: string[], opts: TerminalOptions = {}) {
    this.socket = join(sb.dir, `tmux-${++sessions}.sock`);
    // No user configuration; keep the pane (and its exit status) when the command ends;
    // let programs set the clipboard (OSC 52) and the title, so a test can see they did not.
    this.#conf = join(sb.dir, `tmux-${sessions}.conf`);
    writeFileSync(
      this.#conf,
      "set -g remain-on-exit on\nset -g history-limit 2000\nset -g set-clipboard on\nset -g allow-rename on\n",
    );
    const { TMUX: _outer, ...env } = sb.env;
    this.#env = env;
    const quoted = [BINARY, ...command].map((w) => `'${w}'`).join(" ");
    // The exit status through a file: tmux 3.3 can leave a dead pane's process
    // unreaped (a zombie, no #{pane_dead_status}) for seconds on a busy machine.
    this.#status = join(sb.dir, `tmux-${sessions}.status`);
    const cols = String(opts.columns ?? 120);
    const rows = String(opts.rows ?? 30);
    const run = `${opts.pipeStdin ? "sleep 600 | " : ""}${quoted}; echo $? > '${this.#status}.tmp' && mv '${this.#status}.tmp' '${this.#status}'`;
    this.#tmux("new-session", "-d", "-x", cols, "-y", rows, "-c", sb.dir, run);
  }

  #tmux(...args: string[]): string {
    const r = Bun.spawnSync([TMUX as string, "-S", this.socket, "-f", this.#conf, ...args], {
      env: this.#env,
      stdout: "pipe",
      stderr: "pipe",
    });
    if (r.exitCode !== 0) throw new Error(`tmux ${args[0]} failed: ${r.stderr.toString()}`);
    return r.stdout.toString();
  }

  /** Types `keys` (tmux key names: "Enter", "C-d" …; anything else literally). */
  keys(...keys: string[]): void {
    this.#tmux("send-keys", ...keys);
  }

  /** Types `text` literally (no key names). */
  typeText(text: string): void {
    this.#tmux("send-keys", "-l", text);
  }

  /** Types a line and presses Enter. */
  type(line: string): void {
    this.#tmux("send-keys", "-l", line);
    this.#tmux("send-keys", "Enter");
  }

  /** Pastes `text` as a terminal does (bracketed if the program turned that on). */
  paste(text: string): void {
    this.#tmux("set-buffer", "-b", "test-paste", "--", text);
    this.#tmux("paste-buffer", "-p", "-d", "-b", "test-paste");
  }

  /** Resizes the terminal (the program gets SIGWINCH). */
  resize(columns: number, rows?: number): void {
    this.#tmux("resize-window", "-x", String(columns), ...(rows ? ["-y", String(rows)] : []));
  }

  /** A tmux format for the pane, e.g. "#{pane_title}". */
  format(fmt: string): string {
    return this.#tmux("display-message", "-p", fmt).trimEnd();
  }

  /** Names of tmux's paste buffers (OSC 52 from the program would add one). */
  buffers(): string[] {
    return this.#tmux("list-buffers", "-F", "#{buffer_name}").split("\n").filter(Boolean);
  }

  /** The screen's lines (with `history`, the scrollback too), trailing blank lines dropped. */
  screen(history = false): string[] {
    const lines = this.#tmux("capture-pane", "-p", ...(history ? ["-S", "-"] : []))
      .split("\n")
      .map((l) => l.trimEnd());
    while (lines.length > 0 && lines.at(-1) === "") lines.pop();
    return lines;
  }

  /** Waits until `test` holds for the screen (polled: a terminal has no line events). */
  async until(
    test: (lines: string[]) => boolean,
    what: string,
    timeoutMs = WAIT_MS,
  ): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.screen();
      if (test(lines)) return lines;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; the screen:\n${lines.join("\n")}`);
      await Bun.sleep(50);
    }
  }

  /** Waits for a line matching `re`; returns the screen and the line's index. */
  async waitFor(re: RegExp, timeoutMs = WAIT_MS): Promise<{ lines: string[]; at: number }> {
    const lines = await this.until((l) => l.some((x) => re.test(x)), String(re), timeoutMs);
    return { lines, at: lines.findLastIndex((x) => re.test(x)) };
  }

  /** Whether the command has ended. */
  dead(): boolean {
    return existsSync(this.#status);
  }

  /** The exit status once the command has ended. */
  async exitStatus(timeoutMs = 15_000): Promise<number> {
    await this.until(() => this.dead(), "the command to exit", timeoutMs);
    return Number(readFileSync(this.#status, "utf8").trim());
  }

  [Symbol.dispose](): void {
    try {
      this.#tmux("kill-server");
    } catch {
      // already gone
    }
  }
}
