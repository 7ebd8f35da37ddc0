/**
 * The one error class of the end-to-end layer. `code` is stable; the message is one
 * line and never echoes peer-chosen bytes.
 *
 * Codes: `MALFORMED` (bytes that do not parse), `BAD_KEY` (a malformed or low-order
 * key), `BAD_SIGNATURE`, `UNKNOWN_PREKEY` (a prekey we no longer hold),
 * `TOO_MANY_SKIPPED` (a header beyond MAX_SKIP), `DUPLICATE` (a message already
 * decrypted: a replay or a re-delivery), `DECRYPT_FAILED` (authentication failed:
 * wrong keys, wrong associated data or tampering), `NO_SESSION`, `TOO_LARGE`,
 * `UNSUPPORTED` (a version or KEM this implementation does not speak).
 */
import { BackboneError } from "../errors.ts";

export class E2EError extends BackboneError {
  override name = "E2EError";
  /** `KEY_CHANGED`: the peer to check (its name, else its ID), as `backbone verify` takes it. */
  readonly peer?: string;
  constructor(code: string, message: string, options?: { cause?: unknown; peer?: string }) {
    super(code, message, options);
    if (options?.peer !== undefined) this.peer = options.peer;
  }
}
