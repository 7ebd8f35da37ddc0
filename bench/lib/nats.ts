/**
 * nats-server for the side-by-side runs: installed from Debian's package when missing,
 * started on 127.0.0.1 plaintext or with TLS (a self-signed certificate from openssl).
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Spawned, spawn } from "./proc.ts";

/** The nats-server binary, installing the Debian package if needed. Null if impossible. */
export function natsServerBinary(): string | null {
  const found =
    Bun.which("nats-server") ??
    (existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : null);
  if (found) return found;
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  console.log("installing nats-server (apt-get)…");
  const update = Bun.spawnSync([...sudo, "apt-get", "update", "-qq"], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const install = Bun.spawnSync([...sudo, "apt-get", "install", "-y", "-qq", "nats-server"], {
    stdout: "ignore",
    stderr: "ignore",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (update.exitCode !== 0 || install.exitCode !== 0) return null;
  return (
    Bun.which("nats-server") ??
    (existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : null)
  );
}

/** A self-signed certificate for 127.0.0.1 / localhost; returns the paths. */
export function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, "nats.crt");
  const key = join(dir, "nats.key");
  const r = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  return { cert, key };
}

export interface NatsServer {
  server: Spawned;
  port: number;
}

/** A port nothing listens on now (the kernel's choice for port 0). */
async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/**
 * Starts nats-server on a free port, plaintext or with TLS. A port taken between the
 * choice and the start (another program on a busy machine) is tried again, three times.
 */
export async function startNats(
  bin: string,
  dir: string,
  tls: { cert: string; key: string } | null,
): Promise<NatsServer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const conf = join(dir, `nats-${tls ? "tls" : "plain"}.conf`);
    const lines = [
      `listen: 127.0.0.1:${port}`,
      "max_payload: 1MB",
      "max_pending: 256MB",
      "write_deadline: 30s",
    ];
    if (tls) lines.push(`tls { cert_file: "${tls.cert}"\n key_file: "${tls.key}" }`);
    writeFileSync(conf, `${lines.join("\n")}\n`);
    const server = spawn([bin, "-c", conf, "-a", "127.0.0.1"]);
    // nats-server logs to stderr; wait until the port accepts connections (10 s at most).
    for (let i = 0; i < 200 && server.proc.exitCode === null; i++) {
      try {
        const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
        s.end();
        return { server, port };
      } catch {
        await Bun.sleep(50);
      }
    }
    await server.kill();
  }
  throw new Error("nats-server did not start (three ports tried)");
}
