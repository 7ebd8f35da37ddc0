/**
 * The E2E key directory (docs/PROTOCOL.md § KEYS, control type 0x18): clients publish
 * their bundle and fetch their peers'. The server stores what it is given and hands out
 * each one-time prekey once; it cannot forge a bundle, because every key in it is
 * signed by the owner's identity key for the owner's ID (docs/E2E.md), and clients
 * verify every signature themselves.
 *
 * The server checks the identity and signed-prekey signatures against the publisher's
 * authenticated ID (so nobody can publish a bundle that names another client) and the
 * one-time prekeys' form (32-byte, canonical, not low-order); verifying up to 100
 * one-time prekey signatures on the event loop would cost more than it protects, since
 * fetchers verify them anyway.
 */
import { CONTEXT_SIGNED_PREKEY, MAX_ONE_TIME_PREKEYS } from "../e2e/constants.ts";
import {
  type Bundle,
  decodeBundle,
  encodeBundle,
  identityKeyBytes,
  PREKEY_ENTRY_BYTES,
  type PublicPreKey,
  signedPayload,
  verifyIdentity,
} from "../e2e/keys.ts";
import { checkX25519Public, verify } from "../e2e/primitives.ts";
import { decodeChain, verifyLink } from "../e2e/rollover.ts";
import { idKey, idToBytes } from "../ids.ts";
import { copyBytes } from "../wire/bytes.ts";
import { ControlType, decodeJson, encodeControl } from "../wire/message.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { RateLimiter } from "./limits.ts";

/** Fetches per requester: 1 per second sustained, bursts of 30 (one chat opening many sessions). */
export const KEY_FETCH_RATE = 1;
export const KEY_FETCH_BURST = 30;
/** Publishes per client: one per 10 s sustained, bursts of 5. */
export const KEY_PUBLISH_RATE = 0.1;
export const KEY_PUBLISH_BURST = 5;
/** Below this many one-time prekeys a fetch sends the owner NOTICE `prekeys_low`. */
export const PREKEYS_LOW = 20;

const limiters = new WeakMap<ServerContext, { fetch: RateLimiter; publish: RateLimiter }>();
function limitsOf(ctx: ServerContext) {
  let l = limiters.get(ctx);
  if (!l) {
    l = {
      fetch: new RateLimiter(KEY_FETCH_RATE, KEY_FETCH_BURST),
      publish: new RateLimiter(KEY_PUBLISH_RATE, KEY_PUBLISH_BURST),
    };
    limiters.set(ctx, l);
  }
  return l;
}

/** Handles one KEYS request from `conn`; queues exactly one reply. */
export async function handleKeys(
  ctx: ServerContext,
  conn: Connection,
  body: Uint8Array,
): Promise<void> {
  conn.usesKeys = true;
  const reply = (r: Record<string, unknown>) => conn.reply(encodeControl(ControlType.KEYS, r));
  let req: Record<string, unknown>;
  try {
    req = decodeJson(body);
  } catch {
    return reply({ error: "bad request" });
  }
  const op = req.op;
  const store = ctx.store.keys;
  if (!store) return reply({ op, error: "unavailable" });
  try {
    switch (op) {
      case "publish":
        return reply(await publish(ctx, conn, req));
      case "fetch":
        return reply(await fetch(ctx, conn, req));
      case "count": {
        const n = await store.countKeys(conn.idText);
        const identity = n === null ? null : await store.keyIdentity(conn.idText);
        if (n === null || !identity) return reply({ op, published: false });
        // The identity held, so that a client can tell its own bundle from another
        // device's (docs/E2E.md § One identity, one device).
        return reply({
          op,
          published: true,
          one_time_prekeys: n,
          identity: Buffer.from(identity).toString("base64"),
        });
      }
      case "delete":
        return reply({ op, deleted: await store.deleteKeys(conn.idText) });
      default:
        return reply({ error: "bad request" });
    }
  } catch (err) {
    ctx.log.error("key directory failed", { id: conn.idText, error: String(err) });
    return reply({ op, error: "unavailable" });
  }
}

async function publish(ctx: ServerContext, conn: Connection, req: Record<string, unknown>) {
  const op = "publish";
  if (
    typeof req.bundle !== "string" ||
    (req.replace !== undefined && typeof req.replace !== "boolean") ||
    (req.rollover !== undefined && typeof req.rollover !== "string")
  ) {
    return { op, error: "bad request" };
  }
  if (!limitsOf(ctx).publish.take(conn.key)) return { op, error: "rate_limited" };
  let bundle: Bundle;
  let chain = new Uint8Array(0);
  try {
    bundle = decodeBundle(new Uint8Array(Buffer.from(req.bundle, "base64")));
    // The publisher's own ID: a bundle signed for another ID is refused here already.
    verifyIdentity(bundle.identity, conn.idText);
    const spk = bundle.signedPreKey;
    checkX25519Public(spk.key);
    const payload = signedPayload(CONTEXT_SIGNED_PREKEY, conn.idText, spk.id, spk.key);
    if (!verify(bundle.identity.signingKey, payload, spk.signature)) throw new Error("signature");
    const seen = new Set<number>();
    for (const k of bundle.oneTimePreKeys) {
      checkX25519Public(k.key);
      if (seen.has(k.id)) throw new Error("duplicate");
      seen.add(k.id);
    }
    if (typeof req.rollover === "string") {
      chain = new Uint8Array(Buffer.from(req.rollover, "base64"));
      checkRolloverChain(chain, conn.idText, identityKeyBytes(bundle.identity));
    }
  } catch {
    return { op, error: "bad bundle" };
  }
  // The head as stored: the bundle without one-time prekeys, then the rollover chain.
  const head = concatBytes(encodeBundle({ ...bundle, oneTimePreKeys: [] }), chain);
  const result = await (ctx.store.keys as NonNullable<typeof ctx.store.keys>).publishKeys(
    conn.idText,
    {
      identity: identityKeyBytes(bundle.identity),
      head,
      oneTime: bundle.oneTimePreKeys.map((k) => ({ id: k.id, entry: entry(k) })),
    },
    req.replace === true,
    MAX_ONE_TIME_PREKEYS,
  );
  if (!result.ok) return { op, error: result.error };
  ctx.log.info("keys published", { id: conn.idText, one_time_prekeys: result.oneTime });
  return { op, one_time_prekeys: result.oneTime };
}

async function fetch(ctx: ServerContext, conn: Connection, req: Record<string, unknown>) {
  const op = "fetch";
  const query = req.client;
  if (typeof query !== "string" || query.length === 0 || query.length > 256) {
    return { op, error: "bad request" };
  }
  if (!limitsOf(ctx).fetch.take(conn.key)) return { op, query, error: "rate_limited" };
  const record = await ctx.store.findClient(query);
  if (!record || record.revokedAt !== null) return { op, query, error: "unknown" };
  const taken = await (ctx.store.keys as NonNullable<typeof ctx.store.keys>).takeKeys(record.id);
  if (!taken) return { op, id: record.id, name: record.name, error: "no_keys" };
  const head = decodeBundle(taken.head.subarray(0, HEAD_BYTES));
  const rollover = taken.head.subarray(HEAD_BYTES);
  const oneTimePreKeys = taken.oneTime ? [parseEntry(taken.oneTime)] : [];
  const bundle = encodeBundle({ ...head, oneTimePreKeys });
  if (taken.oneTime && taken.remaining < PREKEYS_LOW) {
    // To the owner's sessions that speak KEYS: a client that never sent 0x18 never gets it.
    const notice = encodeControl(ControlType.NOTICE, {
      address: record.id,
      status: "prekeys_low",
      reason: "few one-time prekeys left; publish more",
      one_time_prekeys: taken.remaining,
    });
    for (const owner of ctx.router.online.sessionsOf(idKey(idToBytes(record.id))))
      if (owner.usesKeys) owner.reply(notice);
  }
  return {
    op,
    id: record.id,
    name: record.name,
    bundle: Buffer.from(bundle).toString("base64"),
    ...(rollover.length > 0 ? { rollover: Buffer.from(rollover).toString("base64") } : {}),
  };
}

/** Bytes of a bundle head as encoded with no one-time prekeys (docs/PROTOCOL.md § KEYS). */
const HEAD_BYTES = 1 + 128 + PREKEY_ENTRY_BYTES + 2;

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * A rollover chain as a publisher may store it: well-formed, every link signed for the
 * publisher's own ID by the key before it, consecutive, and ending at the bundle's
 * identity (`Encode(IK)`). Throws otherwise.
 */
function checkRolloverChain(bytes: Uint8Array, owner: string, identity: Uint8Array): void {
  const chain = decodeChain(bytes);
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  chain.forEach((link, i) => {
    if (!verifyLink(link, owner)) throw new Error("rollover signature");
    const next = chain[i + 1];
    if (next && hex(next.previous) !== hex(link.next)) throw new Error("rollover gap");
  });
  const last = chain[chain.length - 1];
  if (!last || hex(last.next) !== hex(identity)) throw new Error("rollover end");
}

function entry(k: PublicPreKey): Uint8Array {
  const out = new Uint8Array(PREKEY_ENTRY_BYTES);
  new DataView(out.buffer).setUint32(0, k.id >>> 0);
  out.set(k.key, 4);
  out.set(k.signature, 36);
  return out;
}

function parseEntry(e: Uint8Array): PublicPreKey {
  const v = new DataView(e.buffer, e.byteOffset, e.byteLength);
  return { id: v.getUint32(0), key: copyBytes(e, 4, 36), signature: copyBytes(e, 36, 100) };
}
