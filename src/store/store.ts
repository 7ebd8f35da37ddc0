/**
 * The store interface: the client registry and the offline queue, behind one small
 * interface so that a second backend (Redis, for several server nodes) slots in
 * without touching the server. Every method is async for that reason; the embedded
 * SQLite store answers synchronously inside the promise.
 */

/** A registered client. IDs are canonical UUID text. */
export interface ClientRecord {
  id: string;
  name: string;
  /** SubjectPublicKeyInfo DER. */
  publicKey: Uint8Array;
  /** `SHA256:…` of `publicKey`. */
  fingerprint: string;
  /** Unix seconds. */
  createdAt: number;
  revokedAt: number | null;
  lastSeen: number | null;
  /** Online as last recorded by a server (false for all when none runs). */
  online: boolean;
}

/** A direct C2C held for an offline recipient. */
export interface StoredMessage {
  /** Store order; strictly increasing per recipient. */
  seq: number;
  sender: string;
  /** The room it was sent to (its name as created), or null for a direct message. */
  room: string | null;
  /** Unix seconds. */
  queuedAt: number;
  data: Uint8Array;
}

/** Bounds of one recipient's offline queue. */
export interface QueueLimits {
  maxMessages: number;
  maxBytes: number;
  /** Seconds a message is kept. */
  maxAge: number;
  /** Messages one sender may hold in one recipient's queue. */
  maxPerSender: number;
}

/** `failure`: the store could not write (disk full, I/O error), as opposed to a bound. */
/** A message to hold: who sent it, when (unix s), and its data. */
export interface QueuedMessage {
  sender: string;
  /** The room it was sent to, for a room message (docs/PROTOCOL.md § Rooms). */
  room?: string;
  at: number;
  data: Uint8Array;
}

/** A client went online or offline at `at` (unix seconds). */
export interface PresenceChange {
  id: string;
  online: boolean;
  at: number;
}

/**
 * A server node's lease on life: it renews `until` (unix ms) while it runs, so a reader
 * of the store can tell a running server from one that crashed (presence, revocation).
 * `appliedSerial`: the revocation serial the node has carried out (see `revokeClient`).
 */
export interface NodeLease {
  node: string;
  host: string;
  pid: number;
  renewedAt: number;
  until: number;
  appliedSerial: number;
}

/** A room (docs/PROTOCOL.md § Rooms). `name` as created; rooms are unique up to `nameKey`. */
export interface RoomRecord {
  name: string;
  /** The owner's client ID. */
  owner: string;
  /** Anyone may join (else invite-only). */
  public: boolean;
  /** Unix seconds. */
  createdAt: number;
}

/** A client's place in a room: a member, or invited (may join an invite-only room). */
export type RoomState = "member" | "invited";

export interface RoomMembership {
  room: string;
  client: string;
  state: RoomState;
  /** Unix seconds it took this state. */
  since: number;
}

export type EnqueueResult = { ok: true } | { ok: false; reason: string; failure?: true };

/**
 * A message refused by a bound of `limits`: the recipient's queue is full in messages or
 * in bytes, or this sender holds `maxPerSender` in it. Every backend says it in these words.
 */
export function queueRefusal(
  bound: "messages" | "bytes" | "sender",
  limits: QueueLimits,
): { ok: false; reason: string } {
  const reason =
    bound === "messages"
      ? `recipient's queue is full (${limits.maxMessages} messages)`
      : bound === "bytes"
        ? `recipient's queue is full (${limits.maxBytes} bytes)`
        : `you already have ${limits.maxPerSender} messages queued for this recipient`;
  return { ok: false, reason };
}

/**
 * The E2E key directory's storage (docs/PROTOCOL.md § KEYS): per owner one bundle head
 * (identity and signed prekey, opaque bytes) and up to a bound of one-time prekeys
 * (opaque entries with a numeric ID). Small on purpose, so any backend can hold it.
 */
export interface KeyStore {
  /**
   * Stores `owner`'s bundle. `replace`: head and one-time prekeys replace everything
   * held. Otherwise `identity` must equal the one held (else `identity_mismatch`), the
   * head is replaced and the one-time prekeys are added; IDs not above the highest ever
   * stored for this identity are refused (`stale_prekey`), so a prekey once handed out
   * can never come back. At most `maxOneTime` are held (`too_many`). All or nothing.
   */
  publishKeys(
    owner: string,
    bundle: {
      identity: Uint8Array;
      head: Uint8Array;
      oneTime: { id: number; entry: Uint8Array }[];
    },
    replace: boolean,
    maxOneTime: number,
  ): Promise<{ ok: true; oneTime: number } | { ok: false; error: string }>;
  /**
   * `owner`'s head and one one-time prekey, removed in the same atomic step so that no
   * two callers ever get the same one (null when none are left); null when no bundle.
   */
  takeKeys(
    owner: string,
  ): Promise<{ head: Uint8Array; oneTime: Uint8Array | null; remaining: number } | null>;
  /** How many one-time prekeys `owner` has left; null when it has no bundle. */
  countKeys(owner: string): Promise<number | null>;
  /** The identity key (64 bytes, `Encode(IK)`) of `owner`'s bundle; null when it has none. */
  keyIdentity(owner: string): Promise<Uint8Array | null>;
  /** Deletes `owner`'s bundle; false when there was none. */
  deleteKeys(owner: string): Promise<boolean>;
  /** `owner`'s whole bundle as held (for `backbone migrate`); null when none. */
  exportKeys(owner: string): Promise<ExportedKeys | null>;
  /** Holds `keys` for `owner` exactly as exported elsewhere (replacing any bundle). */
  importKeys(owner: string, keys: ExportedKeys): Promise<void>;
}

/** A bundle as a key directory holds it, prekey ID floor included (see KeyStore). */
export interface ExportedKeys {
  identity: Uint8Array;
  head: Uint8Array;
  /** The highest one-time prekey ID ever held for this identity. */
  maxPrekeyId: number;
  oneTime: { id: number; entry: Uint8Array }[];
}

/**
 * Rooms and memberships in a store (docs/PROTOCOL.md § Rooms). Room arguments are
 * names, matched by `nameKey`; client IDs are matched case-insensitively.
 */
export interface RoomStore {
  /**
   * Creates a room with its owner as its first member (one write). Throws `StoreError`
   * `NAME_TAKEN` when a room of that name (up to nameKey) exists.
   */
  createRoom(room: RoomRecord): Promise<void>;
  getRoom(name: string): Promise<RoomRecord | null>;
  /** Members and invitations of a room, oldest first. */
  roomMembers(name: string): Promise<RoomMembership[]>;
  /** The rooms a client is a member of or invited to. */
  roomsOf(client: string): Promise<RoomMembership[]>;
  /**
   * Sets `client`'s state in the room (null: removes it). When no member is left, the
   * room and its invitations are deleted in the same write; returns whether it was.
   */
  setMembership(
    name: string,
    client: string,
    state: RoomState | null,
    at: number,
  ): Promise<{ deleted: boolean }>;
  /** Hands the room to `owner` (who must be a member). */
  setRoomOwner(name: string, owner: string): Promise<void>;
}

export interface Store {
  /** The E2E key directory; a backend without one makes the server answer `unavailable`. */
  readonly keys?: KeyStore;
  /** Rooms and memberships (docs/PROTOCOL.md § Rooms). */
  readonly rooms: RoomStore;
  /** Registers a client; throws `StoreError` `NAME_TAKEN` or `ID_TAKEN`. */
  addClient(client: {
    id: string;
    name: string;
    publicKey: Uint8Array;
    fingerprint: string;
  }): Promise<ClientRecord>;
  getClient(id: string): Promise<ClientRecord | null>;
  /** By ID (when `query` parses as a UUID) or by name (NFKC + case folded). */
  findClient(query: string): Promise<ClientRecord | null>;
  listClients(): Promise<ClientRecord[]>;
  countClients(): Promise<number>;
  /**
   * Registers a client exactly as recorded elsewhere (creation, revocation and last-seen
   * times kept; offline), for `backbone migrate`. Throws `StoreError` `NAME_TAKEN` or
   * `ID_TAKEN` like {@link Store.addClient}.
   */
  importClient(record: ClientRecord): Promise<void>;
  /**
   * Marks a client revoked and raises the revocation serial (in one write); false when
   * it does not exist or already is.
   */
  revokeClient(id: string, at: number): Promise<boolean>;
  /** Revocations made so far: each running node confirms the serial it has carried out. */
  revocationSerial(): Promise<number>;
  /** Deletes held messages sent by `sender` (a revoked client); returns how many. */
  dropFromSender(sender: string): Promise<number>;
  /** Writes a node's lease (insert or replace). */
  renewLease(lease: NodeLease): Promise<void>;
  /** Every node's lease as last written, expired ones included. */
  leases(): Promise<NodeLease[]>;
  /**
   * Records logins (online) and logouts (offline) at `at` (unix s, also "last seen"),
   * all in one write.
   */
  setPresence(changes: PresenceChange[]): Promise<void>;
  /** Marks every client offline (a server starting after a crash). */
  resetPresence(): Promise<void>;

  /**
   * Holds messages for an offline recipient, in order, within `limits` (each checked as
   * if the ones before it were already held); never evicts. One write for all of them:
   * a storage failure fails them all, nothing half-stored.
   */
  enqueue(
    recipient: string,
    messages: QueuedMessage[],
    limits: QueueLimits,
  ): Promise<EnqueueResult[]>;
  /** Up to `limit` held messages for `recipient` after sequence `afterSeq` (default 0), oldest first. */
  peek(recipient: string, limit: number, afterSeq?: number): Promise<StoredMessage[]>;
  /** Deletes `recipient`'s held messages up to and including `seq`. */
  remove(recipient: string, throughSeq: number): Promise<void>;
  /** Deletes messages queued before `before` (unix s); returns how many. */
  expire(before: number): Promise<number>;
  /** The recipients that have held messages, in no particular order. */
  heldRecipients(): Promise<string[]>;
  /** Messages held for every recipient. */
  pendingCount(): Promise<number>;

  /** A value that changes whenever another process changed the registry. */
  version(): Promise<number>;
  /**
   * Bounds the store's size in bytes (0: no bound): writes that would grow it past the
   * bound fail, and `enqueue` answers a storage failure. Optional for backends that
   * cannot bound themselves.
   */
  setMaxBytes?(bytes: number): void;
  /**
   * Proves the store answers and can commit a write (the monitor's /healthz); throws
   * with the store's own error otherwise. Optional: without it, a read is the proof.
   */
  probe?(): Promise<void>;
  /** Checks the store's integrity; returns problems found (empty when sound). */
  check(): Promise<string[]>;
  close(): void;
}
