/** `serve`: its one line of output, one server per data directory, and signals. */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cleanupAll,
  EXIT,
  expectError,
  keysPublished,
  type Running,
  sandbox,
} from "../helpers/binary.ts";

afterEach(cleanupAll);
setDefaultTimeout(20_000);

/** The server's JSON log lines (`--log-format json`) so far. */
function events(server: Running): Record<string, unknown>[] {
  return server.lines.stderr.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Waits for the `n`-th JSON log event named `event` matching `fields`. */
function waitForEvent(
  server: Running,
  event: string,
  fields: (e: Record<string, unknown>) => boolean = () => true,
  n = 1,
): Promise<Record<string, unknown>> {
  return server.until(() => {
    const found = events(server).filter((e) => e.event === event && fields(e));
    return found[n - 1];
  }, `log event "${event}" #${n}`);
}

describe("serve", () => {
  test("prints one line with its address and the server key's fingerprint", async () => {
    await using sb = await sandbox({ fresh: true });
    const server = await sb.serve();
    expect(server.port).toBeGreaterThan(0);
    // The key it created is the one `fingerprint` shows for the data directory.
    const fp = await sb.run(["fingerprint"]);
    expect(fp).toEqual({
      code: EXIT.OK,
      stdout: `${server.fingerprint} ${join(sb.data, "server.pub")} (RSA 3072)\n`,
      stderr: "",
    });
    expect(server.proc.text("stderr")).toMatch(/INFO +server key created fingerprint=SHA256:/);

    server.proc.kill("SIGTERM");
    expect(await server.proc.exit()).toBe(EXIT.OK);
    // Everything else went to the log on stderr.
    expect(server.proc.lines.stdout).toEqual([
      `listening on ${server.address} (server key ${server.fingerprint})`,
    ]);
    expect(server.proc.text("stderr")).toMatch(/INFO +shutting down signal=SIGTERM$/m);
    expect(server.proc.text("stderr")).toMatch(/INFO +stopped /m);
  });

  test("refuses a second server on the same data directory, until the first has stopped", async () => {
    await using sb = await sandbox();
    const first = await sb.serve();
    expectError(
      await sb.run(["serve", "--port", "0", "--host", "127.0.0.1"]),
      EXIT.USAGE,
      new RegExp(`another server \\(pid ${first.proc.pid}\\) is already running on ${sb.data}$`),
    );
    first.proc.kill("SIGINT");
    expect(await first.proc.exit()).toBe(EXIT.OK);
    expect(first.proc.text("stderr")).toMatch(/shutting down signal=SIGINT/);
    // Same key, a new port.
    const second = await sb.serve();
    expect(second.fingerprint).toBe(first.fingerprint);
  });

  test("SIGTERM disconnects clients and exits 0", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    await sb.keygen("alice", server.address);
    const listen = sb.start(["listen", "--identity", "alice.identity"]);
    await server.proc.waitFor(/INFO +connect .*name=alice/, "stderr");
    server.proc.kill("SIGTERM");
    expect(await server.proc.exit()).toBe(EXIT.OK);
    expect(server.proc.text("stderr")).toMatch(/shutting down signal=SIGTERM/);
    // The listener is told and keeps trying to reconnect.
    await listen.waitFor(/connection lost \(.*\); reconnecting/, "stderr");
  });

  test("SIGHUP reloads the config file and pushes changed settings to connected clients", async () => {
    await using sb = await sandbox();
    const server = await sb.serve(["--log-format", "json"]);
    expect(await waitForEvent(server.proc, "listening")).toMatchObject({
      level: "info",
      port: server.port,
    });
    const aliceId = /id: +(\S+)/.exec(
      (await sb.keygen("alice", server.address)).stdout,
    )?.[1] as string;
    await sb.keygen("bob", server.address);
    const listen = sb.start(["listen", "--json", "--identity", "alice.identity"]);
    const chat = sb.start(["chat", "alice", "--identity", "bob.identity"]);
    await waitForEvent(server.proc, "connect", (e) => e.name === "alice");
    await waitForEvent(server.proc, "connect", (e) => e.name === "bob");
    // alice's E2E keys are out, so bob's message below goes end to end without a warning.
    await keysPublished(sb, aliceId);

    // DIR/config.toml did not exist when the server started.
    writeFileSync(join(sb.data, "config.toml"), "heartbeat_interval = 5\nheartbeat_timeout = 20\n");
    server.proc.kill("SIGHUP");
    const reloaded = await waitForEvent(server.proc, "settings reloaded");
    expect(reloaded).toMatchObject({ level: "info", pushed: 2 });

    // Unchanged settings: nothing to push.
    server.proc.kill("SIGHUP");
    expect(await waitForEvent(server.proc, "settings reloaded", undefined, 2)).toMatchObject({
      pushed: 0,
    });

    // A broken file is reported and the running settings are kept.
    writeFileSync(join(sb.data, "config.toml"), "heartbeat_interval = \n");
    server.proc.kill("SIGHUP");
    const failed = await waitForEvent(server.proc, "reload failed; keeping the running settings");
    expect(failed).toMatchObject({ level: "error" });
    expect(String(failed.error)).toContain("config.toml");

    // Clients took the new settings in their stride: a message still goes through.
    chat.write("still here");
    const line = await listen.waitFor(/"data":"still here"/);
    expect(JSON.parse(line.input)).toMatchObject({ name: "bob", kind: "direct" });
    expect(listen.text("stderr")).toBe("");
    expect(chat.text("stderr")).toBe("");
  });
});
