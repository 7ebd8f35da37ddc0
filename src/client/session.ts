/**
 * The client's side of sessions (docs/PROTOCOL.md § Sessions and delivery): a tag,
 * random per `Client` and kept across its reconnects, and what this session receives.
 */
import { UsageError } from "../errors.ts";
import { ControlType, encodeControl } from "../wire/message.ts";
import { encodeSessionBody, type Receive, SESSION_TAG_BYTES } from "../wire/session.ts";
import type { ConnectOptions } from "./types.ts";

const RECEIVES: readonly Receive[] = ["all", "live", "stored", "none"];

export class ClientSession {
  /** Null: no SESSION is sent (an untagged session, as before sessions). */
  readonly tag: Uint8Array | null;
  readonly receive: Receive;

  constructor(options: ConnectOptions["session"]) {
    if (options === false) {
      this.tag = null;
      this.receive = "all";
      return;
    }
    const receive = options?.receive ?? "all";
    if (!RECEIVES.includes(receive)) {
      throw new UsageError("BAD_OPTIONS", `session.receive must be one of ${RECEIVES.join(", ")}`);
    }
    const tag = options?.tag ?? crypto.getRandomValues(new Uint8Array(SESSION_TAG_BYTES));
    if (tag.length !== SESSION_TAG_BYTES) {
      throw new UsageError("BAD_OPTIONS", `session.tag must be ${SESSION_TAG_BYTES} bytes`);
    }
    this.tag = tag;
    this.receive = receive;
  }

  /** The SESSION message for the next connection (fresh timestamp), or null. */
  message(): Uint8Array | null {
    return this.tag
      ? encodeControl(ControlType.SESSION, encodeSessionBody(this.tag, this.receive))
      : null;
  }

  /** Whether this session wants a C2C of this kind (a server that knows no sessions sends all). */
  wants(stored: boolean): boolean {
    if (this.receive === "all") return true;
    return stored ? this.receive === "stored" : this.receive === "live";
  }
}
