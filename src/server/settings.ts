/**
 * Server settings: defaults, a config file (TOML or JSON), then command-line flags,
 * each overriding the one before. Every default is justified next to it.
 */
import { readFileSync } from "node:fs";
import { describeErrno, UsageError } from "../errors.ts";
import {
  DEFAULT_CHALLENGE_SIZE,
  DEFAULT_PORT,
  MAX_C2C_DATA,
  MIN_CHALLENGE_SIZE,
} from "../wire/constants.ts";
import {
  CONNECTION_SETTING_RANGES,
  type ConnectionSettings,
  settingProblem,
} from "../wire/settings.ts";

export interface ServerSettings extends ConnectionSettings {
  host: string;
  port: number;
  challenge_size: number;
  /** Unauthenticated connections in flight, all sources together. Over it, the oldest is dropped. */
  max_pending_handshakes: number;
  /** Unauthenticated connections in flight from one /24 (IPv4) or /64 (IPv6). Over it, the newcomer is refused. */
  max_pending_per_prefix: number;
  /** Handshake responses (each an RSA decryption) accepted per prefix per second, and the burst. */
  handshake_rate: number;
  handshake_burst: number;
  /** RSA handshake verifications running at once; the rest wait their turn. */
  handshake_concurrency: number;
  /** Bytes waiting to be written to one client before it is stopped as a slow consumer. */
  max_outbound_bytes: number;
  /** Sessions (connections) one client ID may hold at once; past it a login is refused. */
  max_sessions_per_client: number;
  /** Offline queue bounds per recipient, and per sender within it. */
  queue_max_messages: number;
  queue_max_bytes: number;
  queue_max_age: number;
  queue_max_per_sender: number;
  /** Most bytes the store may take on disk (0: no bound). Past it, offline messages are refused. */
  store_max_bytes: number;
  /** Broadcasts one client may send per second, and the burst. */
  broadcast_rate: number;
  broadcast_burst: number;
  /**
   * Server-side work one client's requests may cost per second, and the burst, in units
   * of one store lookup: a CLIENT_STATUS costs one per entry, a SERVER_STATUS
   * SERVER_STATUS_COST, a broadcast one per recipient. Past it, the client's input is
   * read later (docs/PROTOCOL.md § Limits).
   */
  work_rate: number;
  work_burst: number;
  /** Rooms one client may be a member of, and invitations it may hold (each). */
  room_max_per_client: number;
  /** Members and invitations of one room together. */
  room_max_members: number;
  /**
   * Seconds an invitation holds: past it, it lapses — it can no longer be used to join
   * and no longer counts against any bound (docs/PROTOCOL.md § Membership).
   */
  room_invite_ttl: number;
  /** Room copies (one per member reached) one sender may cause per second, and the burst. */
  room_fanout_rate: number;
  room_fanout_burst: number;
  log_format: "text" | "json";
  log_level: "debug" | "info" | "warn" | "error";
  /**
   * Share the port with other servers on this machine (SO_REUSEPORT; the kernel spreads
   * new connections over them): several nodes of one cluster, one per core
   * (docs/CLUSTER.md § Several nodes on one machine). Off by default: a port in use is an error.
   */
  reuse_port: boolean;
  /** `serve`'s store, `redis://HOST:PORT[/DB]` (docs/CLUSTER.md); the data directory's by default. */
  store?: string;
  /** `serve`'s monitoring port, `HOST:PORT` (src/monitor/); none by default. */
  monitor?: string;
  /** File holding the monitor's bearer token (required off loopback). */
  monitor_token_file?: string;
}

export const DEFAULT_SERVER_SETTINGS: Readonly<ServerSettings> = Object.freeze({
  host: "0.0.0.0",
  port: DEFAULT_PORT,
  // Seed spec default: 2048 bytes of challenge data.
  challenge_size: DEFAULT_CHALLENGE_SIZE,
  // A client is quiet for at most 15 s; three missed beats (45 s) mean it is gone —
  // long enough for a laptop's Wi-Fi hiccup, short enough to free a dead slot soon.
  heartbeat_interval: 15,
  heartbeat_timeout: 45,
  // A real client answers in one round trip plus one RSA signature (≈ 10 ms); 10 s
  // covers slow links while bounding what a silent connection can hold.
  connection_timeout: 10,
  max_message_size: MAX_C2C_DATA,
  // 1024 half-open handshakes cost ≈ 3 MiB of challenges; a flood cannot hold more.
  max_pending_handshakes: 1024,
  // One office NAT or one attacker's /24 may hold 64 of them.
  max_pending_per_prefix: 64,
  // One RSA-3072 decryption costs ≈ 1–2 ms: 50/s per prefix keeps any one source under
  // ~10% of a core while letting a whole office reconnect after a restart within seconds.
  handshake_rate: 50,
  handshake_burst: 100,
  handshake_concurrency: 4,
  // 8 MiB is ~30k small messages or 128 full frames of backlog per client (NATS stops
  // slow consumers at 64 MiB with far more clients per server).
  max_outbound_bytes: 8 * 1024 * 1024,
  // 16 sessions: a person's devices and terminals plus scripts, with room to spare; each
  // live message is copied to every receiving session, so this bounds that fan-out
  // (and the memory one identity can hold: 16 × max_outbound_bytes). Docs: PROTOCOL.md.
  max_sessions_per_client: 16,
  // 10,000 messages / 64 MiB / 7 days per offline recipient: a week's absence of a busy
  // chat user; at most 1,000 of them from any one sender, so one cannot fill another's inbox.
  queue_max_messages: 10_000,
  queue_max_bytes: 64 * 1024 * 1024,
  queue_max_age: 7 * 24 * 3600,
  queue_max_per_sender: 1_000,
  // No bound by default: the per-recipient bounds above already cap each inbox. Set it
  // when the data directory shares a disk with other things: past the bound, offline
  // messages are refused (NOTICE rejected) while the disk still has room, instead of a
  // full disk failing everyone's writes. SQLite pages (PRAGMA max_page_count), so it
  // bounds the database file; the WAL beside it adds up to ~4 MiB between checkpoints.
  store_max_bytes: 0,
  broadcast_rate: 100,
  broadcast_burst: 200,
  // One unit is one store lookup or one broadcast copy, ≈ 3–5 µs here: 2048 units/s
  // (8 CLIENT_STATUS of 256 entries, or a broadcast to 2048 clients, each second) keep
  // one client under ~1% of a core; the burst covers a program asking about 4096
  // clients at once. Measured: bench `fairness` row, docs/BENCHMARKS.md.
  work_rate: 2048,
  work_burst: 4096,
  // 100 rooms per client: IRC networks allow 20–250 channels per user; a person or a bot
  // in more than 100 rooms is rare, and each membership costs a row and a copy per message.
  room_max_per_client: 100,
  // 1,000 members per room: a whole organisation's announcement room. Every message
  // costs one copy (a seal and a write) per member, so this bounds one message's work.
  room_max_members: 1_000,
  // 7 days, as offline messages (queue_max_age): long enough for someone away a week;
  // short enough that invitations nobody answers do not hold a client's slots for good.
  room_invite_ttl: 604_800,
  // 10,000 copies/s per sender, burst 2,000: a 1,000-member room gets 10 messages/s
  // from one sender (far above human chat); 1,000 × 100/s is slowed to that by pausing
  // the sender's reading. Measured with bench/room-fanout.ts (200 members, a 400-message
  // flood, 2 shared cores): other clients' direct-message p99 stayed at its quiet level
  // (11–20 ms against 13–14 ms); unbounded it rose to 410–450 ms, and with 20,000/s and
  // a 20,000 burst to 55–92 ms (a burst that large is a stall of its own). The server
  // hands out ~35,000 copies/s there in all, so one sender gets under a third of it.
  room_fanout_rate: 10_000,
  room_fanout_burst: 2_000,
  log_format: "text",
  log_level: "info",
  reuse_port: false,
});

type Kind = "number" | "integer" | "string" | "boolean";
const KINDS: Record<keyof ServerSettings, Kind> = {
  host: "string",
  port: "integer",
  challenge_size: "integer",
  heartbeat_interval: "number",
  heartbeat_timeout: "number",
  connection_timeout: "number",
  max_message_size: "integer",
  max_pending_handshakes: "integer",
  max_pending_per_prefix: "integer",
  handshake_rate: "number",
  handshake_burst: "integer",
  handshake_concurrency: "integer",
  max_outbound_bytes: "integer",
  max_sessions_per_client: "integer",
  queue_max_messages: "integer",
  queue_max_bytes: "integer",
  queue_max_age: "number",
  queue_max_per_sender: "integer",
  store_max_bytes: "integer",
  broadcast_rate: "number",
  broadcast_burst: "integer",
  work_rate: "number",
  work_burst: "integer",
  room_max_per_client: "integer",
  room_max_members: "integer",
  room_invite_ttl: "number",
  room_fanout_rate: "number",
  room_fanout_burst: "integer",
  log_format: "string",
  log_level: "string",
  store: "string",
  reuse_port: "boolean",
  monitor: "string",
  monitor_token_file: "string",
};

/**
 * Merges `overrides` onto `base`, checking every value. Throws `UsageError`
 * `BAD_SETTING` naming the setting and `source` (a file name or "flags").
 */
export function mergeSettings(
  base: Readonly<ServerSettings>,
  overrides: Record<string, unknown>,
  source: string,
): ServerSettings {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const kind = KINDS[key as keyof ServerSettings];
    if (!kind) throw new UsageError("BAD_SETTING", `${source}: unknown setting "${key}"`);
    out[key] = checkValue(key, kind, value, source);
  }
  const s = out as unknown as ServerSettings;
  const bad = (why: string) => new UsageError("BAD_SETTING", `${source}: ${why}`);
  if (s.port > 65535) throw bad("port must be 0..65535");
  if (s.challenge_size < MIN_CHALLENGE_SIZE || s.challenge_size > 60_000) {
    throw bad(`challenge_size must be ${MIN_CHALLENGE_SIZE}..60000`);
  }
  if (s.max_message_size > MAX_C2C_DATA)
    throw bad(`max_message_size must be at most ${MAX_C2C_DATA}`);
  if (s.heartbeat_timeout <= s.heartbeat_interval) {
    throw bad("heartbeat_timeout must be longer than heartbeat_interval");
  }
  // What clients accept (docs/PROTOCOL.md § Connection settings): beyond, they would refuse CONFIG.
  for (const key of Object.keys(CONNECTION_SETTING_RANGES) as (keyof ConnectionSettings)[]) {
    const problem = settingProblem(key, s[key]);
    if (problem) throw bad(problem);
  }
  if (s.work_burst < 1) throw bad("work_burst must be at least 1");
  if (s.room_fanout_burst < 1) throw bad("room_fanout_burst must be at least 1");
  if (!["text", "json"].includes(s.log_format)) throw bad('log_format must be "text" or "json"');
  if (!["debug", "info", "warn", "error"].includes(s.log_level)) {
    throw bad("log_level must be debug, info, warn or error");
  }
  return s;
}

function checkValue(key: string, kind: Kind, value: unknown, source: string): unknown {
  if (kind === "boolean") {
    if (value === true || value === "true") return true;
    if (value === false || value === "false") return false;
    throw new UsageError("BAD_SETTING", `${source}: ${key} must be true or false`);
  }
  if (kind === "string") {
    if (typeof value !== "string" || value === "") {
      throw new UsageError("BAD_SETTING", `${source}: ${key} must be a non-empty string`);
    }
    return value;
  }
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  const ok =
    typeof n === "number" &&
    Number.isFinite(n) &&
    (kind === "integer" ? Number.isInteger(n) && n >= 0 : n > 0);
  if (!ok) {
    const what = kind === "integer" ? "a whole number" : "a positive number";
    throw new UsageError(
      "BAD_SETTING",
      `${source}: ${key} must be ${what}, not ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Reads a settings file: TOML (`.toml`) or JSON (anything else). Throws `UsageError`. */
export function readSettingsFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new UsageError(
      "CONFIG_UNREADABLE",
      `cannot read config ${path}: ${describeErrno(cause)}`,
      { cause },
    );
  }
  try {
    const value = path.endsWith(".toml") ? Bun.TOML.parse(text) : JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new Error("not a table");
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new UsageError(
      "CONFIG_INVALID",
      `config ${path} is not valid ${path.endsWith(".toml") ? "TOML" : "JSON"}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** The connection settings sent to clients in CONFIG. */
export function connectionSettings(s: Readonly<ServerSettings>): ConnectionSettings {
  return {
    heartbeat_interval: s.heartbeat_interval,
    heartbeat_timeout: s.heartbeat_timeout,
    connection_timeout: s.connection_timeout,
    max_message_size: s.max_message_size,
  };
}
