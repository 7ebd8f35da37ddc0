/**
 * Bookkeeping for fault and soak tests: every message a test sends, what the server
 * said of it (NOTICE queued / rejected …), and every copy that arrived, so a test can
 * check end to end that nothing acknowledged was lost, nothing came twice, and each
 * sender's messages came in order (docs/PROTOCOL.md § What is guaranteed).
 *
 * NOTICEs carry no message ID, only the recipient's address, so senders send in
 * **batches**: at most one message per recipient, then a HEARTBEAT (`ping`) as a
 * barrier. A NOTICE for address A during a batch is then about that batch's one message
 * to A. A batch is only started on an open link, so nothing is buffered across links.
 *
 * @example
 * const ledger = new Ledger();
 * ledger.watch(alice, "alice"); ledger.watch(bob, "bob");
 * await ledger.batch(alice, "alice", [{ id: bob.id, name: "bob" }]);
 * expect(ledger.summary().lost).toBe(0);
 */
import type { Client } from "../../src/client/client.ts";

export interface Peer {
  id: string;
  name: string;
}

type Fate = "sent" | "queued" | "rejected" | "other";

export interface Summary {
  sent: number;
  /** Distinct messages that arrived (live or stored). */
  delivered: number;
  deliveredLive: number;
  deliveredStored: number;
  /** Answered NOTICE queued. */
  queued: number;
  /** Answered NOTICE rejected (or unknown, too_large …). */
  rejected: number;
  /** Answered NOTICE queued and never delivered: must be 0. */
  lost: number;
  /** Sent, never delivered, no NOTICE heard: lost in a cut (no acknowledgement promised). */
  unconfirmed: number;
  duplicates: number;
  outOfOrder: number;
}

export class Ledger {
  readonly #fate = new Map<string, Fate>();
  readonly #copies = new Map<string, number>();
  readonly #next = new Map<string, number>();
  readonly #last = new Map<string, number>();
  /** Per sender name: recipient ID → the text of the open batch's message to it. */
  readonly #open = new Map<string, Map<string, string>>();
  /**
   * Per sender name: messages the client library requeued (they never reached the
   * socket) per recipient ID, oldest first. They go out first after the reconnect, so
   * their NOTICEs come before those of the next batch.
   */
  readonly #resent = new Map<string, Map<string, string[]>>();
  readonly problems: string[] = [];
  sent = 0;
  live = 0;
  stored = 0;

  /** Records `client`'s NOTICEs (as sender `name`) and its incoming messages. */
  watch(client: Client, name: string): void {
    client.on("notice", (n) => {
      let text = this.#resent.get(name)?.get(n.address)?.shift();
      if (!text) {
        text = this.#open.get(name)?.get(n.address);
        this.#open.get(name)?.delete(n.address);
      }
      if (!text) {
        this.problems.push(`${name}: NOTICE ${n.status} for ${n.address} outside a batch`);
        return;
      }
      this.#fate.set(
        text,
        n.status === "queued" ? "queued" : n.status === "rejected" ? "rejected" : "other",
      );
    });
    client.on("message", (m) => this.received(name, new TextDecoder().decode(m.data), m.kind));
    client.on("requeued", (messages) => {
      const resent = this.#resent.get(name) ?? new Map<string, string[]>();
      for (const { to, data } of messages) {
        resent.set(to, [...(resent.get(to) ?? []), new TextDecoder().decode(data)]);
      }
      this.#resent.set(name, resent);
    });
  }

  /** A copy of `text` arrived at `to`. */
  received(to: string, text: string, kind: string): void {
    const m = /^(.+)>(.+)#(\d+)/.exec(text);
    if (!m || m[2] !== to || !this.#fate.has(text)) {
      this.problems.push(`${to} got an unexpected message ${JSON.stringify(text.slice(0, 60))}`);
      return;
    }
    // A requeued message that arrived live will get no NOTICE: stop expecting one.
    for (const list of this.#resent.get(m[1] as string)?.values() ?? []) {
      const i = list.indexOf(text);
      if (i >= 0) list.splice(i, 1);
    }
    const id = text.trimEnd().replace(/\.+$/, ""); // without the padding, for messages
    const copies = (this.#copies.get(text) ?? 0) + 1;
    this.#copies.set(text, copies);
    if (copies > 1) this.problems.push(`${to} got ${id} twice`);
    else if (kind === "stored") this.stored++;
    else this.live++;
    const pair = `${m[1]}>${m[2]}`;
    const n = Number(m[3]);
    if (n <= (this.#last.get(pair) ?? -1))
      this.problems.push(`${id} came after #${this.#last.get(pair)}`);
    this.#last.set(pair, Math.max(n, this.#last.get(pair) ?? -1));
  }

  /** The next message text from `from` to `to` (names), padded to `size` bytes. */
  text(from: string, to: string, size = 0): string {
    const pair = `${from}>${to}`;
    const n = this.#next.get(pair) ?? 0;
    this.#next.set(pair, n + 1);
    const text = `${pair}#${n} `;
    return size > text.length ? text.padEnd(size, ".") : text;
  }

  /**
   * Sends one message from `client` (named `from`) to each of `to`, then pings. Resolves
   * true when the ping came back (every NOTICE of the batch has arrived), false when the
   * link failed first or `client` was not connected.
   */
  async batch(client: Client, from: string, to: readonly Peer[], size = 0): Promise<boolean> {
    if (!client.connected) return false;
    const open = new Map<string, string>();
    this.#open.set(from, open);
    try {
      for (const peer of to) {
        const text = this.text(from, peer.name, size);
        this.#fate.set(text, "sent");
        this.sent++;
        open.set(peer.id, text);
        client.send(peer.id, text);
      }
      await client.ping();
      // Everything sent before this batch has been handled: no requeued message is pending.
      this.#resent.delete(from);
      return true;
    } catch {
      return false;
    } finally {
      if (this.#open.get(from) === open) this.#open.delete(from);
    }
  }

  /** Texts answered NOTICE queued that have not arrived (yet). */
  missing(): string[] {
    return [...this.#fate]
      .filter(([t, f]) => f === "queued" && !this.#copies.has(t))
      .map(([t]) => t);
  }

  summary(): Summary {
    let queued = 0;
    let rejected = 0;
    let lost = 0;
    let unconfirmed = 0;
    for (const [text, fate] of this.#fate) {
      const got = this.#copies.has(text);
      if (fate === "queued") queued++;
      if (fate === "rejected" || fate === "other") rejected++;
      if (fate === "queued" && !got) lost++;
      if (fate === "sent" && !got) unconfirmed++;
    }
    let duplicates = 0;
    for (const n of this.#copies.values()) duplicates += n - 1;
    return {
      sent: this.sent,
      delivered: this.#copies.size,
      deliveredLive: this.live,
      deliveredStored: this.stored,
      queued,
      rejected,
      lost,
      unconfirmed,
      duplicates,
      outOfOrder: this.problems.filter((p) => p.includes(" came after ")).length,
    };
  }

  /** `soak: sent=… delivered=… queued=… lost=…` */
  line(label: string): string {
    const s = this.summary();
    return `${label}: sent=${s.sent} delivered=${s.delivered} (live=${s.deliveredLive} stored=${s.deliveredStored}) queued=${s.queued} rejected=${s.rejected} lost=${s.lost} unconfirmed=${s.unconfirmed} duplicates=${s.duplicates} out_of_order=${s.outOfOrder}`;
  }
}
