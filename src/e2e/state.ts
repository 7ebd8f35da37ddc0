/**
 * A client's E2E state on disk (docs/E2E.md § Client state): the identity, prekeys,
 * sessions with each peer and an inbox of decrypted messages not yet handed to the
 * application, all in `state.json`, plus `known_peers`. Opening takes the directory's
 * lock and refuses a rolled-back state (statedir.ts). Every `save()` is one atomic
 * write, so the sessions and the inbox change together.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { MAX_ONE_TIME_PREKEYS } from "./constants.ts";
import { E2EError } from "./errors.ts";
import {
  generateIdentity,
  generateOneTimePreKeys,
  generateSignedPreKey,
  type Identity,
  type PreKey,
} from "./keys.ts";
import { KnownPeers } from "./known-peers.ts";
import { type Random, systemRandom } from "./primitives.ts";
import { deserializePeer, type PeerSessions, type PreKeyStore, serializePeer } from "./session.ts";
import {
  ensurePrivateDir,
  lockStateDir,
  readCounter,
  readPrivateFile,
  type StateLock,
  writeCounter,
  writePrivateFile,
} from "./statedir.ts";

/** A decrypted message kept until the application has it. */
export interface InboxEntry {
  sender: string;
  /** Unix seconds when it was decrypted. */
  at: number;
  /** `queued_at` of a stored C2C, else null. */
  queuedAt: number | null;
  plaintext: Uint8Array;
  verified: boolean;
}

/** Signed prekeys are replaced after this long (X3DH § 2.4 "periodically"). */
export const SIGNED_PREKEY_LIFETIME = 7 * 24 * 3600;
/** Old signed prekeys kept for messages still in flight. */
export const OLD_SIGNED_PREKEYS = 2;
/** Below this many one-time prekeys left on the server the client publishes new ones. */
export const ONE_TIME_PREKEY_LOW = 20;
/**
 * One-time prekey secrets held at most. Keys handed out to a fetcher that has not
 * written yet stay held after new ones are published; the oldest beyond this go.
 */
export const MAX_HELD_ONE_TIME_PREKEYS = 4 * MAX_ONE_TIME_PREKEYS;

/** `$XDG_STATE_HOME/backbone/e2e/<client id>` (default `~/.local/state/…`). */
export function defaultStateDir(clientId: string): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "backbone", "e2e", clientId);
}

export interface OpenOptions {
  /** The rollback counter's file (default `<dir>.generation`, outside the directory). */
  counterPath?: string;
  /** Accept a state whose counter file is missing (e.g. moved to a new machine on purpose). */
  acceptMissingCounter?: boolean;
  random?: Random;
  /** Unix seconds (tests). */
  now?: () => number;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: unknown) => new Uint8Array(Buffer.from(String(s), "hex"));

interface StoredPreKey extends PreKey {
  createdAt: number;
}

export class E2EState {
  readonly dir: string;
  identity!: Identity;
  signedPreKeys: StoredPreKey[] = [];
  oneTimePreKeys = new Map<number, PreKey>();
  nextPreKeyId = 1;
  peers = new Map<string, PeerSessions>();
  inbox: InboxEntry[] = [];
  knownPeers = new KnownPeers();
  generation = 0;
  /** ID of the signed prekey last published (0: never published). */
  publishedSignedPreKey = 0;
  readonly #lock: StateLock;
  readonly #counterPath: string;
  readonly #random: Random;
  readonly now: () => number;

  private constructor(dir: string, lock: StateLock, opts: OpenOptions) {
    this.dir = dir;
    this.#lock = lock;
    this.#counterPath = opts.counterPath ?? `${dir}.generation`;
    this.#random = opts.random ?? systemRandom;
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /**
   * Opens (creating when absent) the state of `clientId` in `dir`. Throws `E2EError`
   * `LOCKED`, `ROLLED_BACK`, `STATE_UNSAFE`, `STATE_CORRUPT` or `STATE_IO`.
   */
  static open(dir: string, clientId: string, opts: OpenOptions = {}): E2EState {
    ensurePrivateDir(dir);
    const lock = lockStateDir(dir);
    try {
      const st = new E2EState(dir, lock, opts);
      st.#load(clientId, opts);
      return st;
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  #load(clientId: string, opts: OpenOptions): void {
    const raw = readPrivateFile(join(this.dir, "state.json"));
    const counter = readCounter(this.#counterPath);
    const peersText = readPrivateFile(join(this.dir, "known_peers"));
    if (peersText) this.knownPeers = KnownPeers.parse(peersText.toString("utf8"));
    if (!raw) {
      if (counter !== null && counter > 0) {
        throw new E2EError(
          "ROLLED_BACK",
          `E2E state in ${this.dir} is missing but ${this.#counterPath} says generation ${counter}: refusing to start over silently (remove the counter file to reset)`,
        );
      }
      this.identity = generateIdentity(clientId, this.#random);
      this.#rotateSignedPreKey();
      this.save();
      return;
    }
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(raw.toString("utf8"));
    } catch (cause) {
      throw new E2EError("STATE_CORRUPT", `${join(this.dir, "state.json")} is not valid JSON`, {
        cause,
      });
    }
    const generation = Number(o.generation);
    if (counter === null && !opts.acceptMissingCounter) {
      throw new E2EError(
        "ROLLED_BACK",
        `${this.#counterPath} is missing: the E2E state in ${this.dir} may be an old copy (if you moved it on purpose, open it with acceptMissingCounter)`,
      );
    }
    if (counter !== null && generation < counter) {
      throw new E2EError(
        "ROLLED_BACK",
        `E2E state in ${this.dir} is generation ${generation}, older than the last one written (${counter}): an old copy was restored; refusing to use it`,
      );
    }
    if (String(o.clientId) !== clientId.toLowerCase()) {
      throw new E2EError("STATE_CORRUPT", `${this.dir} holds the E2E state of another client`);
    }
    this.generation = generation;
    this.#fromJson(o);
    if (counter !== generation) writeCounter(this.#counterPath, generation);
  }

  #fromJson(o: Record<string, unknown>): void {
    try {
      const id = o.identity as Record<string, string>;
      this.identity = {
        clientId: String(o.clientId),
        signing: { secret: unhex(id.signingSecret), public: unhex(id.signingPublic) },
        dh: { secret: unhex(id.dhSecret), public: unhex(id.dhPublic) },
        dhSignature: unhex(id.dhSignature),
      };
      const pk = (k: Record<string, unknown>) => ({
        id: Number(k.id),
        key: unhex(k.key),
        secret: unhex(k.secret),
        signature: unhex(k.signature),
        createdAt: Number(k.createdAt ?? 0),
      });
      this.signedPreKeys = (o.signedPreKeys as Record<string, unknown>[]).map(pk);
      this.oneTimePreKeys = new Map(
        (o.oneTimePreKeys as Record<string, unknown>[]).map((k) => [Number(k.id), pk(k)]),
      );
      this.nextPreKeyId = Number(o.nextPreKeyId);
      this.publishedSignedPreKey = Number(o.publishedSignedPreKey ?? 0);
      this.peers = new Map(
        Object.entries(o.peers as Record<string, unknown>).map(([k, v]) => [k, deserializePeer(v)]),
      );
      this.inbox = (o.inbox as Record<string, unknown>[]).map((m) => ({
        sender: String(m.sender),
        at: Number(m.at),
        queuedAt: m.queuedAt === null ? null : Number(m.queuedAt),
        plaintext: unhex(m.plaintext),
        verified: Boolean(m.verified),
      }));
    } catch (cause) {
      if (cause instanceof E2EError) throw cause;
      throw new E2EError("STATE_CORRUPT", `${join(this.dir, "state.json")} is damaged`, { cause });
    }
  }

  /** Writes everything (one atomic write), then the rollback counter. */
  save(): void {
    const next = this.generation + 1;
    const pk = (k: PreKey & { createdAt?: number }) => ({
      id: k.id,
      key: hex(k.key),
      secret: hex(k.secret),
      signature: hex(k.signature),
      createdAt: k.createdAt ?? 0,
    });
    const doc = {
      version: 1,
      clientId: this.identity.clientId.toLowerCase(),
      generation: next,
      identity: {
        signingSecret: hex(this.identity.signing.secret),
        signingPublic: hex(this.identity.signing.public),
        dhSecret: hex(this.identity.dh.secret),
        dhPublic: hex(this.identity.dh.public),
        dhSignature: hex(this.identity.dhSignature),
      },
      signedPreKeys: this.signedPreKeys.map(pk),
      oneTimePreKeys: [...this.oneTimePreKeys.values()].map(pk),
      nextPreKeyId: this.nextPreKeyId,
      publishedSignedPreKey: this.publishedSignedPreKey,
      peers: Object.fromEntries([...this.peers].map(([k, v]) => [k, serializePeer(v)])),
      inbox: this.inbox.map((m) => ({ ...m, plaintext: hex(m.plaintext) })),
    };
    writePrivateFile(join(this.dir, "state.json"), JSON.stringify(doc));
    this.generation = next;
    writeCounter(this.#counterPath, next);
  }

  /** Writes `known_peers` (atomically). */
  saveKnownPeers(): void {
    writePrivateFile(join(this.dir, "known_peers"), this.knownPeers.format());
  }

  /** The prekeys for decryption. */
  get preKeys(): PreKeyStore {
    return { signedPreKeys: this.signedPreKeys, oneTimePreKeys: this.oneTimePreKeys };
  }

  /** The sessions with `peerId` (empty when none). */
  peer(peerId: string): PeerSessions {
    return this.peers.get(peerId.toLowerCase()) ?? { peerId: peerId.toLowerCase(), sessions: [] };
  }

  /** Replaces a signed prekey older than SIGNED_PREKEY_LIFETIME; true when it did. Call `save()`. */
  maybeRotateSignedPreKey(): boolean {
    const current = this.signedPreKeys[0];
    if (current && this.now() - current.createdAt < SIGNED_PREKEY_LIFETIME) return false;
    this.#rotateSignedPreKey();
    return true;
  }

  #rotateSignedPreKey(): void {
    const spk = {
      ...generateSignedPreKey(this.identity, this.nextPreKeyId++, this.#random),
      createdAt: this.now(),
    };
    this.signedPreKeys = [spk, ...this.signedPreKeys].slice(0, 1 + OLD_SIGNED_PREKEYS);
  }

  /**
   * Makes `count` new one-time prekeys (IDs above every earlier one, so the directory
   * can refuse an ID it has seen) and returns them; drops the oldest held beyond
   * MAX_HELD_ONE_TIME_PREKEYS. Call `save()` before publishing them.
   */
  addOneTimePreKeys(count: number): PreKey[] {
    const made = generateOneTimePreKeys(this.identity, this.nextPreKeyId, count, this.#random);
    this.nextPreKeyId += count;
    for (const k of made) this.oneTimePreKeys.set(k.id, k);
    // Map order is insertion order, and IDs only grow: the first entries are the oldest.
    for (const id of this.oneTimePreKeys.keys()) {
      if (this.oneTimePreKeys.size <= MAX_HELD_ONE_TIME_PREKEYS) break;
      this.oneTimePreKeys.delete(id);
    }
    return made;
  }

  /** Releases the lock. The object must not be used afterwards. */
  close(): void {
    this.#lock.release();
  }
}
