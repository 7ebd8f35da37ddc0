import { isIP } from "node:net";
import { formatHostPort } from "../client/address.ts";
import { UsageError } from "../errors.ts";

/**
 * The one-line `UsageError` `LISTEN_FAILED` for a failed bind(2): the port taken
 * (EADDRINUSE), a privileged port (EACCES), an address not on this machine
 * (EADDRNOTAVAIL) or a host name that does not resolve. The errno code stays on `cause`.
 */
export function listenError(host: string, port: number, cause: unknown): UsageError {
  const code = (cause as { code?: string }).code;
  const where = `cannot listen on ${formatHostPort(host, port)}`;
  const why =
    code === "EADDRINUSE"
      ? `port ${port} is already in use (another backbone server or another program holds it)`
      : code === "EACCES"
        ? `permission denied (ports below 1024 need privileges)`
        : code === "EADDRNOTAVAIL"
          ? `${host} is not an address of this machine`
          : code === undefined && isIP(host) === 0
            ? `${host} does not resolve to an address of this machine`
            : (code ?? (cause as Error)?.message ?? String(cause));
  return new UsageError("LISTEN_FAILED", `${where}: ${why}`, { cause });
}
