/**
 * Tools for resource-attack tests: raw TCP connections from a chosen loopback source
 * address (Linux routes all of 127.0.0.0/8 to loopback, so binding 127.A.B.C puts a
 * connection in the /24 `127.A.B.0` — the server's source prefix), and a counter of
 * the server's RSA decryptions.
 */
import net from "node:net";
import type { RsaPrivateKey } from "../../src/crypto/rsa.ts";

/** A 2048-bit server and 2048-bit client: 256 (OAEP) + 16 (ID) + 256 (signature) + 16 (tag). */
export const RESPONSE_BYTES = 544;

/** Counts the server's RSA decryptions (one per handshake response it works on). */
export function countDecrypts(key: RsaPrivateKey): { count: number; [Symbol.dispose](): void } {
  const original = key.decrypt;
  const counter = {
    count: 0,
    [Symbol.dispose]() {
      key.decrypt = original;
    },
  };
  key.decrypt = function (this: RsaPrivateKey, block: Uint8Array) {
    counter.count++;
    return original.call(this, block);
  };
  return counter;
}

/** A raw TCP connection from `localAddress` that records what it received and its close. */
export interface Dialed {
  sock: net.Socket;
  bytes: number;
  closed: boolean;
}

/**
 * Connects to 127.0.0.1:`port` from the source address `localAddress` (any 127.x.y.z).
 * Resolves once connected; the socket is the caller's to destroy.
 */
export function dialFrom(port: number, localAddress: string): Promise<Dialed> {
  return new Promise((resolve, reject) => {
    const d: Dialed = {
      sock: net.connect({ host: "127.0.0.1", port, localAddress }),
      bytes: 0,
      closed: false,
    };
    d.sock.on("data", (chunk) => (d.bytes += chunk.length));
    d.sock.on("close", () => (d.closed = true));
    d.sock.on("error", () => {});
    d.sock.once("connect", () => resolve(d));
    d.sock.once("error", reject);
  });
}
