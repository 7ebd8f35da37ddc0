/**
 * `known_peers`: the peers whose E2E identity this client has seen, trusted on first
 * use as OpenSSH's `known_hosts` (docs/E2E.md § Trust). One line per peer:
 *
 *   <id> <name> <SHA256:fingerprint> <first-seen, unix s> <verified|unverified> [<pending fingerprint>]
 *
 * `name` is percent-encoded (any string a server reports is accepted), `-` when not
 * known yet (a literal `-` is written `%2D`). Lines starting
 * with `#` and blank lines are ignored.
 *
 * Rules: a first contact is recorded (unverified). A changed key of an unverified peer
 * replaces the old one and is announced loudly. A changed key of a verified peer is
 * held as `pending`: sending to that peer is refused (`KEY_CHANGED`) until the user
 * accepts the new key, which then is unverified until verified again.
 */
import { nameKey } from "../ids.ts";
import { E2EError } from "./errors.ts";

export interface KnownPeer {
  id: string;
  name: string;
  /** `SHA256:…` of the identity key (fingerprint.ts `identityFingerprint`). */
  fingerprint: string;
  /** Unix seconds of the first sighting of this key. */
  firstSeen: number;
  verified: boolean;
  /** A new key seen for a verified peer, not yet accepted. */
  pending: string | null;
}

/** What `observe` found. */
export type Observation =
  | { status: "new"; peer: KnownPeer }
  | { status: "same"; peer: KnownPeer }
  | { status: "changed"; peer: KnownPeer; previous: string; blocked: boolean };

export class KnownPeers {
  readonly peers = new Map<string, KnownPeer>();

  /** Parses the file's text; throws `E2EError` `STATE_CORRUPT` naming the bad line. */
  static parse(text: string): KnownPeers {
    const out = new KnownPeers();
    text.split("\n").forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      const f = line.split(/\s+/);
      const [id, name, fingerprint, firstSeen, state, pending] = f;
      const seen = Number(firstSeen);
      if (
        f.length < 5 ||
        f.length > 6 ||
        !id ||
        !name ||
        !fingerprint?.startsWith("SHA256:") ||
        !Number.isSafeInteger(seen) ||
        (state !== "verified" && state !== "unverified") ||
        (pending !== undefined && !pending.startsWith("SHA256:"))
      ) {
        throw new E2EError("STATE_CORRUPT", `known_peers line ${i + 1} is malformed`);
      }
      let decoded: string;
      try {
        decoded = name === "-" ? "" : decodeURIComponent(name);
      } catch {
        throw new E2EError("STATE_CORRUPT", `known_peers line ${i + 1} is malformed`);
      }
      out.peers.set(id.toLowerCase(), {
        id: id.toLowerCase(),
        name: decoded,
        fingerprint,
        firstSeen: seen,
        verified: state === "verified",
        pending: pending ?? null,
      });
    });
    return out;
  }

  format(): string {
    const lines = [
      "# backbone known_peers: <id> <name> <identity key fingerprint> <first seen, unix s> <verified|unverified> [<pending new key>]",
    ];
    for (const p of this.peers.values()) {
      const fields = [
        p.id,
        p.name === "" ? "-" : encodeURIComponent(p.name).replace(/^-$/, "%2D"),
        p.fingerprint,
        String(p.firstSeen),
        p.verified ? "verified" : "unverified",
      ];
      if (p.pending) fields.push(p.pending);
      lines.push(fields.join(" "));
    }
    return `${lines.join("\n")}\n`;
  }

  get(id: string): KnownPeer | undefined {
    return this.peers.get(id.toLowerCase());
  }

  /** The peers recorded under `name` (compared as the server does: NFKC, case folded). */
  byName(name: string): KnownPeer[] {
    const key = nameKey(name);
    return [...this.peers.values()].filter((p) => p.name !== "" && nameKey(p.name) === key);
  }

  /**
   * Records that `id` presented the identity with `fingerprint` (TOFU). `name` is
   * updated when known; `now` is unix seconds.
   */
  observe(id: string, name: string | undefined, fingerprint: string, now: number): Observation {
    const key = id.toLowerCase();
    const known = this.peers.get(key);
    if (!known) {
      const peer: KnownPeer = {
        id: key,
        name: name ?? "",
        fingerprint,
        firstSeen: now,
        verified: false,
        pending: null,
      };
      this.peers.set(key, peer);
      return { status: "new", peer };
    }
    if (name) known.name = name;
    if (known.fingerprint === fingerprint) {
      // The old key came back: a pending change is moot.
      known.pending = null;
      return { status: "same", peer: known };
    }
    const previous = known.fingerprint;
    if (known.verified) {
      known.pending = fingerprint;
      return { status: "changed", peer: known, previous, blocked: true };
    }
    known.fingerprint = fingerprint;
    known.firstSeen = now;
    known.pending = null;
    return { status: "changed", peer: known, previous, blocked: false };
  }

  /**
   * Throws `E2EError` `KEY_CHANGED` when sending to `id` must wait for the user;
   * `label` names the peer in the message (default: its recorded name or ID).
   */
  checkSend(id: string, label?: string): void {
    const p = this.get(id);
    if (p?.verified && p.pending) {
      throw new E2EError(
        "KEY_CHANGED",
        `the identity key of verified peer ${label || p.name || p.id} changed (${p.fingerprint} → ${p.pending}); nothing is sent until you accept the new key`,
        { peer: label || p.name || p.id },
      );
    }
  }

  /** Accepts the pending (or current) key of `id`; it is then unverified. */
  accept(id: string, now: number): KnownPeer {
    const p = this.get(id);
    if (!p) throw new E2EError("UNKNOWN_PEER", `no known key for ${id}`);
    if (p.pending) {
      p.fingerprint = p.pending;
      p.pending = null;
      p.firstSeen = now;
      p.verified = false;
    }
    return p;
  }

  /** Marks `id` verified, provided its key is still `fingerprint` (what the user compared). */
  verify(id: string, fingerprint: string): KnownPeer {
    const p = this.get(id);
    if (!p) throw new E2EError("UNKNOWN_PEER", `no known key for ${id}`);
    if (p.fingerprint !== fingerprint || p.pending) {
      throw new E2EError("KEY_CHANGED", `the key of ${p.name || p.id} is not the one compared`);
    }
    p.verified = true;
    return p;
  }
}
