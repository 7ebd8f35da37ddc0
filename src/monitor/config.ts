/**
 * The monitor's address and access rule: `serve --monitor HOST:PORT` (or `monitor` in
 * the config file) with an optional bearer token read from `--monitor-token-file`.
 *
 * A monitor on a loopback address may run without a token; on any other address it
 * must have one, and every request without it is answered 401 (docs/SECURITY.md
 * § Monitoring port).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { formatHostPort } from "../client/address.ts";
import { readSecretFile } from "../crypto/keyfile.ts";
import { UsageError } from "../errors.ts";

/** A token shorter than this is refused: it would be guessable over the network. */
export const MIN_TOKEN_LENGTH = 16;

export interface MonitorConfig {
  host: string;
  /** 0 picks a free port (the real one is printed at start). */
  port: number;
  /** Bearer token, or null (loopback only). */
  token: string | null;
}

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT` or a bare `PORT` (then on 127.0.0.1). Throws
 * `UsageError` `BAD_MONITOR`.
 */
export function parseMonitorAddress(text: string): { host: string; port: number } {
  const t = text.trim();
  const m = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):)?(\d{1,5})$/.exec(t);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(
      "BAD_MONITOR",
      `invalid monitor address ${JSON.stringify(text)} (expected HOST:PORT, e.g. 127.0.0.1:8222)`,
    );
  }
  return { host: m[1] ?? m[2] ?? "127.0.0.1", port };
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return (
    h === "localhost" ||
    h === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
  );
}

/**
 * The monitor's configuration from the `monitor` and `monitor_token_file` settings.
 * Throws `UsageError` `MONITOR_NO_TOKEN` for a non-loopback address without a token,
 * `MONITOR_TOKEN` for a token file that is unreadable, too open (like a private key:
 * mode 0600) or too short; `KeyError` from reading it.
 */
export function monitorConfig(address: string, tokenFile: string | undefined): MonitorConfig {
  const { host, port } = parseMonitorAddress(address);
  let token: string | null = null;
  if (tokenFile !== undefined) {
    token = readSecretFile(tokenFile).trim();
    if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
      throw new UsageError(
        "MONITOR_TOKEN",
        `the monitor token in ${tokenFile} must be one word of at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32 > ${tokenFile})`,
      );
    }
  }
  if (!token && !isLoopback(host)) {
    throw new UsageError(
      "MONITOR_NO_TOKEN",
      `refusing to serve the monitor on non-loopback ${formatHostPort(host, port)} without a token (set --monitor-token-file, or use 127.0.0.1)`,
    );
  }
  return { host, port, token };
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * A check of the `Authorization` header against `token`: `Bearer TOKEN`, or HTTP Basic
 * with TOKEN as the password (any user name), so a browser can open the page
 * (RFC 6750 § 2.1, RFC 7617). Compared in constant time.
 */
export function tokenCheck(token: string | null): (authorization: string | null) => boolean {
  if (token === null) return () => true;
  const want = digest(token);
  return (authorization) => {
    if (!authorization) return false;
    const [scheme = "", value = ""] = authorization.trim().split(/\s+/, 2);
    let given: string;
    if (scheme.toLowerCase() === "bearer") given = value;
    else if (scheme.toLowerCase() === "basic") {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      given = decoded.slice(decoded.indexOf(":") + 1);
    } else return false;
    return timingSafeEqual(digest(given), want);
  };
}
