/**
 * The E2E state document, `state.json` (docs/E2E.md § Client state): its types and its
 * JSON form. Binary values are hex; every read checks the shape and reports a damaged
 * file as `E2EError` `STATE_CORRUPT`, never a crash.
 */
import { E2EError } from "./errors.ts";
import type { Identity, PreKey } from "./keys.ts";
import { decodeChain, encodeChain, type RolloverLink } from "./rollover.ts";
import { deserializePeer, type PeerSessions, serializePeer } from "./session.ts";

/** A decrypted message kept until the application has it. */
export interface InboxEntry {
  /** Random, to recognise the entry across re-reads of the state. */
  key: string;
  sender: string;
  /** Unix seconds when it was decrypted. */
  at: number;
  /** `queued_at` of a stored C2C, else null. */
  queuedAt: number | null;
  plaintext: Uint8Array;
  /** False for a plaintext message kept only to keep the order (see receive.ts). */
  e2e: boolean;
  verified: boolean;
  /** The room (name as delivered, without `#`) of a room message; absent for a direct one. */
  room?: string;
}

/**
 * A live message decrypted by one process of this client, kept briefly so that the
 * client's other processes (sessions, docs/PROTOCOL.md § Sessions), which receive the
 * same ciphertext, can show it too: the ratchet step is used up by the first.
 */
export interface RecentLive {
  /** SHA-256 of the envelope, hex (first 32 characters). */
  digest: string;
  sender: string;
  /**
   * Where it was delivered: the room's key (roomKey), or absent for a direct message.
   * Another process shows it only where it came (the AD bound it there; a replay found
   * DUPLICATE is not authenticated again).
   */
  room?: string;
  /** Unix seconds when it was decrypted. */
  at: number;
  plaintext: Uint8Array;
  verified: boolean;
}

/** A signed prekey with the time it was made (unix s). */
export interface StoredPreKey extends PreKey {
  createdAt: number;
}

/**
 * An identity replaced by a rollover, kept with its prekeys and sessions so that
 * messages already on their way to it still decrypt (docs/E2E.md § Key rollover).
 */
export interface RetiredIdentity {
  identity: Identity;
  signedPreKeys: StoredPreKey[];
  oneTimePreKeys: Map<number, PreKey>;
  peers: Map<string, PeerSessions>;
  /** Unix seconds when it was replaced. */
  retiredAt: number;
}

/** A message sent end to end, kept for a re-send (sent.ts). */
export interface SentEntry {
  /** Recipient ID, lowercase. */
  peer: string;
  /** `messageDigest` of the envelope sent (hex). */
  digest: string;
  /** Unix seconds. */
  at: number;
  plaintext: Uint8Array;
  /** Sent with `strict` or `peerKey`: re-sent only to a verified key. */
  strict?: boolean;
}

/** What `state.json` holds besides its version, client ID and generation. */
export interface StateContent {
  identity: Identity;
  signedPreKeys: StoredPreKey[];
  oneTimePreKeys: Map<number, PreKey>;
  nextPreKeyId: number;
  publishedSignedPreKey: number;
  peers: Map<string, PeerSessions>;
  inbox: InboxEntry[];
  recentLive: RecentLive[];
  /** The rollovers from earlier identities to the current one, oldest first. */
  rollovers: RolloverLink[];
  /** Identities replaced by a rollover, newest first. */
  retired: RetiredIdentity[];
  /** Peers the rollover envelope was sent to since the last rollover (lowercase IDs). */
  rolloverSentTo: string[];
  /** Recent end-to-end messages sent, oldest first, for a re-send after a session reset. */
  sent: SentEntry[];
  /** Unix seconds when this state was exported to another machine (export.ts); then unusable. */
  movedAt: number | null;
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
export const unhex = (s: unknown) => new Uint8Array(Buffer.from(String(s), "hex"));

/** JSON form of an identity with its secrets. */
export function identityToJson(id: Identity): Record<string, string> {
  return {
    signingSecret: hex(id.signing.secret),
    signingPublic: hex(id.signing.public),
    dhSecret: hex(id.dh.secret),
    dhPublic: hex(id.dh.public),
    dhSignature: hex(id.dhSignature),
  };
}

/** Inverse of `identityToJson` (throws on a bad shape; callers wrap it). */
export function identityFromJson(clientId: string, v: unknown): Identity {
  const id = v as Record<string, string>;
  return {
    clientId,
    signing: { secret: unhex(id.signingSecret), public: unhex(id.signingPublic) },
    dh: { secret: unhex(id.dhSecret), public: unhex(id.dhPublic) },
    dhSignature: unhex(id.dhSignature),
  };
}

export function preKeyToJson(k: PreKey & { createdAt?: number }): Record<string, unknown> {
  return {
    id: k.id,
    key: hex(k.key),
    secret: hex(k.secret),
    signature: hex(k.signature),
    createdAt: k.createdAt ?? 0,
  };
}

export function preKeyFromJson(v: unknown): StoredPreKey {
  const k = v as Record<string, unknown>;
  return {
    id: Number(k.id),
    key: unhex(k.key),
    secret: unhex(k.secret),
    signature: unhex(k.signature),
    createdAt: Number(k.createdAt ?? 0),
  };
}

/** `state.json` text for `s` at `generation`. */
export function encodeStateDoc(s: StateContent, generation: number): string {
  return JSON.stringify({
    version: 1,
    clientId: s.identity.clientId.toLowerCase(),
    generation,
    identity: identityToJson(s.identity),
    signedPreKeys: s.signedPreKeys.map(preKeyToJson),
    oneTimePreKeys: [...s.oneTimePreKeys.values()].map(preKeyToJson),
    nextPreKeyId: s.nextPreKeyId,
    publishedSignedPreKey: s.publishedSignedPreKey,
    peers: Object.fromEntries([...s.peers].map(([k, v]) => [k, serializePeer(v)])),
    inbox: s.inbox.map((m) => ({ ...m, plaintext: hex(m.plaintext) })),
    recentLive: s.recentLive.map((m) => ({ ...m, plaintext: hex(m.plaintext) })),
    rollovers: hex(encodeChain(s.rollovers)),
    retired: s.retired.map((r) => ({
      identity: identityToJson(r.identity),
      signedPreKeys: r.signedPreKeys.map(preKeyToJson),
      oneTimePreKeys: [...r.oneTimePreKeys.values()].map(preKeyToJson),
      peers: Object.fromEntries([...r.peers].map(([k, v]) => [k, serializePeer(v)])),
      retiredAt: r.retiredAt,
    })),
    rolloverSentTo: s.rolloverSentTo,
    sent: s.sent.map((m) => ({ ...m, plaintext: hex(m.plaintext) })),
    movedAt: s.movedAt,
  });
}

/** The content of a parsed `state.json` (`file` names it in errors). Throws `E2EError`. */
export function decodeStateDoc(o: Record<string, unknown>, file: string): StateContent {
  const clientId = String(o.clientId);
  const preKeyMap = (v: unknown) =>
    new Map(
      (v as unknown[]).map((k) => {
        const p = preKeyFromJson(k);
        return [p.id, p];
      }),
    );
  const peerMap = (v: unknown) =>
    new Map(Object.entries(v as Record<string, unknown>).map(([k, p]) => [k, deserializePeer(p)]));
  try {
    return {
      identity: identityFromJson(clientId, o.identity),
      signedPreKeys: (o.signedPreKeys as unknown[]).map(preKeyFromJson),
      oneTimePreKeys: preKeyMap(o.oneTimePreKeys),
      nextPreKeyId: Number(o.nextPreKeyId),
      publishedSignedPreKey: Number(o.publishedSignedPreKey ?? 0),
      peers: peerMap(o.peers),
      inbox: (o.inbox as Record<string, unknown>[]).map((m) => ({
        key: String(m.key),
        sender: String(m.sender),
        at: Number(m.at),
        queuedAt: m.queuedAt === null ? null : Number(m.queuedAt),
        plaintext: unhex(m.plaintext),
        e2e: m.e2e !== false,
        verified: Boolean(m.verified),
        ...(typeof m.room === "string" ? { room: m.room } : {}),
      })),
      recentLive: ((o.recentLive as Record<string, unknown>[] | undefined) ?? []).map((m) => ({
        digest: String(m.digest),
        sender: String(m.sender),
        ...(typeof m.room === "string" ? { room: m.room } : {}),
        at: Number(m.at),
        plaintext: unhex(m.plaintext),
        verified: Boolean(m.verified),
      })),
      // Absent in states written before rollovers existed.
      rollovers: o.rollovers === undefined ? [] : decodeChain(unhex(o.rollovers)),
      retired: ((o.retired as Record<string, unknown>[] | undefined) ?? []).map((r) => ({
        identity: identityFromJson(clientId, r.identity),
        signedPreKeys: (r.signedPreKeys as unknown[]).map(preKeyFromJson),
        oneTimePreKeys: preKeyMap(r.oneTimePreKeys),
        peers: peerMap(r.peers),
        retiredAt: Number(r.retiredAt),
      })),
      rolloverSentTo: ((o.rolloverSentTo as unknown[] | undefined) ?? []).map(String),
      sent: ((o.sent as Record<string, unknown>[] | undefined) ?? []).map((m) => ({
        peer: String(m.peer),
        digest: String(m.digest),
        at: Number(m.at),
        plaintext: unhex(m.plaintext),
        ...(m.strict === true ? { strict: true } : {}),
      })),
      movedAt: o.movedAt === undefined || o.movedAt === null ? null : Number(o.movedAt),
    };
  } catch (cause) {
    if (cause instanceof E2EError) throw cause;
    throw new E2EError("STATE_CORRUPT", `${file} is damaged`, { cause });
  }
}
