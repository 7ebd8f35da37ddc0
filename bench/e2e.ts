/**
 * What end-to-end encryption costs a client (docs/E2E.md), each loop bounded in count
 * and time: the pure core in memory (X3DH + first message, a ratchet message each way,
 * a message that skips 1,000 keys), then the same with the state on disk (one
 * transaction per message: fsynced atomic write of state.json and the counter), and a
 * room message to 10 and 100 members (a ciphertext each, one transaction).
 * Usage: bun bench/e2e.ts [--seconds S]   (default 2 per row)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  generateIdentity,
  generateOneTimePreKeys,
  generateSignedPreKey,
  publicIdentity,
} from "../src/e2e/keys.ts";
import {
  decryptMessage,
  encryptMessage,
  type PeerSessions,
  startSession,
} from "../src/e2e/session.ts";
import { E2EState } from "../src/e2e/state.ts";
import { encodeRoomE2E, splitEntries } from "../src/wire/room-e2e.ts";

const i = process.argv.indexOf("--seconds");
const SECONDS = i >= 0 ? Number(process.argv[i + 1]) : 2;
const MAX_OPS = 100_000;
const A = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";
const B = "5b2e6a1c-8d3f-4e2a-9b7c-1d2e3f4a5b6c";
const text = new TextEncoder().encode("a chat message of ordinary length, say sixty bytes or so.");

function row(name: string, op: () => void): void {
  const end = performance.now() + SECONDS * 1000;
  let n = 0;
  const t0 = performance.now();
  while (n < MAX_OPS && performance.now() < end) {
    op();
    n++;
  }
  const ms = (performance.now() - t0) / n;
  console.log(`${name.padEnd(52)} ${ms.toFixed(3).padStart(9)} ms/op  (${n} ops)`);
}

const alice = generateIdentity(A);
const bob = generateIdentity(B);
const spk = generateSignedPreKey(bob, 1);
const opks = generateOneTimePreKeys(bob, 10, 1);
const bundle = {
  identity: publicIdentity(bob),
  signedPreKey: spk,
  oneTimePreKeys: opks.map(({ id, key, signature }) => ({ id, key, signature })),
};
const preKeys = { signedPreKeys: [spk], oneTimePreKeys: new Map(opks.map((k) => [k.id, k])) };

row("X3DH (verify bundle, 4 DH) + first message, sender", () => {
  const s = startSession(alice, { peerId: B, sessions: [] }, bundle);
  encryptMessage(alice, s, text);
});
const first = encryptMessage(alice, startSession(alice, { peerId: B, sessions: [] }, bundle), text);
row("X3DH + first message, recipient", () => {
  decryptMessage(bob, preKeys, A, { peerId: A, sessions: [] }, first.data);
});

// An established conversation.
let sa: PeerSessions = first.peer;
let sb: PeerSessions = decryptMessage(
  bob,
  preKeys,
  A,
  { peerId: A, sessions: [] },
  first.data,
).peer;
const reply = encryptMessage(bob, sb, text);
sb = reply.peer;
sa = decryptMessage(alice, preKeys, B, sa, reply.data).peer;
row("ratchet message, same chain: encrypt + decrypt", () => {
  const m = encryptMessage(alice, sa, text);
  sa = m.peer;
  sb = decryptMessage(bob, preKeys, A, sb, m.data).peer;
});
row("ratchet message with a DH step each way", () => {
  const m = encryptMessage(alice, sa, text);
  sa = m.peer;
  sb = decryptMessage(bob, preKeys, A, sb, m.data).peer;
  const r = encryptMessage(bob, sb, text);
  sb = r.peer;
  sa = decryptMessage(alice, preKeys, B, sa, r.data).peer;
});
{
  // The recipient's side only: the message is made once; decryption is transactional,
  // so every round starts from the same state.
  let s = sa;
  for (let k = 0; k < 1000; k++) s = encryptMessage(alice, s, text).peer;
  const far = encryptMessage(alice, s, text);
  row("receive a message after 1,000 lost ones (keys skipped)", () => {
    decryptMessage(bob, preKeys, A, sb, far.data);
  });
}

const root = mkdtempSync(join(tmpdir(), "backbone-bench-e2e-"));
try {
  const st = E2EState.open(join(root, "alice"), A);
  st.peers.set(B, sa);
  st.save();
  row("send with the state on disk (one transaction)", () => {
    st.transaction(() => {
      const m = encryptMessage(st.identity, st.peer(B), text);
      st.peers.set(B, m.peer);
    });
  });
  // A room message (docs/E2E.md § Rooms): one ciphertext per member in one transaction,
  // then the C2C type 5 message(s) carrying them.
  for (const members of [10, 100]) {
    const ids: string[] = [];
    for (let k = 0; k < members; k++) {
      const id = `00000000-0000-4000-8000-${String(k).padStart(12, "0")}`;
      const peer = generateIdentity(id);
      const pspk = generateSignedPreKey(peer, 1);
      st.peers.set(
        id,
        startSession(
          st.identity,
          { peerId: id, sessions: [] },
          {
            identity: publicIdentity(peer),
            signedPreKey: pspk,
            oneTimePreKeys: [],
          },
        ),
      );
      ids.push(id);
    }
    st.save();
    const messageId = new Uint8Array(8);
    row(`room message to ${members} members (encrypt each, save, type 5)`, () => {
      const entries = st.transaction(() =>
        ids.map((id) => {
          const m = encryptMessage(st.identity, st.peer(id), text, "ops");
          st.peers.set(id, m.peer);
          return { member: id, ciphertext: m.data };
        }),
      );
      for (const g of splitEntries("ops", entries)) encodeRoomE2E(messageId, "ops", g);
    });
    for (const id of ids) st.peers.delete(id);
  }
  st.close();
} finally {
  rmSync(root, { recursive: true, force: true });
}
