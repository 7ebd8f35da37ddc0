/**
 * Out of file descriptors (docs/SECURITY.md § Resources), with the real binary under
 * `ulimit -n 64`: 150 idle connections must not make the server spin in failed
 * accept() calls (the old server burnt 100% of a core, ~43,000 accept4 calls a second,
 * and logged nothing). It stops listening short of the limit, says so once, listens
 * again when connections close, and logins then work. It logs its descriptor limit at
 * start (raised to the hard limit when that is higher). A connection reset before the
 * server accepted it logs nothing above debug.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";
import { cleanupAll, EXIT, sandbox } from "../helpers/binary.ts";
import { until } from "../helpers/cluster.ts";

afterEach(cleanupAll);

/** CPU time (user + system) of a process so far, in clock ticks (1/100 s). */
function cpuTicks(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1] as string).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of proc(5))
}

/** Opens up to `n` idle TCP connections; those refused (the server stopped listening) are counted. */
async function idle(port: number, n: number): Promise<{ open: Socket[]; refused: number }> {
  const open: Socket[] = [];
  let refused = 0;
  for (let i = 0; i < n; i++) {
    try {
      open.push(
        await Bun.connect({
          hostname: "127.0.0.1",
          port,
          socket: { data() {}, error() {}, close() {} },
        }),
      );
    } catch {
      refused++;
    }
  }
  return { open, refused };
}

test.skipIf(process.platform !== "linux")(
  "ulimit -n 64 and 150 idle connections: no spin, one log line, logins work once they close",
  async () => {
    await using sb = await sandbox();
    const server = await sb.serve([], { shell: "ulimit -n 64" });
    await sb.keygen("alice", server.address);
    await server.proc.waitFor(/file descriptor limit soft=64 hard=64 open=\d+/, "stderr");

    const { open } = await idle(server.port, 150);
    await server.proc.waitFor(/WARN +out of file descriptors: not accepting connections/, "stderr");
    // A window of 2 s: the old server used ~200 ticks in it (a whole core).
    const before = cpuTicks(server.proc.pid);
    await Bun.sleep(2000);
    const used = cpuTicks(server.proc.pid) - before;
    console.log(
      `descriptors: ${open.length} idle connections held; server CPU ${used} ticks in 2 s`,
    );
    expect(used).toBeLessThan(30);
    const warnings = server.proc.lines.stderr.filter((l) => /out of file descriptors/.test(l));
    expect(warnings).toHaveLength(1);

    for (const s of open) s.end();
    await server.proc.waitFor(/INFO +accepting connections again/, "stderr", 10_000);
    const r = await sb.run(["send", "--identity", "alice.identity", "alice", "back to normal"]);
    expect(r.code).toBe(EXIT.OK);
    expect(server.proc.text("stderr")).not.toMatch(/ERROR|internal error/);
  },
  60_000,
);

test.skipIf(process.platform !== "linux")(
  "the soft limit is raised to the hard limit at start, and the figure logged",
  async () => {
    await using sb = await sandbox();
    const server = await sb.serve([], { shell: "ulimit -S -n 64; ulimit -H -n 4096" });
    await server.proc.waitFor(/file descriptor limit soft=4096 hard=4096/, "stderr");
    const limits = readFileSync(`/proc/${server.proc.pid}/limits`, "utf8");
    expect(limits).toMatch(/Max open files\s+4096\s+4096/);
  },
);

test.skipIf(process.platform !== "linux")(
  "20 connections reset before they were accepted: nothing logged above debug",
  async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    await sb.keygen("alice", server.address);
    const linesBefore = server.proc.lines.stderr.length;
    // Frozen, the server cannot accept: the kernel completes the 20 connections, each
    // is then reset (SO_LINGER 0), and the server accepts dead sockets when it thaws.
    server.proc.kill("SIGSTOP");
    try {
      const py = Bun.spawnSync([
        "python3",
        "-c",
        `import socket, struct
for _ in range(20):
    s = socket.create_connection(("127.0.0.1", ${server.port}))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()`,
      ]);
      expect(py.exitCode).toBe(0);
    } finally {
      server.proc.kill("SIGCONT");
    }
    // A login afterwards proves the server went through its backlog.
    const r = await sb.run(["send", "--identity", "alice.identity", "alice", "after the resets"]);
    expect(r.code).toBe(EXIT.OK);
    await until(() => server.proc.lines.stderr.length > linesBefore, 5000, "the login logged");
    const after = server.proc.lines.stderr.slice(linesBefore);
    expect(after.filter((l) => /\b(WARN|ERROR)\b/.test(l))).toEqual([]);
  },
);

test.skipIf(process.platform !== "linux")(
  "descriptors the server does not count (EMFILE with no connection): it pauses too, once, and resumes",
  async () => {
    const script = join(import.meta.dir, "..", "helpers", "fd-exhaust.ts");
    const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
    const [code, out, err] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    const r = JSON.parse(out);
    expect(r).toMatchObject({
      before: null,
      out: "pause",
      stillOut: null,
      after: "resume",
      paused: false,
    });
    const events = r.log.map((l: { event: string }) => l.event);
    expect(events).toEqual([
      "file descriptor limit",
      "out of file descriptors: not accepting connections until one closes",
      "accepting connections again",
    ]);
    expect(r.log[1]).toMatchObject({ level: "warn", error: "EMFILE" });
  },
);
