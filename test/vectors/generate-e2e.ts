/**
 * Writes test/vectors/e2e.json: backbone-e2e/1 vectors from fixed inputs (docs/E2E.md
 * § Test vectors). Run: `bun test/vectors/generate-e2e.ts`. Every random input is drawn
 * from SHA-256(label || counter) and written out, so another implementation can feed
 * the same keys and compare each intermediate value. test/e2e-vectors.test.ts checks
 * the file with independent code (noble primitives, the spec's formulas written out).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { associatedData, decodeEnvelope } from "../../src/e2e/envelope.ts";
import { safetyNumber } from "../../src/e2e/fingerprint.ts";
import {
  encodeBundle,
  generateIdentity,
  type Identity,
  identityKeyBytes,
  publicIdentity,
} from "../../src/e2e/keys.ts";
import type { Random } from "../../src/e2e/primitives.ts";
import { kdfCk, messageKeys } from "../../src/e2e/ratchet.ts";
import { encodeResetEnvelope, messageDigest } from "../../src/e2e/reset.ts";
import { encodeChain, encodeRolloverEnvelope, signRollover } from "../../src/e2e/rollover.ts";
import {
  decryptMessage,
  encryptMessage,
  type PeerSessions,
  startSession,
} from "../../src/e2e/session.ts";
import { ControlType, encodeControl } from "../../src/wire/message.ts";
import { ALICE, BOB, empty, fetchedBundle, makeParty, seededRandom } from "../helpers/e2e.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Wraps a random source so that every draw is recorded. */
function recorded(label: string): { random: Random; draws: string[] } {
  const inner = seededRandom(label);
  const draws: string[] = [];
  return {
    draws,
    random: (n) => {
      const b = inner(n);
      draws.push(hex(b));
      return b;
    },
  };
}

export function buildVectors() {
  const ka = recorded("backbone-e2e/1 vectors alice");
  const kb = recorded("backbone-e2e/1 vectors bob");
  const alice = makeParty(ALICE, ka.random, 2);
  const bob = makeParty(BOB, kb.random, 2);
  const bundle = fetchedBundle(bob);
  let sa: PeerSessions = startSession(alice.identity, empty(BOB), bundle, ka.random);
  let sb: PeerSessions = empty(ALICE);
  const session = sa.sessions[0];
  if (!session?.pending) throw new Error("no session");
  const x3dh = {
    alice_ephemeral_public: hex(session.pending.ephemeral),
    signed_prekey_id: session.pending.signedPreKeyId,
    one_time_prekey_id: session.pending.oneTimePreKeyId,
    alice_first_ratchet_public: hex(session.ratchet.dhs.public),
    root_key_after_init: hex(session.ratchet.rk),
    sending_chain_key_after_init: hex(session.ratchet.cks as Uint8Array),
  };
  const script: [from: "alice" | "bob", text: string][] = [
    ["alice", "hello bob"],
    ["alice", "second, same chain"],
    ["bob", "hi alice"],
    ["alice", "after a ratchet step"],
    ["bob", ""],
    ["bob", "x".repeat(100)],
  ];
  const messages = script.map(([from, text]) => {
    const me = from === "alice" ? alice : bob;
    const other = from === "alice" ? bob : alice;
    const state = from === "alice" ? sa : sb;
    const active = state.sessions.find((s) => s.ratchet.cks);
    if (!active) throw new Error("cannot send");
    const chainKey = active.ratchet.cks as Uint8Array;
    const [, mk] = kdfCk(chainKey);
    const { key, nonce } = messageKeys(mk);
    const r = encryptMessage(me.identity, state, new TextEncoder().encode(text));
    const ad = associatedData(
      me.id,
      publicIdentity(me.identity),
      other.id,
      publicIdentity(other.identity),
    );
    const env = decodeEnvelope(r.data);
    const sender = r.peer.sessions[0];
    const vec = {
      from,
      plaintext: text,
      sender_ratchet_secret: hex(sender?.ratchet.dhs.secret as Uint8Array),
      chain_key: hex(chainKey),
      message_key: hex(mk),
      aes_key: hex(key),
      nonce: hex(nonce),
      associated_data: hex(ad),
      header: { dh: hex(env.header.dh), pn: env.header.pn, n: env.header.n },
      envelope: hex(r.data),
    };
    // Deliver at once and record the receiver's new root key.
    const rnd = from === "alice" ? kb.random : ka.random;
    if (from === "alice") {
      sa = r.peer;
      sb = decryptMessage(bob.identity, bob.preKeys, ALICE, sb, r.data, rnd).peer;
    } else {
      sb = r.peer;
      sa = decryptMessage(alice.identity, alice.preKeys, BOB, sa, r.data, rnd).peer;
    }
    return vec;
  });
  const party = (p: typeof alice) => ({
    id: p.id,
    signing_secret: hex(p.identity.signing.secret),
    signing_public: hex(p.identity.signing.public),
    dh_secret: hex(p.identity.dh.secret),
    dh_public: hex(p.identity.dh.public),
    dh_signature: hex(p.identity.dhSignature),
    signed_prekey: {
      id: p.spk.id,
      secret: hex(p.spk.secret),
      public: hex(p.spk.key),
      signature: hex(p.spk.signature),
    },
    one_time_prekeys: p.opks.map((k) => ({
      id: k.id,
      secret: hex(k.secret),
      public: hex(k.key),
      signature: hex(k.signature),
    })),
  });
  return {
    description:
      "backbone-e2e/1 vectors (docs/E2E.md § Test vectors). Random draws are listed per party in order; Ed25519 secrets are RFC 8032 seeds.",
    alice: party(alice),
    bob: party(bob),
    bob_fetched_bundle: hex(encodeBundle(bundle)),
    x3dh,
    messages,
    directory: directoryVectors(
      hex(encodeBundle(bundle)),
      hex(encodeBundle({ ...bundle, oneTimePreKeys: bob.opks })),
      hex(identityKeyBytes(bundle.identity)),
    ),
    safety_number: safetyNumber(
      ALICE,
      publicIdentity(alice.identity),
      BOB,
      publicIdentity(bob.identity),
    ),
    random_draws: { alice: ka.draws, bob: kb.draws },
    rollover: rolloverVectors(alice.identity),
    reset: resetVectors(bob.identity, messages[0]?.envelope as string),
  };
}

/** Alice rolls over to a new identity (docs/E2E.md § Key rollover). */
function rolloverVectors(old: Identity) {
  const next = generateIdentity(ALICE, seededRandom("backbone-e2e/1 vectors alice rollover"));
  const link = signRollover(old, next);
  return {
    new_identity: {
      signing_secret: hex(next.signing.secret),
      signing_public: hex(next.signing.public),
      dh_secret: hex(next.dh.secret),
      dh_public: hex(next.dh.public),
      dh_signature: hex(next.dhSignature),
    },
    link_signature: hex(link.signature),
    chain: hex(encodeChain([link])),
    envelope: hex(encodeRolloverEnvelope(publicIdentity(next), [link])),
  };
}

/** Bob, who lost his session, asks Alice to send her first message again (§ Session reset). */
function resetVectors(bob: Identity, failed: string) {
  const digest = messageDigest(Buffer.from(failed, "hex"));
  return {
    failed_envelope_digest: digest,
    request: hex(encodeResetEnvelope(bob, ALICE, [digest])),
  };
}

/** KEYS (0x18) messages as they appear inside an encrypted frame, timestamp 1767225600. */
function directoryVectors(fetched: string, published: string, identity: string) {
  const at = 1767225600;
  const b64 = (h: string) => Buffer.from(h, "hex").toString("base64");
  const msg = (body: Record<string, unknown>) => ({
    body,
    message: hex(encodeControl(ControlType.KEYS, body, at)),
  });
  return {
    timestamp: at,
    publish_request: msg({ op: "publish", bundle: b64(published), replace: true }),
    publish_reply: msg({ op: "publish", one_time_prekeys: 2 }),
    fetch_request: msg({ op: "fetch", client: "bob" }),
    fetch_reply: msg({ op: "fetch", id: BOB, name: "bob", bundle: b64(fetched) }),
    count_request: msg({ op: "count" }),
    count_reply: msg({
      op: "count",
      published: true,
      one_time_prekeys: 1,
      identity: b64(identity),
    }),
  };
}

if (import.meta.main) {
  const out = join(import.meta.dir, "e2e.json");
  writeFileSync(out, `${JSON.stringify(buildVectors(), null, 2)}\n`);
  console.log(`wrote ${out}`);
}
