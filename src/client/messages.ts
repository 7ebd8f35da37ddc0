/**
 * `client.messages()`: the client's incoming messages as an async iterator, from now
 * until it closes. A stored message is acknowledged once the loop body has handled it
 * — when the loop asks for the next one — not when it is queued here: a
 * process killed meanwhile gets it again (docs/PROTOCOL.md § ACK).
 */
import type { Client } from "./client.ts";
import type { IncomingMessage } from "./types.ts";

/** What the iterator needs of the client's acknowledgements (see acks.ts). */
export interface AckHold {
  hold(): number;
  release(token: number): void;
}

export function messageIterator(
  client: Client,
  acks: AckHold,
): AsyncIterableIterator<IncomingMessage> {
  const queue: IncomingMessage[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  const held = new WeakMap<IncomingMessage, number>();
  let current: IncomingMessage | undefined;
  const finish = () => {
    const token = current && held.get(current);
    if (token !== undefined) acks.release(token);
    current = undefined;
  };
  const onMessage = (m: IncomingMessage) => {
    if (m.stored) held.set(m, acks.hold());
    queue.push(m);
    wake?.();
  };
  const onClose = () => {
    done = true;
    wake?.();
  };
  client.on("message", onMessage);
  client.once("close", onClose);
  const iterator: AsyncIterableIterator<IncomingMessage> = {
    next: async () => {
      finish();
      while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
      wake = null;
      const value = queue.shift();
      current = value;
      return value ? { value, done: false } : { value: undefined, done: true };
    },
    return: async () => {
      done = true;
      client.off("message", onMessage);
      client.off("close", onClose);
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
