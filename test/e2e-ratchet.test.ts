/**
 * The Double Ratchet and sessions against the pitfalls of real E2E systems: loss and
 * reordering across ratchet steps, replay, a huge message number, both sides starting
 * at once, unknown key-share by forwarding, a rewritten sender.
 */
import { describe, expect, test } from "bun:test";
import { MAX_SKIP, MAX_SKIPPED_KEYS } from "../src/e2e/constants.ts";
import { associatedData, decodeEnvelope } from "../src/e2e/envelope.ts";
import { generateIdentity, publicIdentity } from "../src/e2e/keys.ts";
import { ratchetDecrypt, serializeState } from "../src/e2e/ratchet.ts";
import {
  decryptMessage,
  deserializePeer,
  encryptMessage,
  type PeerSessions,
  serializePeer,
  startSession,
} from "../src/e2e/session.ts";
import { ALICE, BOB, empty, fetchedBundle, MALLORY, makeParty, type Party } from "./helpers/e2e.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Two parties with their view of each other; `send` and `recv` keep the state. */
function pair() {
  const a = makeParty(ALICE);
  const b = makeParty(BOB);
  const st = { a: startSession(a.identity, empty(BOB), fetchedBundle(b)), b: empty(ALICE) };
  const send = (from: "a" | "b", text: string) => {
    const me = from === "a" ? a : b;
    const r = encryptMessage(me.identity, st[from], enc.encode(text));
    st[from] = r.peer;
    return r.data;
  };
  const recv = (to: "a" | "b", data: Uint8Array) => {
    const me: Party = to === "a" ? a : b;
    const r = decryptMessage(me.identity, me.preKeys, to === "a" ? BOB : ALICE, st[to], data);
    st[to] = r.peer;
    if (r.usedOneTimePreKey !== null) me.preKeys.oneTimePreKeys.delete(r.usedOneTimePreKey);
    return dec.decode(r.plaintext);
  };
  const snapshot = (who: "a" | "b") => JSON.stringify(serializePeer(st[who]));
  return { a, b, st, send, recv, snapshot };
}

describe("double ratchet", () => {
  test("a conversation in both directions, the prekey header dropped after the first reply", () => {
    const p = pair();
    const m1 = p.send("a", "hello");
    expect(decodeEnvelope(m1).type).toBe(1);
    expect(p.recv("b", m1)).toBe("hello");
    expect(p.b.preKeys.oneTimePreKeys.size).toBe(4); // the one-time prekey is consumed
    const m2 = p.send("b", "hi alice");
    expect(decodeEnvelope(m2).type).toBe(2);
    expect(p.recv("a", m2)).toBe("hi alice");
    const m3 = p.send("a", "how are you");
    expect(decodeEnvelope(m3).type).toBe(2);
    expect(p.recv("b", m3)).toBe("how are you");
    for (let i = 0; i < 20; i++) {
      const from = i % 3 === 0 ? "b" : "a";
      const msg = p.send(from, `m${i}`);
      expect(p.recv(from === "a" ? "b" : "a", msg)).toBe(`m${i}`);
    }
  });

  test("loss and reordering across ratchet steps", () => {
    const p = pair();
    expect(p.recv("b", p.send("a", "start"))).toBe("start");
    expect(p.recv("a", p.send("b", "ok"))).toBe("ok");
    // Chain 1 from Alice: a0..a4; Bob replies (new ratchet step); chain 2: a5..a9.
    const chain1 = [0, 1, 2, 3, 4].map((i) => p.send("a", `a${i}`));
    expect(p.recv("b", chain1[1] as Uint8Array)).toBe("a1");
    expect(p.recv("a", p.send("b", "step"))).toBe("step");
    const chain2 = [5, 6, 7, 8, 9].map((i) => p.send("a", `a${i}`));
    // Deliver chain 2 out of order first, then the rest of chain 1 backwards; a3 is lost.
    expect(p.recv("b", chain2[3] as Uint8Array)).toBe("a8");
    expect(p.recv("b", chain2[0] as Uint8Array)).toBe("a5");
    expect(p.recv("b", chain1[4] as Uint8Array)).toBe("a4");
    expect(p.recv("b", chain2[4] as Uint8Array)).toBe("a9");
    expect(p.recv("b", chain1[0] as Uint8Array)).toBe("a0");
    expect(p.recv("b", chain1[2] as Uint8Array)).toBe("a2");
    expect(p.recv("b", chain2[1] as Uint8Array)).toBe("a6");
    expect(p.recv("b", chain2[2] as Uint8Array)).toBe("a7");
    // The lost one still opens later.
    expect(p.recv("b", chain1[3] as Uint8Array)).toBe("a3");
  });

  test("first messages stored for an offline recipient arrive in any order", () => {
    const p = pair();
    const msgs = Array.from({ length: 30 }, (_, i) => p.send("a", `q${i}`));
    const order = [17, 3, 29, 0, 12, ...Array.from({ length: 30 }, (_, i) => i)].filter(
      (v, i, all) => all.indexOf(v) === i,
    );
    for (const i of order) expect(p.recv("b", msgs[i] as Uint8Array)).toBe(`q${i}`);
  });

  test("replay: a message shown once, the copy refused as DUPLICATE with state unchanged", () => {
    const p = pair();
    const first = p.send("a", "once");
    expect(p.recv("b", first)).toBe("once");
    const before = p.snapshot("b");
    expect(() => p.recv("b", first)).toThrow(expect.objectContaining({ code: "DUPLICATE" }));
    expect(p.snapshot("b")).toBe(before);
    // Ordinary messages, in-chain and skipped, and from an old chain.
    const m1 = p.send("a", "x");
    const m2 = p.send("a", "y");
    p.recv("b", m2);
    p.recv("b", m1);
    expect(() => p.recv("b", m1)).toThrow(expect.objectContaining({ code: "DUPLICATE" }));
    expect(() => p.recv("b", m2)).toThrow(expect.objectContaining({ code: "DUPLICATE" }));
    p.recv("a", p.send("b", "turn"));
    p.recv("b", p.send("a", "next chain"));
    expect(() => p.recv("b", m2)).toThrow(expect.objectContaining({ code: "DUPLICATE" }));
  });

  test("a header claiming a huge message number is refused, state unchanged", () => {
    const p = pair();
    p.recv("b", p.send("a", "start"));
    p.recv("a", p.send("b", "ok"));
    const msg = p.send("a", "far");
    for (const [field, offset] of [
      ["n", 36],
      ["pn", 32],
    ] as const) {
      for (const n of [MAX_SKIP + 5, 0xffffffff]) {
        // Rewrite the header (authentication would fail — but only after skipping, which
        // is what a naive implementation would spend unbounded time on).
        const forged = msg.slice();
        new DataView(forged.buffer).setUint32(4 + offset, n);
        const before = p.snapshot("b");
        expect(() => p.recv("b", forged), `${field}=${n}`).toThrow(
          expect.objectContaining({ code: "TOO_MANY_SKIPPED" }),
        );
        expect(p.snapshot("b")).toBe(before);
      }
    }
    expect(p.recv("b", msg)).toBe("far");
  });

  test("a forged message that fails authentication leaves the state exactly as it was", () => {
    const p = pair();
    p.recv("b", p.send("a", "start"));
    p.recv("a", p.send("b", "ok"));
    const good = p.send("a", "new chain");
    for (const n of [0, 7, MAX_SKIP]) {
      const forged = good.slice();
      new DataView(forged.buffer).setUint32(4 + 36, n);
      forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1;
      const before = p.snapshot("b");
      expect(() => p.recv("b", forged)).toThrow(
        expect.objectContaining({ code: "DECRYPT_FAILED" }),
      );
      expect(p.snapshot("b")).toBe(before);
    }
    expect(p.recv("b", good)).toBe("new chain");
  });

  test("ratchetDecrypt itself is transactional (works on a copy)", () => {
    const p = pair();
    p.recv("b", p.send("a", "start"));
    p.recv("a", p.send("b", "ok"));
    const good = p.send("a", "new chain");
    const session = p.st.b.sessions[0] as NonNullable<(typeof p.st.b.sessions)[0]>;
    const env = decodeEnvelope(good);
    const forged = env.ciphertext.slice();
    forged[0] = (forged[0] as number) ^ 1;
    const ad = associatedData(
      ALICE,
      publicIdentity(p.a.identity),
      BOB,
      publicIdentity(p.b.identity),
    );
    const before = JSON.stringify(serializeState(session.ratchet));
    expect(() =>
      ratchetDecrypt(session.ratchet, { ...env.header, n: 5 }, env.prefix, forged, ad),
    ).toThrow();
    expect(JSON.stringify(serializeState(session.ratchet))).toBe(before);
    const ok = ratchetDecrypt(session.ratchet, env.header, env.prefix, env.ciphertext, ad);
    expect(ok.plaintext.length).toBe(64);
    expect(JSON.stringify(serializeState(session.ratchet))).toBe(before);
  });

  test("a new chain whose pn skips too far is refused before any derivation", () => {
    const p = pair();
    p.recv("b", p.send("a", "start"));
    const reply = p.send("b", "r"); // Alice ratchets on this; craft a forged new chain for Bob
    p.recv("a", reply);
    const next = p.send("a", "new chain"); // header: new dh, pn = 1 (one sent on chain 1)
    const forged = next.slice();
    new DataView(forged.buffer).setUint32(4 + 32, MAX_SKIP + 10);
    const before = p.snapshot("b");
    expect(() => p.recv("b", forged)).toThrow(
      expect.objectContaining({ code: "TOO_MANY_SKIPPED" }),
    );
    expect(p.snapshot("b")).toBe(before);
    expect(p.recv("b", next)).toBe("new chain");
  });

  test(`up to MAX_SKIP (${MAX_SKIP}) skipped messages are accepted, and the total stays bounded`, () => {
    const p = pair();
    p.recv("b", p.send("a", "start"));
    const msgs: Uint8Array[] = [];
    for (let i = 0; i <= MAX_SKIP; i++) msgs.push(p.send("a", `s${i}`));
    // The last one skips exactly MAX_SKIP - 1 keys plus the one before: accepted.
    expect(p.recv("b", msgs[MAX_SKIP] as Uint8Array)).toBe(`s${MAX_SKIP}`);
    expect(p.recv("b", msgs[0] as Uint8Array)).toBe("s0");
    const skipped = p.st.b.sessions[0]?.ratchet.skipped.size ?? 0;
    expect(skipped).toBe(MAX_SKIP - 1);
    expect(skipped).toBeLessThanOrEqual(MAX_SKIPPED_KEYS);
  });

  test("both sides starting at once: every message opens and the sides converge", () => {
    const a = makeParty(ALICE);
    const b = makeParty(BOB);
    let sa: PeerSessions = startSession(a.identity, empty(BOB), fetchedBundle(b));
    let sb: PeerSessions = startSession(b.identity, empty(ALICE), fetchedBundle(a));
    const fromA = encryptMessage(a.identity, sa, enc.encode("a first"));
    sa = fromA.peer;
    const fromB = encryptMessage(b.identity, sb, enc.encode("b first"));
    sb = fromB.peer;
    const rb = decryptMessage(b.identity, b.preKeys, ALICE, sb, fromA.data);
    sb = rb.peer;
    const ra = decryptMessage(a.identity, a.preKeys, BOB, sa, fromB.data);
    sa = ra.peer;
    expect(dec.decode(rb.plaintext)).toBe("a first");
    expect(dec.decode(ra.plaintext)).toBe("b first");
    expect(sa.sessions.length).toBe(2);
    // Alternate for a few rounds; every message opens.
    for (let i = 0; i < 6; i++) {
      const x = encryptMessage(a.identity, sa, enc.encode(`a${i}`));
      sa = x.peer;
      const y = encryptMessage(b.identity, sb, enc.encode(`b${i}`));
      sb = y.peer;
      const rx = decryptMessage(b.identity, b.preKeys, ALICE, sb, x.data);
      sb = rx.peer;
      const ry = decryptMessage(a.identity, a.preKeys, BOB, sa, y.data);
      sa = ry.peer;
      expect(dec.decode(rx.plaintext)).toBe(`a${i}`);
      expect(dec.decode(ry.plaintext)).toBe(`b${i}`);
    }
    // One side answers the other: after that both send on the same session.
    const x = encryptMessage(a.identity, sa, enc.encode("ping"));
    sa = x.peer;
    sb = decryptMessage(b.identity, b.preKeys, ALICE, sb, x.data).peer;
    const y = encryptMessage(b.identity, sb, enc.encode("pong"));
    sb = y.peer;
    sa = decryptMessage(a.identity, a.preKeys, BOB, sa, y.data).peer;
    expect(sa.sessions[0]?.baseKey).toBe(sb.sessions[0]?.baseKey as string);
  });

  test("unknown key-share: a message forwarded to another recipient fails the AD check", () => {
    const p = pair();
    const m = p.send("a", "for bob only");
    // Mallory holds Bob's very keys under her own ID (e.g. a copied state): the AD names Bob.
    const mallory = { ...p.b, identity: { ...p.b.identity, clientId: MALLORY } };
    expect(() => decryptMessage(mallory.identity, mallory.preKeys, ALICE, empty(ALICE), m)).toThrow(
      expect.objectContaining({ code: "DECRYPT_FAILED" }),
    );
    // A third party with its own keys cannot even find the prekeys.
    const carol = makeParty(MALLORY);
    expect(() => decryptMessage(carol.identity, carol.preKeys, ALICE, empty(ALICE), m)).toThrow();
    expect(p.recv("b", m)).toBe("for bob only");
  });

  test("the server rewriting the sender: refused for prekey and ordinary messages", () => {
    const p = pair();
    const first = p.send("a", "one");
    // The prekey message's identity signature names Alice's ID.
    expect(() => decryptMessage(p.b.identity, p.b.preKeys, MALLORY, empty(MALLORY), first)).toThrow(
      expect.objectContaining({ code: "BAD_SIGNATURE" }),
    );
    p.recv("b", first);
    p.recv("a", p.send("b", "reply"));
    const second = p.send("a", "two");
    // Attributed to Mallory, against Alice's very sessions (the worst case): AD mismatch.
    const asMallory = { ...p.st.b, peerId: MALLORY };
    expect(() => decryptMessage(p.b.identity, p.b.preKeys, MALLORY, asMallory, second)).toThrow(
      expect.objectContaining({ code: "DECRYPT_FAILED" }),
    );
    expect(p.recv("b", second)).toBe("two");
  });

  test("a peer that re-installed (new identity) replaces the old sessions and says so", () => {
    const p = pair();
    p.recv("b", p.send("a", "old"));
    const a2 = { ...makeParty(ALICE), id: ALICE };
    a2.identity = generateIdentity(ALICE);
    const s = startSession(a2.identity, empty(BOB), fetchedBundle(p.b));
    const m = encryptMessage(a2.identity, s, enc.encode("new me"));
    const r = decryptMessage(p.b.identity, p.b.preKeys, ALICE, p.st.b, m.data);
    expect(r.identityChanged).toBe(true);
    expect(r.peer.sessions.length).toBe(1);
  });

  test("state survives serialization", () => {
    const p = pair();
    p.recv("b", p.send("a", "x"));
    const m1 = p.send("a", "skipped");
    p.recv("b", p.send("a", "y"));
    p.st.b = deserializePeer(JSON.parse(JSON.stringify(serializePeer(p.st.b))));
    expect(p.recv("b", m1)).toBe("skipped");
    expect(p.recv("a", p.send("b", "back"))).toBe("back");
  });
});
