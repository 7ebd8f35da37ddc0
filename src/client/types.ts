/** Public types of the client library. */
import type { PassphraseSource } from "../crypto/keyformats.ts";
import type { RsaPrivateKey, RsaPublicKey } from "../crypto/rsa.ts";
import type { Receive } from "../wire/session.ts";
import type { ConnectionSettings } from "../wire/settings.ts";
import type { Identity } from "./identity.ts";
import type { RoomEvent } from "./rooms.ts";

export interface ConnectOptions {
  /** An identity, or the path of an identity file. */
  identity?: Identity | string;
  /**
   * The passphrase of an identity file's encrypted private key, or a function asked
   * for it (given a prompt; `undefined` gives up). Only with `identity` as a path.
   */
  passphrase?: string | PassphraseSource;
  /** Without an identity: this client's ID, key, the pinned server key and `host:port`. */
  id?: string;
  name?: string;
  key?: RsaPrivateKey;
  serverKey?: RsaPublicKey;
  /** `host:port`; overrides the identity's. */
  server?: string;
  /** Reconnect after the connection drops (default true). */
  reconnect?: boolean;
  /** Backoff between attempts: starts at `initialMs` (250), doubles up to `maxMs` (30 000), with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Keep trying the first connection this long (ms) while the server is unreachable (default 0). */
  waitForServer?: number;
  /** Called before each wait while the first connection is retried (for a visible countdown). */
  onRetry?: (info: { attempt: number; delayMs: number; error: Error }) => void;
  /** Seconds to wait for the handshake (default: connection_timeout, 10). */
  connectTimeout?: number;
  /** Bytes of messages kept while reconnecting (default 8 MiB); beyond, `send` throws. */
  maxBufferedBytes?: number;
  /**
   * This connection's session (docs/PROTOCOL.md § Sessions and delivery). `receive`:
   * `all` (default: live and stored messages), `live`, `stored`, or `none` (a one-shot
   * tool that must never see or take anyone's messages). The tag is random per `Client`
   * and kept across its reconnects; `tag` (16 bytes) overrides it. `session: false`
   * sends no SESSION: one untagged session per ID, as before sessions.
   */
  session?: { receive?: Receive; tag?: Uint8Array } | false;
  /**
   * Offer records of many messages (docs/PROTOCOL.md § BATCH; default true): once the
   * server accepts, what is sent in one turn of the event loop goes in as few encrypted
   * frames as fit, and the server does the same toward this client. A lone message
   * still goes at once. `false` sends and reads one message per frame, as before.
   */
  batch?: boolean;
  /**
   * Called synchronously for each C2C received, before the `message` listeners: returns
   * the message to deliver (possibly a new one) or null to drop it. A stored message is
   * acknowledged to the server only after it returns. If it throws, the message is not
   * delivered, no more stored messages are acknowledged on this connection (an
   * `incomingError` event says why) and the server delivers the unacknowledged ones
   * again at the next login. The
   * E2E layer (`src/e2e/receive.ts`) decrypts and persists here.
   */
  incoming?: (message: IncomingMessage) => IncomingMessage | null;
}

/** A C2C message received. */
export interface IncomingMessage {
  /** Sender's ID (the server writes the true sender). */
  readonly from: string;
  /** The sender's ID as its 16 bytes. */
  readonly fromBytes: Uint8Array;
  readonly data: Uint8Array;
  /**
   * `direct`, `broadcast`, `stored` (a direct message held while this client was
   * offline), or `room` (sent to a room this client is in; see `room`).
   */
  readonly kind: "direct" | "broadcast" | "stored" | "room";
  /** The room's name (without `#`) for a room message, else null (docs/PROTOCOL.md § Rooms). */
  readonly room: string | null;
  /** Held by the server while this client was offline (type 2, or a room message of type 4). */
  readonly stored: boolean;
  /** When the server stored it (stored messages only). */
  readonly queuedAt: Date | null;
  readonly receivedAt: Date;
  /** Set by the E2E layer: true when the message was end-to-end encrypted. */
  readonly e2e?: boolean;
  /** Set by the E2E layer: true when the sender's identity key is verified (`known_peers`). */
  readonly verified?: boolean;
}

/** What became of a message that was not delivered live. */
export interface Notice {
  /** The recipient's ID (all `f` for a broadcast), or `#name` for a room message. */
  address: string;
  status:
    | "queued"
    | "unknown"
    | "rejected"
    | "too_large"
    | "rate_limited"
    | "not_member"
    | "prekeys_low"
    | "recipients";
  reason: string;
  /**
   * `recipients` (an end-to-end encrypted room message, docs/PROTOCOL.md): the sender's
   * message ID (16 hex digits), members that got nothing (no ciphertext for them) and
   * IDs whose ciphertext was dropped (not members).
   */
  message?: string;
  missing?: string[];
  not_members?: string[];
}

export interface ServerStatus {
  protocol: string;
  version: string;
  server_key: string;
  time: number;
  uptime: number;
  clients_online: number;
  clients_registered: number;
  messages_routed: number;
  messages_queued: number;
  messages_stored: number;
  messages_discarded: number;
  connections: number;
  [key: string]: unknown;
}

export type ClientStatusEntry =
  | { id: string; name: string; online: boolean; last_seen: number | null }
  | { query: string; error: "unknown" };

export interface ClientEvents {
  message: [IncomingMessage];
  notice: [Notice];
  config: [ConnectionSettings];
  connect: [{ server: string; serverKey: string }];
  disconnect: [{ reason: string; willReconnect: boolean }];
  reconnecting: [{ attempt: number; delayMs: number; error?: Error }];
  close: [{ error?: Error }];
  /** A membership change in a room this client is in or invited to (docs/PROTOCOL.md § Rooms). */
  room: [RoomEvent];
  /** Messages that never left before the connection dropped; they go out first on the next one (`to`: an ID, or `#room`). */
  requeued: [{ to: string; data: Uint8Array }[]];
  /** The `incoming` hook threw; delivery on this connection stopped (see ConnectOptions). */
  incomingError: [{ error: Error }];
}
