/**
 * The few error classes of backbone. Each carries a stable `code` that programs can
 * switch on; the message is one human-readable line. Causes are passed through.
 */

/** Base class of every error backbone throws on purpose. */
export class BackboneError extends Error {
  override name = "BackboneError";
  /** Stable, machine-readable code such as `FRAME_TOO_LARGE`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Malformed bytes on the wire: bad frame size, truncated or unknown message. */
export class WireError extends BackboneError {
  override name = "WireError";
}

/** Key material that cannot be used: bad PEM, wrong size, unsafe file permissions. */
export class KeyError extends BackboneError {
  override name = "KeyError";
}

/** The stages of the backbone/1 handshake, used to label every handshake failure. */
export type HandshakeStage =
  | "challenge" // reading or checking the server's challenge
  | "pinning" // the server key differs from the pinned one
  | "key-exchange" // X25519 / OAEP / HKDF
  | "response" // reading or checking the client's response
  | "authentication" // client ID or signature rejected
  | "config" // the first CONFIG did not arrive or did not open
  | "timeout";

/**
 * A handshake failed. `stage` says where; no peer-chosen detail is echoed in the
 * message. On the server, `reply` (when set) is the frame payload to send before
 * closing (STOP `authentication failed`).
 */
export class HandshakeError extends BackboneError {
  override name = "HandshakeError";
  readonly stage: HandshakeStage;
  reply?: Uint8Array;
  /** The client ID claimed in the response, once known (for logs only, never echoed). */
  clientId?: string;
  constructor(
    stage: HandshakeStage,
    code: string,
    message: string,
    options?: { cause?: unknown; reply?: Uint8Array },
  ) {
    super(code, message, options);
    this.stage = stage;
    if (options?.reply) this.reply = options.reply;
  }
}

/** The server's key is not the pinned one (possible man in the middle). */
export class PinningError extends HandshakeError {
  override name = "PinningError";
  readonly expected: string;
  readonly received: string;
  constructor(expected: string, received: string) {
    super(
      "pinning",
      "SERVER_KEY_MISMATCH",
      `server key mismatch: expected ${expected}, received ${received} (possible man-in-the-middle)`,
    );
    this.expected = expected;
    this.received = received;
  }
}

/** A session-level failure: closed connection, STOP from the peer, timeout. */
export class ConnectionError extends BackboneError {
  override name = "ConnectionError";
}

/** Invalid settings, arguments or files given by the user. */
export class UsageError extends BackboneError {
  override name = "UsageError";
}

/** The registry or offline queue refused or failed an operation. */
export class StoreError extends BackboneError {
  override name = "StoreError";
}

const ERRNO: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  EEXIST: "already exists",
  ENOSPC: "no space left (the disk is full)",
  EROFS: "read-only file system",
};

/** A file-system error in a few words (`no such file`, `permission denied` …). */
export function describeErrno(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (code) return ERRNO[code] ?? code;
  return cause instanceof Error ? cause.message : String(cause);
}
