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
import {
  MAX_HELD_ONE_TIME_PREKEYS,
  MAX_RETIRED_IDENTITIES,
  MAX_ROLLOVER_LINKS,
  OLD_SIGNED_PREKEYS,
  RETIRED_IDENTITY_SECONDS,
  SIGNED_PREKEY_LIFETIME,
} from "./constants.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint } from "./fingerprint.ts";
import {
  generateIdentity,
  generateOneTimePreKeys,
  generateSignedPreKey,
  type Identity,
  identityKeyBytes,
  type PreKey,
  publicIdentity,
} from "./keys.ts";
import { KnownPeers } from "./known-peers.ts";
import { type Random, systemRandom } from "./primitives.ts";
import { type RolloverLink, signRollover } from "./rollover.ts";
import type { PeerSessions, PreKeyStore } from "./session.ts";
import {
  decodeStateDoc,
  encodeStateDoc,
  type InboxEntry,
  type RecentLive,
  type RetiredIdentity,
  type SentEntry,
  type StoredPreKey,
} from "./state-doc.ts";
import {
  ensurePrivateDir,
  lockStateDir,
  readCounter,
  readPrivateFile,
  type StateLock,
  writeCounter,
  writePrivateFile,
} from "./statedir.ts";

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

export type { InboxEntry, RecentLive } from "./state-doc.ts";

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
  /** Rollovers from earlier identities to this one, oldest first (rollover.ts). */
  rollovers: RolloverLink[] = [];
  /** Identities replaced by a rollover, newest first, still decrypting messages in flight. */
  retired: RetiredIdentity[] = [];
  /** Peers sent the rollover envelope since the last rollover. */
  rolloverSentTo: string[] = [];
  /** Recent end-to-end messages sent, for a re-send after a session reset (sent.ts). */
  sent: SentEntry[] = [];
  /** Set when the state was exported to another machine (export.ts): it is not used again. */
  movedAt: number | null = null;
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
    if (this.movedAt !== null) {
      throw new E2EError(
        "STATE_MOVED",
        `the E2E state in ${this.dir} was exported to another machine (${new Date(this.movedAt * 1000).toISOString()}) and is not used here any more: use it there, or bring it back with backbone e2e import`,
      );
    }
    this.#stamp = this.#stampOf();
    if (counter !== generation) writeCounter(this.#counterPath, generation);
  }

  #fromJson(o: Record<string, unknown>): void {
    Object.assign(this, decodeStateDoc(o, join(this.dir, "state.json")));
  }

  /** Writes everything (one atomic write), then the rollback counter. Under the lock only. */
  #write(): void {
    const next = this.generation + 1;
    const doc = encodeStateDoc(this, next);
    if (this.#peersDirty) {
      writePrivateFile(join(this.dir, "known_peers"), this.knownPeers.format());
      this.#peersDirty = false;
    }
    writePrivateFile(join(this.dir, "state.json"), doc);
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

  /**
   * Replaces the identity with a new one signed by the old (docs/E2E.md § Key rollover):
   * the old identity, its prekeys and its sessions are kept RETIRED_IDENTITY_SECONDS for
   * messages in flight; new sessions start from the new identity. Returns the new link.
   * Call inside a transaction (or `save()` after it), then publish (`syncKeys`).
   */
  rotateIdentity(): RolloverLink {
    const previous = this.identity;
    const next = generateIdentity(previous.clientId, this.#random);
    const link = signRollover(previous, next);
    this.retired.unshift({
      identity: previous,
      signedPreKeys: this.signedPreKeys,
      oneTimePreKeys: this.oneTimePreKeys,
      peers: this.peers,
      retiredAt: this.now(),
    });
    this.retired = this.retired.slice(0, MAX_RETIRED_IDENTITIES);
    this.rollovers = [...this.rollovers, link].slice(-MAX_ROLLOVER_LINKS);
    this.rolloverSentTo = [];
    this.identity = next;
    this.signedPreKeys = [];
    this.oneTimePreKeys = new Map();
    this.peers = new Map();
    this.publishedSignedPreKey = 0;
    this.#rotateSignedPreKey();
    return link;
  }

  /** Drops retired identities older than RETIRED_IDENTITY_SECONDS; true when it did. */
  pruneRetired(): boolean {
    const keep = this.retired.filter((r) => this.now() - r.retiredAt < RETIRED_IDENTITY_SECONDS);
    if (keep.length === this.retired.length) return false;
    this.retired = keep;
    return true;
  }

  /** This client's identity keys (`Encode(IK)`), current first, then the retired ones. */
  ownIdentityKeys(): Uint8Array[] {
    return [this.identity, ...this.retired.map((r) => r.identity)].map((i) =>
      identityKeyBytes(publicIdentity(i)),
    );
  }

  /** `SHA256:…` of the current identity key. */
  get fingerprint(): string {
    return identityFingerprint(publicIdentity(this.identity));
  }

  /** The `state.json` text as last written (for export.ts; under the lock). */
  documentText(): string {
    return encodeStateDoc(this, this.generation);
  }

  /** Kept for symmetry with `open`: the lock is held per transaction only. */
  close(): void {
    this.#lock?.release();
    this.#lock = null;
  }
}
