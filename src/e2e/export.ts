/**
 * Moving an E2E state to another machine (docs/E2E.md § One identity, one device):
 * `exportState` seals the whole state (identity, prekeys, sessions, `known_peers`) under
 * a passphrase and marks the source as moved, so that it is never used again next to
 * the copy (two copies of one ratchet state would reuse message keys — with AES-GCM,
 * key and nonce); `importState` installs it on the new machine.
 *
 * File: the line `backbone-e2e-export/1`, then one line of JSON
 * `{"kdf":"scrypt","n":32768,"r":8,"p":1,"salt":B64,"nonce":B64,"sealed":B64}`, where
 * `sealed` is AES-256-GCM (key = scrypt(passphrase, salt, N, r, p, 32), RFC 7914; the
 * first line as associated data) of the JSON `{"clientId","state","knownPeers"}`.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from "node:crypto";
import { join } from "node:path";
import { E2EError } from "./errors.ts";
import { E2EState } from "./state.ts";
import {
  ensurePrivateDir,
  lockStateDir,
  readPrivateFile,
  writeCounter,
  writePrivateFile,
} from "./statedir.ts";

const MAGIC = "backbone-e2e-export/1";
/** scrypt cost: 2^15 × 8 × 128 B = 32 MiB and roughly 0.1 s per try here. */
const SCRYPT = { N: 32768, r: 8, p: 1 };

function key(passphrase: string, salt: Buffer, p = SCRYPT): Buffer {
  return scryptSync(passphrase.normalize("NFC"), salt, 32, { ...p, maxmem: 64 * 1024 * 1024 });
}

/**
 * Seals the state in `state` under `passphrase` and marks it moved (in one
 * transaction): from now on opening it fails with `STATE_MOVED`. Returns the file's bytes.
 */
export function exportState(state: E2EState, passphrase: string): Uint8Array {
  if (passphrase.length === 0) throw new E2EError("BAD_PASSPHRASE", "an empty passphrase");
  return state.transaction(() => {
    const doc = state.documentText();
    const peers = readPrivateFile(join(state.dir, "known_peers"))?.toString("utf8") ?? "";
    const plain = Buffer.from(
      JSON.stringify({ clientId: state.identity.clientId, state: doc, knownPeers: peers }),
    );
    const salt = randomBytes(16);
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key(passphrase, salt), nonce);
    cipher.setAAD(Buffer.from(MAGIC));
    const sealed = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    plain.fill(0);
    state.movedAt = state.now();
    const head = { kdf: "scrypt", n: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p };
    const b64 = (b: Buffer) => b.toString("base64");
    return Buffer.from(
      `${MAGIC}\n${JSON.stringify({ ...head, salt: b64(salt), nonce: b64(nonce), sealed: b64(sealed) })}\n`,
    );
  });
}

/**
 * Installs an exported state of `clientId` in `dir` (with its rollback counter).
 * Refuses (`STATE_EXISTS`) to replace a state already there unless `force` or that
 * state was itself exported. Throws `E2EError` `MALFORMED`, `BAD_PASSPHRASE` (wrong
 * passphrase or a damaged file), `WRONG_CLIENT`, `STATE_EXISTS`.
 */
export function importState(
  dir: string,
  clientId: string,
  file: Uint8Array,
  passphrase: string,
  opts: { force?: boolean; counterPath?: string } = {},
): { fingerprint: string } {
  const text = Buffer.from(file).toString("utf8");
  const [magic, line] = text.split("\n");
  let o: Record<string, unknown>;
  try {
    if (magic !== MAGIC) throw new Error("magic");
    o = JSON.parse(line ?? "");
  } catch {
    throw new E2EError("MALFORMED", "not an exported E2E state (backbone e2e export)");
  }
  const bytes = (v: unknown) => Buffer.from(String(v), "base64");
  const n = Number(o.n);
  const r = Number(o.r);
  const p = Number(o.p);
  if (o.kdf !== "scrypt" || n > 1 << 20 || r > 16 || p > 4 || !(n > 1 && r > 0 && p > 0)) {
    throw new E2EError("MALFORMED", "unsupported key derivation in the export file");
  }
  const sealed = bytes(o.sealed);
  let plain: Buffer;
  try {
    const d = createDecipheriv(
      "aes-256-gcm",
      key(passphrase, bytes(o.salt), { N: n, r, p }),
      bytes(o.nonce),
    );
    d.setAAD(Buffer.from(MAGIC));
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    plain = Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    throw new E2EError("BAD_PASSPHRASE", "wrong passphrase, or the export file is damaged");
  }
  const content = JSON.parse(plain.toString("utf8")) as Record<string, string>;
  plain.fill(0);
  if (String(content.clientId).toLowerCase() !== clientId.toLowerCase()) {
    throw new E2EError(
      "WRONG_CLIENT",
      `the export file holds the E2E state of client ${content.clientId}`,
    );
  }
  const counterPath = opts.counterPath ?? `${dir}.generation`;
  ensurePrivateDir(dir);
  const existing = readPrivateFile(join(dir, "state.json"));
  if (existing && !opts.force) {
    const moved = (JSON.parse(existing.toString("utf8")) as { movedAt?: unknown }).movedAt;
    if (!moved) {
      throw new E2EError(
        "STATE_EXISTS",
        `${dir} already holds an E2E state for this client; --force replaces it (its keys and sessions are lost)`,
      );
    }
  }
  const lock = lockStateDir(dir, 10_000);
  try {
    const doc = JSON.parse(String(content.state)) as { generation: number };
    writePrivateFile(join(dir, "known_peers"), String(content.knownPeers ?? ""));
    writePrivateFile(join(dir, "state.json"), String(content.state));
    writeCounter(counterPath, Number(doc.generation));
  } finally {
    lock.release();
  }
  const st = E2EState.open(dir, clientId, { counterPath });
  try {
    return { fingerprint: st.fingerprint };
  } finally {
    st.close();
  }
}
