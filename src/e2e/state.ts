/**
 * A client's E2E state on disk (docs/E2E.md § Client state): the identity, prekeys,
 * sessions with each peer and an inbox of decrypted messages not yet handed to the
 * application, all in `state.json`, plus `known_peers`. Every change is a
 * `transaction`: take the directory's lock, re-read the state if another process wrote
 * it since, change it, write it (one atomic write, so sessions and inbox change
 * together), release the lock. A rolled-back state is refused (statedir.ts).
 */
import { lstatSync } from "node:fs";
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
  /** Random, to recognise the entry across re-reads of the state. */
  key: string;
  sender: string;
  /** Unix seconds when it was decrypted. */
  at: number;
  /** `queued_at` of a stored C2C, else null. */
  queuedAt: number | null;
  plaintext: Uint8Array;
  /** False for a plaintext message kept only to keep the order (see session-manager.ts). */
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

/** How many live messages, and for how long (s), other processes can still show. */
export const RECENT_LIVE_MAX = 64;
export const RECENT_LIVE_SECONDS = 120;
/** …and how many bytes of plaintext at most: the state file is rewritten at every change. */
export const RECENT_LIVE_BYTES = 256 * 1024;

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
  /** How long a transaction waits for another process's lock (ms, default 10 000). */
  lockWaitMs?: number;
}

/** What a transaction's function may ask of it. */
export interface Transaction {
  /** Nothing changed: do not write. */
  skipWrite(): void;
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
  /** Recently decrypted live messages (see RecentLive). */
  recentLive: RecentLive[] = [];
  knownPeers = new KnownPeers();
  generation = 0;
  /** ID of the signed prekey last published (0: never published). */
  publishedSignedPreKey = 0;
  readonly #lockWaitMs: number;
  #lock: StateLock | null = null;
  /** inode, size and mtime of state.json as last read or written (changes on every write). */
  #stamp = "";
  #peersDirty = false;
  readonly #clientId: string;
  readonly #acceptMissingCounter: boolean;
  readonly #counterPath: string;
  readonly #random: Random;
  readonly now: () => number;

  private constructor(dir: string, clientId: string, opts: OpenOptions) {
    this.dir = dir;
    this.#clientId = clientId;
    this.#acceptMissingCounter = opts.acceptMissingCounter ?? false;
    this.#lockWaitMs = opts.lockWaitMs ?? 10_000;
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
    const st = new E2EState(dir, clientId, opts);
    st.#locked(() => st.#load());
    return st;
  }

  /**
   * Runs `fn` on the current state under the directory's lock — re-reading the state
   * first if another process changed it — then writes the result (unless `fn` calls
   * `skipWrite`). Nested calls join the outer transaction. Throws `E2EError` `LOCKED`
   * when another process holds the lock for longer than `lockWaitMs`, and what `fn` throws
   * (then nothing is written; the in-memory state is re-read at the next transaction).
   */
  transaction<T>(fn: (tx: Transaction) => T): T {
    if (this.#lock) return fn({ skipWrite() {} });
    return this.#locked(() => {
      this.#refresh();
      let write = true;
      let result: T;
      try {
        result = fn({
          skipWrite() {
            write = false;
          },
        });
      } catch (err) {
        this.#stamp = ""; // memory may be half-changed: re-read next time
        throw err;
      }
      if (write) this.#write();
      return result;
    });
  }

  #locked<T>(fn: () => T): T {
    this.#lock = lockStateDir(this.dir, this.#lockWaitMs);
    try {
      return fn();
    } finally {
      this.#lock.release();
      this.#lock = null;
    }
  }

  #stampOf(): string {
    try {
      const st = lstatSync(join(this.dir, "state.json"));
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return "";
    }
  }

  /** Re-reads the state when another process wrote it since we last did. */
  #refresh(): void {
    if (this.#stamp && this.#stampOf() === this.#stamp) return;
    const before = this.generation;
    this.#load();
    if (this.generation < before) {
      throw new E2EError(
        "ROLLED_BACK",
        `E2E state in ${this.dir} went back from generation ${before} to ${this.generation}: an old copy was restored`,
      );
    }
  }

  #load(): void {
    const clientId = this.#clientId;
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
      this.#write();
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
    if (counter === null && !this.#acceptMissingCounter) {
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
    this.#stamp = this.#stampOf();
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
        key: String(m.key),
        sender: String(m.sender),
        at: Number(m.at),
        queuedAt: m.queuedAt === null ? null : Number(m.queuedAt),
        plaintext: unhex(m.plaintext),
        e2e: m.e2e !== false,
        verified: Boolean(m.verified),
        ...(typeof m.room === "string" ? { room: m.room } : {}),
      }));
      this.recentLive = ((o.recentLive as Record<string, unknown>[] | undefined) ?? []).map(
        (m) => ({
          digest: String(m.digest),
          sender: String(m.sender),
          ...(typeof m.room === "string" ? { room: m.room } : {}),
          at: Number(m.at),
          plaintext: unhex(m.plaintext),
          verified: Boolean(m.verified),
        }),
      );
    } catch (cause) {
      if (cause instanceof E2EError) throw cause;
      throw new E2EError("STATE_CORRUPT", `${join(this.dir, "state.json")} is damaged`, { cause });
    }
  }

  /** Writes everything (one atomic write), then the rollback counter. Under the lock only. */
  #write(): void {
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
      recentLive: this.recentLive.map((m) => ({ ...m, plaintext: hex(m.plaintext) })),
    };
    if (this.#peersDirty) {
      writePrivateFile(join(this.dir, "known_peers"), this.knownPeers.format());
      this.#peersDirty = false;
    }
    writePrivateFile(join(this.dir, "state.json"), JSON.stringify(doc));
    this.#stamp = this.#stampOf();
    this.generation = next;
    writeCounter(this.#counterPath, next);
  }

  /** Writes the state as it is in memory, in a transaction (for a state that only this process uses). */
  save(): void {
    if (this.#lock) {
      this.#write();
      return;
    }
    this.#locked(() => this.#write());
  }

  /** Marks `known_peers` changed: the transaction writes it too (atomically). */
  saveKnownPeers(): void {
    this.#peersDirty = true;
    if (!this.#lock) this.save();
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

  /** Kept for symmetry with `open`: the lock is held per transaction only. */
  close(): void {
    this.#lock?.release();
    this.#lock = null;
  }
}
