/**
 * Connection settings carried by CONFIG (docs/PROTOCOL.md § Connection settings).
 * Times are seconds (fractions allowed); unknown keys are ignored.
 */
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

/**
 * Reads the settings out of a CONFIG object, keeping `base` for any key that is
 * missing or not a positive finite number. Unknown keys are ignored.
 */
export function applyConnectionSettings(
  base: Readonly<ConnectionSettings>,
  json: Record<string, unknown>,
): ConnectionSettings {
  const out = { ...base };
  for (const key of KEYS) {
    const v = json[key];
    if (typeof v === "number" && Number.isFinite(v) && v > 0) out[key] = v;
  }
  out.max_message_size = Math.min(Math.floor(out.max_message_size), MAX_C2C_DATA);
  return out;
}
