/**
 * Sessions with one peer, as pure functions (Sesame-style: several sessions per peer,
 * the one that last received is active). Each function returns a new state and leaves
 * its input untouched, so the caller can persist the new state before it sends a
 * message or acknowledges a received one (docs/E2E.md § Sessions).
 *
 * - The initiator repeats the X3DH fields on every message until the first reply
 *   (X3DH § 3.3, as libsignal does), so any of them, in any order, can start the
 *   session on the responder's side — needed for messages stored while it was offline.
 * - A prekey message whose ephemeral key matches an existing session goes to that
 *   session (a re-delivery is then recognised as `DUPLICATE`).
 * - Both sides starting at once leaves two sessions on each side; every message
 *   decrypts on whichever session it belongs to, and the last one to receive becomes
 *   the one used to send, so the two sides converge.
 */
import { MAX_SESSIONS_PER_PEER, NO_PREKEY, TYPE_PREKEY } from "./constants.ts";
import {
  associatedData,
  decodeEnvelope,
  messagePrefix,
  pad,
  prekeyPrefix,
  roomAssociatedData,
  unpad,
} from "./envelope.ts";
import { E2EError } from "./errors.ts";
import {
  type Bundle,
  type Identity,
  type PreKey,
  type PublicIdentity,
  publicIdentity,
  verifyIdentity,
} from "./keys.ts";
import { type Random, systemRandom } from "./primitives.ts";
import {
  cloneState,
  deserializeState,
  initAlice,
  initBob,
  type RatchetState,
  ratchetDecrypt,
  ratchetEncrypt,
  serializeState,
} from "./ratchet.ts";
import { type X3DHInit, x3dhInitiate, x3dhRespond } from "./x3dh.ts";

/** One Double Ratchet session with a peer. */
export interface Session {
  /** Hex of the X3DH ephemeral key that started it (its name). */
  baseKey: string;
  ratchet: RatchetState;
  peerIdentity: PublicIdentity;
  /** Initiator only, until the first reply: the X3DH fields sent with every message. */
  pending: X3DHInit | null;
}

/** All sessions with one peer, the active one first. */
export interface PeerSessions {
  peerId: string;
  sessions: Session[];
}

/** The prekeys whose secrets this client holds. */
export interface PreKeyStore {
  /** Current signed prekey first; older ones kept a while for messages in flight. */
  signedPreKeys: PreKey[];
  oneTimePreKeys: Map<number, PreKey>;
}

/** The result of decrypting one message. */
export interface Decrypted {
  plaintext: Uint8Array;
  peer: PeerSessions;
  /** The sender's identity as this message proved it. */
  senderIdentity: PublicIdentity;
  /** The one-time prekey this message consumed (delete it once the state is persisted). */
  usedOneTimePreKey: number | null;
  /** True when the sender's identity differs from the one of our earlier sessions. */
  identityChanged: boolean;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The associated data of a direct message (`room` null) or of a message to `room`. */
function adFor(
  room: string | null,
  senderId: string,
  sender: PublicIdentity,
  recipientId: string,
  recipient: PublicIdentity,
): Uint8Array {
  return room === null
    ? associatedData(senderId, sender, recipientId, recipient)
    : roomAssociatedData(senderId, sender, recipientId, recipient, room);
}

function cloneSessions(peer: PeerSessions): PeerSessions {
  return {
    peerId: peer.peerId,
    sessions: peer.sessions.map((s) => ({ ...s, ratchet: cloneState(s.ratchet) })),
  };
}

function sameIdentity(a: PublicIdentity, b: PublicIdentity): boolean {
  return hex(a.signingKey) === hex(b.signingKey) && hex(a.dhKey) === hex(b.dhKey);
}

/** Starts a session with `peerId` from its fetched `bundle` (X3DH § 3.3). Throws `E2EError`. */
export function startSession(
  own: Identity,
  peer: PeerSessions,
  bundle: Bundle,
  random: Random = systemRandom,
): PeerSessions {
  const { sk, init } = x3dhInitiate(own, peer.peerId, bundle, random);
  const ratchet = initAlice(sk, bundle.signedPreKey.key, random);
  sk.fill(0);
  const next = cloneSessions(peer);
  // A new identity for the peer replaces every session with the old one.
  next.sessions = next.sessions.filter((s) => sameIdentity(s.peerIdentity, bundle.identity));
  next.sessions.unshift({
    baseKey: hex(init.ephemeral),
    ratchet,
    peerIdentity: bundle.identity,
    pending: init,
  });
  next.sessions.length = Math.min(next.sessions.length, MAX_SESSIONS_PER_PEER);
  return next;
}

/**
 * Encrypts `plaintext` for the peer on the active session — as a message to `room`
 * (bound into the associated data) when one is given. Returns the C2C data and the new
 * state (persist it before sending). Throws `E2EError` `NO_SESSION` / `TOO_LARGE`.
 */
export function encryptMessage(
  own: Identity,
  peer: PeerSessions,
  plaintext: Uint8Array,
  room: string | null = null,
): { data: Uint8Array; peer: PeerSessions } {
  const padded = pad(plaintext);
  const next = cloneSessions(peer);
  const session = next.sessions.find((s) => s.ratchet.cks);
  if (!session) throw new E2EError("NO_SESSION", "no session with this peer");
  const ad = adFor(room, own.clientId, publicIdentity(own), peer.peerId, session.peerIdentity);
  const pending = session.pending;
  const frame = pending
    ? (header: Uint8Array) => prekeyPrefix(publicIdentity(own), pending, header)
    : messagePrefix;
  const data = ratchetEncrypt(session.ratchet, padded, ad, frame);
  next.sessions = [session, ...next.sessions.filter((s) => s !== session)];
  return { data, peer: next };
}

/**
 * Decrypts C2C `data` from `senderId` (the sender as the server stated it; it is bound
 * into the associated data, so a rewritten sender fails). `peer` is our state with that
 * sender (empty sessions when none). `room`: the room the server delivered it as a
 * message of (null: a direct message) — bound into the associated data, so a message
 * replayed into another room, or between room and direct, fails. Transactional: the
 * inputs are never changed. Throws `E2EError`.
 */
export function decryptMessage(
  own: Identity,
  preKeys: PreKeyStore,
  senderId: string,
  peer: PeerSessions,
  data: Uint8Array,
  random: Random = systemRandom,
  room: string | null = null,
): Decrypted {
  const env = decodeEnvelope(data);
  const ownPublic = publicIdentity(own);
  const next = cloneSessions(peer);
  const finish = (
    session: Session,
    ratchet: RatchetState,
    padded: Uint8Array,
    usedOneTimePreKey: number | null,
    identityChanged: boolean,
  ): Decrypted => {
    session.ratchet = ratchet;
    // A reply on a session we started: stop repeating the X3DH fields.
    if (env.type !== TYPE_PREKEY) session.pending = null;
    next.sessions = [session, ...next.sessions.filter((s) => s !== session)];
    next.sessions.length = Math.min(next.sessions.length, MAX_SESSIONS_PER_PEER);
    return {
      plaintext: unpad(padded),
      peer: next,
      senderIdentity: session.peerIdentity,
      usedOneTimePreKey,
      identityChanged,
    };
  };

  if (env.type === TYPE_PREKEY) {
    verifyIdentity(env.sender, senderId);
    const ad = adFor(room, senderId, env.sender, own.clientId, ownPublic);
    const existing = next.sessions.find(
      (s) => s.baseKey === hex(env.init.ephemeral) && sameIdentity(s.peerIdentity, env.sender),
    );
    if (existing) {
      const r = ratchetDecrypt(
        existing.ratchet,
        env.header,
        env.prefix,
        env.ciphertext,
        ad,
        random,
      );
      return finish(existing, r.state, r.plaintext, null, false);
    }
    const spk = preKeys.signedPreKeys.find((k) => k.id === env.init.signedPreKeyId);
    if (!spk) throw new E2EError("UNKNOWN_PREKEY", "signed prekey not held");
    const opkId = env.init.oneTimePreKeyId;
    const opk = opkId === NO_PREKEY ? undefined : preKeys.oneTimePreKeys.get(opkId);
    if (opkId !== NO_PREKEY && !opk)
      throw new E2EError("UNKNOWN_PREKEY", "one-time prekey not held");
    const sk = x3dhRespond(own, env.sender, env.init, spk, opk);
    const ratchet = initBob(sk, { secret: spk.secret, public: spk.key });
    sk.fill(0);
    const r = ratchetDecrypt(ratchet, env.header, env.prefix, env.ciphertext, ad, random);
    const changed = next.sessions.some((s) => !sameIdentity(s.peerIdentity, env.sender));
    if (changed) next.sessions = [];
    const session: Session = {
      baseKey: hex(env.init.ephemeral),
      ratchet: r.state,
      peerIdentity: env.sender,
      pending: null,
    };
    next.sessions.unshift(session);
    return finish(session, r.state, r.plaintext, opk ? opkId : null, changed);
  }

  if (next.sessions.length === 0) throw new E2EError("NO_SESSION", "no session with this sender");
  // Sessions the header names first, then the rest.
  const dhHex = hex(env.header.dh);
  const ordered = [...next.sessions].sort((a, b) => score(b) - score(a));
  function score(s: Session): number {
    const r = s.ratchet;
    if (r.dhr && hex(r.dhr) === dhHex) return 2;
    return r.skipped.has(`${dhHex}:${env.header.n}`) ? 2 : r.oldChains.includes(dhHex) ? 1 : 0;
  }
  let failure: E2EError | undefined;
  for (const session of ordered) {
    const ad = adFor(room, senderId, session.peerIdentity, own.clientId, ownPublic);
    try {
      const r = ratchetDecrypt(session.ratchet, env.header, env.prefix, env.ciphertext, ad, random);
      return finish(session, r.state, r.plaintext, null, false);
    } catch (e) {
      if (!(e instanceof E2EError)) throw e;
      if (!failure || rank(e) > rank(failure)) failure = e;
    }
  }
  throw failure as E2EError;
}

function rank(e: E2EError): number {
  return e.code === "DUPLICATE" ? 3 : e.code === "TOO_MANY_SKIPPED" ? 2 : 1;
}

/** JSON-safe form of a peer's sessions. */
export function serializePeer(peer: PeerSessions): unknown {
  return {
    peerId: peer.peerId,
    sessions: peer.sessions.map((s) => ({
      baseKey: s.baseKey,
      ratchet: serializeState(s.ratchet),
      peerIdentity: {
        signingKey: hex(s.peerIdentity.signingKey),
        dhKey: hex(s.peerIdentity.dhKey),
        dhSignature: hex(s.peerIdentity.dhSignature),
      },
      pending: s.pending && {
        ephemeral: hex(s.pending.ephemeral),
        signedPreKeyId: s.pending.signedPreKeyId,
        oneTimePreKeyId: s.pending.oneTimePreKeyId,
      },
    })),
  };
}

/** Inverse of `serializePeer`; throws `E2EError` `MALFORMED`. */
export function deserializePeer(v: unknown): PeerSessions {
  try {
    const o = v as { peerId: string; sessions: Record<string, unknown>[] };
    const b = (x: unknown) => new Uint8Array(Buffer.from(String(x), "hex"));
    return {
      peerId: String(o.peerId),
      sessions: o.sessions.map((s) => {
        const id = s.peerIdentity as Record<string, string>;
        const p = s.pending as Record<string, unknown> | null;
        return {
          baseKey: String(s.baseKey),
          ratchet: deserializeState(s.ratchet),
          peerIdentity: {
            signingKey: b(id.signingKey),
            dhKey: b(id.dhKey),
            dhSignature: b(id.dhSignature),
          },
          pending: p && {
            ephemeral: b(p.ephemeral),
            signedPreKeyId: Number(p.signedPreKeyId),
            oneTimePreKeyId: Number(p.oneTimePreKeyId),
          },
        };
      }),
    };
  } catch (cause) {
    if (cause instanceof E2EError) throw cause;
    throw new E2EError("MALFORMED", "unreadable session state", { cause });
  }
}
