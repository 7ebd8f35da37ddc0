/**
 * Connection settings carried by CONFIG (docs/PROTOCOL.md § Connection settings).
 * Times are seconds (fractions allowed); unknown keys are ignored.
 */
import { WireError } from "../errors.ts";
import { MAX_C2C_DATA } from "./constants.ts";

export interface ConnectionSettings {
  /** The client sends HEARTBEAT after this long without sending anything. */
  heartbeat_interval: number;
  /** Either side treats a peer silent this long as dead. */
  heartbeat_timeout: number;
  /** Time allowed to answer the challenge (and, on the client, to receive CONFIG). */
  connection_timeout: number;
  /** Bytes of C2C data a message may carry. */
  max_message_size: number;
}

/** The defaults a client assumes until the first CONFIG. */
export const DEFAULT_CONNECTION_SETTINGS: Readonly<ConnectionSettings> = Object.freeze({
  heartbeat_interval: 15,
  heartbeat_timeout: 45,
  connection_timeout: 10,
  max_message_size: MAX_C2C_DATA,
});

const KEYS = Object.keys(DEFAULT_CONNECTION_SETTINGS) as (keyof ConnectionSettings)[];

/** The range a client accepts for one setting (inclusive), and whether it must be an integer. */
export interface SettingRange {
  min: number;
  max: number;
  integer?: boolean;
  unit: "s" | "bytes";
}

/**
 * What a client accepts from a server (docs/PROTOCOL.md § Connection settings). A
 * value outside these ranges is a protocol error: a malicious or broken server must
 * not be able to set timers that overflow (Bun's and Node's timers take at most
 * 2^31−1 ms and fire at once beyond that) or that busy-loop the client. A server
 * refuses to be configured outside them.
 */
export const CONNECTION_SETTING_RANGES: Readonly<Record<keyof ConnectionSettings, SettingRange>> =
  Object.freeze({
    heartbeat_interval: { min: 0.05, max: 3600, unit: "s" },
    heartbeat_timeout: { min: 0.1, max: 10_800, unit: "s" },
    connection_timeout: { min: 0.05, max: 3600, unit: "s" },
    max_message_size: { min: 1, max: MAX_C2C_DATA, integer: true, unit: "bytes" },
  });

/** Why a value is outside its range (`null` when it is inside). */
export function settingProblem(key: keyof ConnectionSettings, value: unknown): string | null {
  const r = CONNECTION_SETTING_RANGES[key];
  const ok =
    typeof value === "number" &&
    Number.isFinite(value) &&
    value >= r.min &&
    value <= r.max &&
    (!r.integer || Number.isInteger(value));
  if (ok) return null;
  const shown = typeof value === "number" ? String(value) : JSON.stringify(value);
  return `${key} ${shown} is not ${r.integer ? "an integer" : "a number"} from ${r.min} to ${r.max} ${r.unit}`;
}

/**
 * Reads the settings out of a CONFIG object onto `base`: a key that is missing keeps
 * `base`'s value; unknown keys are ignored. Throws `WireError` `BAD_CONFIG` when a
 * known key's value is outside {@link CONNECTION_SETTING_RANGES} or the result has
 * `heartbeat_timeout ≤ heartbeat_interval` (the caller then stops the connection with
 * STOP `protocol error`).
 */
export function applyConnectionSettings(
  base: Readonly<ConnectionSettings>,
  json: Record<string, unknown>,
): ConnectionSettings {
  const out = { ...base };
  for (const key of KEYS) {
    const v = json[key];
    if (v === undefined) continue;
    const problem = settingProblem(key, v);
    if (problem) throw new WireError("BAD_CONFIG", `the server's CONFIG is invalid: ${problem}`);
    out[key] = v as number;
  }
  if (out.heartbeat_timeout <= out.heartbeat_interval) {
    throw new WireError(
      "BAD_CONFIG",
      `the server's CONFIG is invalid: heartbeat_timeout ${out.heartbeat_timeout} is not longer than heartbeat_interval ${out.heartbeat_interval}`,
    );
  }
  return out;
}
