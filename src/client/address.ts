/** `host:port` addresses, IPv6 in brackets (`[::1]:7447`). */
import { UsageError } from "../errors.ts";
import { DEFAULT_PORT } from "../wire/constants.ts";

/** Parses `host[:port]`; the port defaults to 7447. Throws `UsageError` `BAD_ADDRESS`. */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2];
  const port = m?.[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(
      "BAD_ADDRESS",
      `invalid server address ${JSON.stringify(text)} (expected HOST:PORT)`,
    );
  }
  return { host, port };
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
