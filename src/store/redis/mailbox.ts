/**
 * A cluster node's mailbox reader (docs/CLUSTER.md): the node's own stream
 * (`{p}mail:{id}`) read with a blocking XREAD on a connection of its own, resuming from
 * the last entry handled after any reconnect; each batch is handed on in order, then
 * deleted — so a Redis restart or a dropped connection loses nothing (unlike pub/sub,
 * which drops what is published while a subscriber reconnects).
 *
 * Entry fields: `k` kind (`d` direct, `b` broadcast, `f` forwarded copy, `c` command),
 * `r` recipient ID (d, f), `p` the message as delivered, or the command's JSON (c).
 */
import type IORedis from "ioredis";

/** Mailbox entries read per XREAD. */
const READ_COUNT = 512;
/** How long one blocking XREAD waits (ms) before it is issued again. */
const BLOCK_MS = 2_000;

/** An entry of this node's mailbox. */
export type MailItem =
  | { kind: "direct"; recipient: string; plain: Uint8Array }
  | { kind: "broadcast"; plain: Uint8Array }
  | { kind: "control"; command: Record<string, unknown> }
  /** A copy of what another node delivered locally just before it knew of a session here. */
  | { kind: "forward"; recipient: string; plain: Uint8Array };

export class MailboxReader {
  readonly #reader: IORedis;
  readonly #trim: IORedis;
  readonly #key: string;
  readonly #onMail: (item: MailItem) => void;
  readonly #fail: (what: string, err: unknown) => void;
  #lastId = "0-0";
  #closed = false;
  #reading: Promise<void> | null = null;

  /**
   * `reader`: a connection for the blocking reads alone; `trim`: the one that deletes
   * handled entries. `fail` hears background errors (never after `stop`).
   */
  constructor(
    reader: IORedis,
    trim: IORedis,
    key: string,
    onMail: (item: MailItem) => void,
    fail: (what: string, err: unknown) => void,
  ) {
    this.#reader = reader;
    this.#trim = trim;
    this.#key = key;
    this.#onMail = onMail;
    this.#fail = (what, err) => {
      if (!this.#closed) fail(what, err);
    };
  }

  /** True once reading has begun. */
  get started(): boolean {
    return this.#reading !== null;
  }

  start(): void {
    this.#reading ??= this.#loop();
  }

  /** Stops reading (the batch under way is finished and trimmed first). */
  async stop(): Promise<void> {
    this.#closed = true;
    this.#reader.disconnect();
    await this.#reading;
  }

  /** Stops at once, the reader's connection dropped. */
  abandon(): void {
    this.#closed = true;
    this.#reader.disconnect();
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      let batch: [Buffer, Buffer[]][] = [];
      try {
        const res = await this.#reader.xreadBuffer(
          "COUNT",
          READ_COUNT,
          "BLOCK",
          BLOCK_MS,
          "STREAMS",
          this.#key,
          this.#lastId,
        );
        batch = res?.[0]?.[1] ?? [];
      } catch (e) {
        this.#fail("mailbox read", e);
        if (!this.#closed) await Bun.sleep(100);
        continue;
      }
      if (batch.length === 0) continue;
      const ids: string[] = [];
      for (const [id, fields] of batch) {
        ids.push(String(id));
        this.#lastId = String(id);
        const item = mailItem(fields);
        if (item) this.#onMail(item);
      }
      // Handed to local connections: gone from the mailbox. Until this returns, a crash
      // leaves them for the reaper (held for their recipients: at least once).
      try {
        await this.#trim.xdel(this.#key, ...ids);
      } catch (e) {
        this.#fail("mailbox trim", e);
      }
    }
  }
}

/** One stream entry's fields as a mail item; null for an unknown kind or a malformed command. */
function mailItem(fields: Buffer[]): MailItem | null {
  const f: Record<string, Buffer> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[String(fields[i])] = fields[i + 1] as Buffer;
  const kind = String(f.k);
  const bytes = new Uint8Array(f.p ?? Buffer.alloc(0));
  if (kind === "d") return { kind: "direct", recipient: String(f.r), plain: bytes };
  if (kind === "b") return { kind: "broadcast", plain: bytes };
  if (kind === "f") return { kind: "forward", recipient: String(f.r), plain: bytes };
  if (kind === "c") {
    try {
      return { kind: "control", command: JSON.parse(String(f.p)) };
    } catch {
      return null; // a malformed command is no reason to stop reading
    }
  }
  return null;
}
