/**
 * A command on a real pseudo-terminal: one tmux server on its own socket (in the
 * sandbox), running the binary in a detached 120×30 pane. Needs tmux (CI installs it).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, type Sandbox, WAIT_MS } from "./binary.ts";

export const TMUX = Bun.which("tmux");
let panes = 0;

export class Terminal implements Disposable {
  readonly #socket: string;
  readonly #conf: string;
  readonly #env: Record<string, string>;

  constructor(sb: Sandbox, command: string[]) {
    this.#socket = join(sb.dir, `tmux-s${++panes}.sock`);
    this.#conf = join(sb.dir, `tmux-s${panes}.conf`);
    writeFileSync(this.#conf, "set -g remain-on-exit on\nset -g history-limit 2000\n");
    const { TMUX: _outer, ...env } = sb.env;
    this.#env = env;
    const quoted = [BINARY, ...command].map((w) => `'${w}'`).join(" ");
    this.#tmux("new-session", "-d", "-x", "120", "-y", "30", "-c", sb.dir, `exec ${quoted}`);
  }

  #tmux(...args: string[]): string {
    const r = Bun.spawnSync([TMUX as string, "-S", this.#socket, "-f", this.#conf, ...args], {
      env: this.#env,
      stdout: "pipe",
      stderr: "pipe",
    });
    if (r.exitCode !== 0) throw new Error(`tmux ${args[0]} failed: ${r.stderr.toString()}`);
    return r.stdout.toString();
  }

  /** The screen's lines, trailing blanks dropped. */
  screen(): string[] {
    return this.#tmux("capture-pane", "-p")
      .split("\n")
      .map((l) => l.trimEnd());
  }

  /** True while the command runs. */
  alive(): boolean {
    return this.#tmux("list-panes", "-F", "#{pane_dead}").trim() === "0";
  }

  /** Waits for a line matching `re` on the screen. */
  async waitFor(re: RegExp, timeoutMs = WAIT_MS): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.screen();
      if (lines.some((l) => re.test(l))) return lines;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${re}; the screen:\n${lines.join("\n")}`);
      await Bun.sleep(50);
    }
  }

  [Symbol.dispose](): void {
    try {
      this.#tmux("kill-server");
    } catch {
      // already gone
    }
  }
}
