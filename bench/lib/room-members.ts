/**
 * Worker of bench/room-fanout.ts: the room's members, on their own thread (so their
 * decryption does not sit on the probe's event loop). Connects every identity it is
 * given, joins the room, then reports `{ready}` and, once `expect` copies arrived,
 * `{done}`.
 */
import { connect } from "../../src/client/client.ts";
import { parseIdentity } from "../../src/client/identity.ts";

declare const self: Worker;

self.onmessage = async (e: MessageEvent) => {
  const { identities, room, expect } = e.data as {
    identities: string[];
    room: string;
    expect: number;
  };
  let copies = 0;
  const clients = [];
  for (const text of identities) {
    const c = await connect({ identity: await parseIdentity(text), reconnect: false });
    await c.rooms.join(room);
    c.on("message", () => {
      if (++copies === expect) self.postMessage({ done: copies });
    });
    clients.push(c);
  }
  self.postMessage({ ready: clients.length });
};
