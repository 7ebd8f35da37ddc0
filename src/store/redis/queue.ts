/**
 * The offline queue in the Redis store (store.ts, docs/CLUSTER.md): each recipient's
 * held messages in a stream `inbox:{id}` with ids `SEQ-0`, its totals in
 * `inbox:{id}:totals` and `inbox:{id}:senders` (kept by the ENQUEUE and REMOVE scripts,
 * so a bound check is one read), and the `seq` counter, `recipients` set and `pending`
 * counter shared by all.
 */
import type IORedis from "ioredis";
import type { EnqueueResult, QueuedMessage, QueueLimits, StoredMessage } from "../store.ts";
import { runScript, script } from "./lua.ts";
import { enqueueResult, fieldMap } from "./records.ts";
import { ENQUEUE, REMOVE } from "./scripts.ts";

/** Messages per ENQUEUE script call: bounds the time Redis spends in one script. */
const ENQUEUE_CHUNK = 256;

const ENQUEUE_SCRIPT = script(ENQUEUE);
const REMOVE_SCRIPT = script(REMOVE);

/** Runs a Redis call, turning its failure into `StoreError` `STORE_UNAVAILABLE`. */
type Call = <T>(what: string, run: () => Promise<T>) => Promise<T>;

export class RedisQueue {
  readonly #r: IORedis;
  readonly #p: string;
  readonly #call: Call;

  constructor(redis: IORedis, prefix: string, call: Call) {
    this.#r = redis;
    this.#p = prefix;
    this.#call = call;
  }

  #k(...parts: string[]): string {
    return this.#p + parts.join(":");
  }

  /** The stream of `recipient`'s held messages, its totals and its per-sender counts. */
  #inboxKeys(recipient: string): [string, string, string] {
    const inbox = this.#k("inbox", recipient);
    return [inbox, `${inbox}:totals`, `${inbox}:senders`];
  }

  async enqueue(
    recipient: string,
    messages: QueuedMessage[],
    limits: QueueLimits,
  ): Promise<EnqueueResult[]> {
    const [inbox, totals, senders] = this.#inboxKeys(recipient);
    const keys = [
      inbox,
      totals,
      senders,
      this.#k("seq"),
      this.#k("recipients"),
      this.#k("pending"),
    ];
    const results: EnqueueResult[] = [];
    try {
      for (let i = 0; i < messages.length; i += ENQUEUE_CHUNK) {
        const chunk = messages.slice(i, i + ENQUEUE_CHUNK);
        const args: (string | number | Uint8Array)[] = [
          recipient,
          limits.maxMessages,
          limits.maxBytes,
          limits.maxPerSender,
        ];
        for (const m of chunk) args.push(m.sender, m.at, m.room ?? "", m.data);
        const codes = (await runScript(this.#r, ENQUEUE_SCRIPT, keys, args)) as number[];
        for (const code of codes) results.push(enqueueResult(code, limits));
      }
      return results;
    } catch (cause) {
      // A chunk that failed was not written at all (a script is atomic); the ones before it were.
      const reason = `storage failure: ${(cause as Error).message}`;
      while (results.length < messages.length) results.push({ ok: false, reason, failure: true });
      return results;
    }
  }

  async peek(recipient: string, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    const [inbox] = this.#inboxKeys(recipient);
    const entries = await this.#call("peek", () =>
      this.#r.xrangeBuffer(inbox, `(${afterSeq}-0`, "+", "COUNT", limit),
    );
    return entries.map(([id, fields]) => {
      const f = fieldMap(fields);
      return {
        seq: Number(String(id).split("-")[0]),
        sender: String(f.s),
        room: f.r === undefined ? null : String(f.r),
        queuedAt: Number(String(f.t)),
        data: new Uint8Array(f.d ?? Buffer.alloc(0)),
      };
    });
  }

  async remove(recipient: string, throughSeq: number): Promise<void> {
    const [inbox, totals, senders] = this.#inboxKeys(recipient);
    const keys = [inbox, totals, senders, this.#k("recipients"), this.#k("pending")];
    await this.#call("remove", () =>
      runScript(this.#r, REMOVE_SCRIPT, keys, ["seq", throughSeq, recipient]),
    );
  }

  /**
   * REMOVE in every inbox that holds messages: those queued before `bound` (unix s,
   * `age`) or sent by `bound` (an ID, `sender`); returns how many went.
   */
  async removeEverywhere(mode: "age" | "sender", bound: string | number): Promise<number> {
    const recipients = await this.#call(mode, () => this.#r.smembers(this.#k("recipients")));
    let n = 0;
    for (const r of recipients) {
      const [inbox, totals, senders] = this.#inboxKeys(r);
      const keys = [inbox, totals, senders, this.#k("recipients"), this.#k("pending")];
      n += Number(
        await this.#call(mode, () => runScript(this.#r, REMOVE_SCRIPT, keys, [mode, bound, r])),
      );
    }
    return n;
  }

  async heldRecipients(): Promise<string[]> {
    return this.#call("recipients", () => this.#r.smembers(this.#k("recipients")));
  }

  async pendingCount(): Promise<number> {
    return Number((await this.#call("pending", () => this.#r.get(this.#k("pending")))) ?? 0);
  }

  /** Adds to `problems` each recipient whose totals do not match its stream. Throws what Redis throws. */
  async checkTotals(problems: string[]): Promise<void> {
    for (const r of await this.#r.smembers(this.#k("recipients"))) {
      const [inbox, totals] = this.#inboxKeys(r);
      const [len, count] = await Promise.all([this.#r.xlen(inbox), this.#r.hget(totals, "count")]);
      if (len !== Number(count)) problems.push(`inbox of ${r}: ${len} held, totals say ${count}`);
    }
  }
}
