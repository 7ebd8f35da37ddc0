/**
 * How the Redis store's values read back: a registry hash as a `ClientRecord`, a stream
 * entry's fields as a map, and ENQUEUE's (and ROUTE's) result codes as the reasons the
 * SQLite store gives, so clients see one wording whatever the backend.
 */
import { type ClientRecord, type EnqueueResult, type QueueLimits, queueRefusal } from "../store.ts";

/** ENQUEUE's code for one message: 0 held, 1 too many messages, 2 too many bytes, 3 too many from this sender. */
export function enqueueResult(code: number, limits: QueueLimits): EnqueueResult {
  if (code === 0) return { ok: true };
  return queueRefusal(code === 1 ? "messages" : code === 2 ? "bytes" : "sender", limits);
}

/** A stream entry's fields (name, value, name, value …) as a map. */
export function fieldMap(fields: Buffer[]): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[String(fields[i])] = fields[i + 1] as Buffer;
  return out;
}

/** A `client:{id}` hash as a record; null when there is none. */
export function toRecord(h: Record<string, Buffer> | null): ClientRecord | null {
  if (!h?.id) return null;
  const num = (b: Buffer | undefined) => (b === undefined ? null : Number(String(b)));
  return {
    id: String(h.id),
    name: String(h.name),
    publicKey: new Uint8Array(h.public_key ?? Buffer.alloc(0)),
    fingerprint: String(h.fingerprint),
    createdAt: Number(String(h.created_at)),
    revokedAt: num(h.revoked_at),
    lastSeen: num(h.last_seen),
    online: String(h.online) === "1",
  };
}
