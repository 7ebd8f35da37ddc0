/**
 * Direct messages of the E2E layer (docs/E2E.md): `E2EManager.send` — end-to-end
 * encrypted when the peer has published keys, else plaintext with a warning or refused
 * — and `E2EManager.lookupPeer`. Both run one at a time in the manager's send order.
 */
import type { Client } from "../client/client.ts";
import { isUuid } from "../ids.ts";
import { fetchBundle } from "./directory.ts";
import { E2EError } from "./errors.ts";
import { identityFingerprint, safetyNumber } from "./fingerprint.ts";
import { publicIdentity } from "./keys.ts";
import type { PeerInfo, SendOptions, SendResult } from "./manager-types.ts";
import { checkPin, resolvePeer } from "./peer-checks.ts";
import { adoptFetched, type E2EHost, isVerified } from "./peer-keys.ts";
import { rolloverAnnouncement } from "./rollover-peer.ts";
import { recordSent } from "./sent.ts";
import { encryptMessage, startSession } from "./session.ts";

/** See `E2EManager.send`: sends `data` to `to` (an ID or a name) over `client`. */
export async function sendDirect(
  host: E2EHost,
  client: Client,
  to: string,
  data: Uint8Array,
  opts: SendOptions,
): Promise<SendResult> {
  const { state } = host;
  const id = await resolvePeer(client, state, to, (e) => host.emit("nameChanged", e));
  const label = opts.name ?? (isUuid(to) ? undefined : to);
  const hasSession = state.transaction((tx) => {
    tx.skipWrite();
    state.knownPeers.checkSend(id, label);
    return state.peer(id).sessions.some((x) => x.ratchet.cks);
  });
  const fetched = hasSession ? null : await fetchBundle((req) => client.keyDirectory(req), id);
  if (!hasSession && !fetched) {
    if (opts.requireE2E || opts.strict || opts.peerKey) {
      throw new E2EError("NO_KEYS", `${label ?? to} has published no E2E keys`);
    }
    const name = opts.name ?? (isUuid(to) ? state.knownPeers.get(id)?.name : to);
    host.emit("plaintext", {
      id,
      ...(name ? { name } : {}),
      direction: "out",
      reason: "the peer has published no E2E keys",
    });
    client.send(id, data);
    return { to: id, e2e: false };
  }
  // Encrypted and saved in one transaction, before the message leaves.
  const envelope = state.transaction(() => {
    let peer = state.peer(id);
    if (fetched && !peer.sessions.some((x) => x.ratchet.cks)) {
      adoptFetched(host, fetched, id);
      state.knownPeers.checkSend(id, label);
      peer = startSession(state.identity, peer, fetched.bundle);
    }
    checkPin(id, label ?? to, peer, opts, (i, fp) => isVerified(state, i, fp));
    const r = encryptMessage(state.identity, peer, data);
    state.peers.set(id, r.peer);
    // For a re-send after a session reset (pinned sends only ever to a verified key).
    recordSent(state, id, data, r.data, Boolean(opts.strict || opts.peerKey));
    return { data: r.data, rollover: rolloverAnnouncement(state, id) };
  });
  // After a rollover, the signed chain goes first to each peer, once.
  if (envelope.rollover) client.send(id, envelope.rollover);
  client.send(id, envelope.data);
  return { to: id, e2e: true };
}

/** See `E2EManager.lookupPeer`: the identity of `query` (an ID or a name) as this client knows it. */
export async function lookupPeer(host: E2EHost, client: Client, query: string): Promise<PeerInfo> {
  const { state } = host;
  const id = await resolvePeer(client, state, query, (e) => host.emit("nameChanged", e));
  const known = state.transaction((tx) => {
    tx.skipWrite();
    return state.peer(id).sessions[0] !== undefined;
  });
  let name: string | undefined;
  const fetched = known ? null : await fetchBundle((req) => client.keyDirectory(req), id);
  if (!known && !fetched) throw new E2EError("NO_KEYS", `${query} has published no E2E keys`);
  const peer = state.transaction((tx) => {
    const current = state.peer(id);
    if (current.sessions[0] || !fetched) {
      tx.skipWrite();
      return current;
    }
    // Start a session with it, so the fetched one-time prekey is not wasted.
    name = fetched.name;
    adoptFetched(host, fetched, id);
    const started = startSession(state.identity, current, fetched.bundle);
    state.peers.set(id, started);
    return started;
  });
  const identity = (peer.sessions[0] as NonNullable<(typeof peer.sessions)[0]>).peerIdentity;
  const fingerprint = identityFingerprint(identity);
  const record = state.knownPeers.get(id);
  const self = state.identity;
  return {
    id,
    name: name ?? record?.name ?? "",
    fingerprint,
    verified: isVerified(state, id, fingerprint),
    pending: record?.pending ?? null,
    safetyNumber: safetyNumber(self.clientId, publicIdentity(self), id, identity),
  };
}
