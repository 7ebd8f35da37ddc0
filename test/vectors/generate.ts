/**
 * Writes test/vectors/handshake.json: backbone/1 handshake vectors from fixed inputs
 * (docs/PROTOCOL.md § Handshake, § Encrypted frames). Run: `bun test/vectors/generate.ts`.
 *
 * RSA keys are inputs: they are read back from the existing file when present and only
 * generated when missing, so a re-run reproduces every deterministic value. The
 * response is randomized (OAEP seed, PSS salt); a re-run keeps the stored one as long
 * as the server still accepts it, so the file only changes when an input does.
 * test/vectors.test.ts checks every value independently of this code path.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  sha256,
  toHex,
  fromHex as unhex,
  x25519Public,
  x25519Shared,
} from "../../src/crypto/primitives.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { deriveKeys, transcriptHash } from "../../src/handshake/schedule.ts";
import { ServerHandshake } from "../../src/handshake/server.ts";
import { C2CType, ControlType, encodeC2C, encodeControl } from "../../src/wire/message.ts";

const OUT = join(import.meta.dir, "handshake.json");

interface CaseSpec {
  name: string;
  serverBits: 2048 | 3072 | 4096;
  clientBits: 2048 | 3072;
  challengeSize: number;
  configTimestamp: number;
}

const CASES: CaseSpec[] = [
  {
    name: "server-2048",
    serverBits: 2048,
    clientBits: 2048,
    challengeSize: 2048,
    configTimestamp: 1767225600,
  },
  {
    name: "server-3072",
    serverBits: 3072,
    clientBits: 3072,
    challengeSize: 64,
    configTimestamp: 1767225601,
  },
  {
    name: "server-4096",
    serverBits: 4096,
    clientBits: 2048,
    challengeSize: 256,
    configTimestamp: 4294967295,
  },
];

const CONFIG_JSON =
  '{"heartbeat_interval":15,"heartbeat_timeout":45,"connection_timeout":10,"max_message_size":65498}';

export const DESCRIPTION = {
  summary:
    "backbone/1 handshake test vectors (docs/PROTOCOL.md § Handshake, § Encrypted frames). Every byte string is lowercase hex; numbers are JSON numbers; config_json and name are text. Regenerate with `bun test/vectors/generate.ts`; test/vectors.test.ts recomputes every deterministic value from the inputs with the primitives directly.",
  inputs:
    "RSA keys were generated once and are kept (inputs, not outputs). Every other input is derived from the case name: derive(label, n) = the first n bytes of SHA-256(S_0) || SHA-256(S_1) || …, where S_i is the UTF-8 string `backbone/1 vectors/<label>/<name>/<i>` (i in decimal). Labels: e_s, e_c, r_c (32 bytes each), challenge_random (challenge_size - 32 bytes), client_id, recipient, sender (16 bytes each, then made UUIDv4: byte 6 = (byte 6 & 0x0f) | 0x40, byte 8 = (byte 8 & 0x3f) | 0x80). C2C data is the UTF-8 text `hello from <name>` (client to server) and `hello to <name>` (server to client).",
  fields: {
    name: "case name, also the seed of the derived inputs",
    server_bits: "server RSA modulus size in bits",
    client_bits: "client RSA modulus size in bits",
    challenge_size: "length of challenge_data in bytes",
    server_private_pkcs8_der: "input: server RSA private key, PKCS#8 DER (e = 65537)",
    server_public_spki_der: "server public key, SubjectPublicKeyInfo DER, as sent in the challenge",
    client_private_pkcs8_der: "input: client RSA private key, PKCS#8 DER (e = 65537)",
    client_public_spki_der:
      "client public key, SubjectPublicKeyInfo DER, as registered on the server",
    client_id: "input: client ID, the 16 bytes of a UUIDv4",
    e_s_private:
      "input: server ephemeral X25519 secret, 32 bytes as given to X25519 (unclamped; X25519 clamps it)",
    e_c_private: "input: client ephemeral X25519 secret, 32 bytes, unclamped",
    r_c: "input: the client's 32 random bytes carried in the OAEP block",
    challenge_data: "E_s || challenge_random (challenge_size bytes)",
    challenge_payload:
      "key_size (u16 BE) || server_public_spki_der || challenge_data; the challenge frame payload",
    e_s_public: "X25519(e_s_private, 9) = the first 32 bytes of challenge_data",
    e_c_public: "X25519(e_c_private, 9)",
    shared_secret: "X25519(e_c_private, e_s_public) = X25519(e_s_private, e_c_public)",
    th: 'SHA-256("backbone/1 transcript" || challenge_payload || e_c_public)',
    k_c2s:
      'HKDF-SHA256(ikm = shared_secret || r_c, salt = th, info = "backbone/1 keys", L = 64)[0:32]',
    k_s2c: "the same HKDF output [32:64]",
    response_payload:
      'RANDOMIZED. RSA-OAEP-SHA256(server key, e_c_public || r_c) (one block of the server modulus length) || AES-256-GCM(k_c2s, nonce 0, client_id || RSA-PSS-SHA256(client key, salt 32, "backbone/1 auth" || th || client_id)) with its 16-byte tag. Check it by decrypting and verifying, not by comparing bytes.',
    config_timestamp: "input: timestamp (u32 unix seconds) of the first CONFIG",
    config_json: "input: the JSON body of the first CONFIG, as text",
    config_message:
      "0x11 || config_timestamp (u32 BE) || UTF-8 config_json: the plaintext message data of the first CONFIG",
    config_frame_payload:
      "AES-256-GCM(k_s2c, nonce 0x00000000 || u64 BE counter 0, config_message) || tag: the first encrypted frame payload from the server",
    c2c: "one direct C2C each way after CONFIG. client_to_server: message_data = 0x00 || recipient || data, sealed with k_c2s at counter 1 (the response used counter 0). server_to_client: message_data = 0x00 || sender || data, sealed with k_s2c at counter 1 (CONFIG used counter 0). payload = ciphertext || 16-byte tag, the frame payload without its u16 size.",
  },
};

/** derive(label, n) as described in DESCRIPTION.inputs. */
export function derive(label: string, name: string, n: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(n / 32) * 32);
  for (let i = 0; i * 32 < n; i++) {
    out.set(sha256(new TextEncoder().encode(`backbone/1 vectors/${label}/${name}/${i}`)), i * 32);
  }
  return out.slice(0, n);
}

/** A derived 16-byte value with the UUIDv4 version and variant bits set. */
export function deriveId(label: string, name: string): Uint8Array {
  const id = derive(label, name, 16);
  id[6] = ((id[6] as number) & 0x0f) | 0x40;
  id[8] = ((id[8] as number) & 0x3f) | 0x80;
  return id;
}

type Stored = Record<string, unknown> & { name: string };

function readExisting(): Map<string, Stored> {
  if (!existsSync(OUT)) return new Map();
  const file = JSON.parse(readFileSync(OUT, "utf8")) as { cases?: Stored[] };
  return new Map((file.cases ?? []).map((c) => [c.name, c]));
}

async function rsaKey(stored: unknown, bits: number): Promise<RsaPrivateKey> {
  if (typeof stored === "string") {
    const key = await RsaPrivateKey.fromPkcs8(unhex(stored));
    if (key.publicKey.bits !== bits)
      throw new Error(`stored key is ${key.publicKey.bits} bits, not ${bits}`);
    return key;
  }
  return RsaPrivateKey.fromPkcs8((await generateRsaKeyPair(bits)).privatePkcs8);
}

async function makeCase(spec: CaseSpec, old: Stored | undefined): Promise<Record<string, unknown>> {
  const { name } = spec;
  const serverKey = await rsaKey(old?.server_private_pkcs8_der, spec.serverBits);
  const clientKey = await rsaKey(old?.client_private_pkcs8_der, spec.clientBits);
  const id = deriveId("client_id", name);
  const eS = derive("e_s", name, 32);
  const eC = derive("e_c", name, 32);
  const rC = derive("r_c", name, 32);
  const random = derive("challenge_random", name, spec.challengeSize - 32);
  const lookup = (cid: Uint8Array) => (toHex(cid) === toHex(id) ? clientKey.publicKey : null);
  const newServer = () =>
    new ServerHandshake({
      key: serverKey,
      challengeSize: spec.challengeSize,
      ephemeralSecret: eS.slice(),
      challengeRandom: random,
    });

  const server = newServer();
  const challenge = server.challenge;
  const client = new ClientHandshake({
    id,
    key: clientKey,
    pinnedServerKey: serverKey.publicKey,
    ephemeralSecret: eC.slice(),
    rC: rC.slice(),
  });
  let response = await client.respond(challenge);
  const accepted = await server.verify(response, lookup);
  // Keep the stored response while the server accepts it (it is randomized).
  if (typeof old?.response_payload === "string") {
    const previous = unhex(old.response_payload);
    const ok = await newServer()
      .verify(previous, lookup)
      .then((a) => toHex(a.clientId) === toHex(id))
      .catch(() => false);
    if (ok) response = previous;
  }

  const configMessage = encodeControl(ControlType.CONFIG, CONFIG_JSON, spec.configTimestamp);
  const configFrame = accepted.session.sealer.seal(configMessage);
  const done = client.finish(configFrame);
  const recipient = deriveId("recipient", name);
  const sender = deriveId("sender", name);
  const upData = new TextEncoder().encode(`hello from ${name}`);
  const downData = new TextEncoder().encode(`hello to ${name}`);
  const up = encodeC2C(C2CType.DIRECT, recipient, upData);
  const upPayload = done.session.sealer.seal(up);
  const down = encodeC2C(C2CType.DIRECT, sender, downData);
  const downPayload = accepted.session.sealer.seal(down);
  if (toHex(accepted.session.opener.open(upPayload)) !== toHex(up)) throw new Error("c2s");
  if (toHex(done.session.opener.open(downPayload)) !== toHex(down)) throw new Error("s2c");

  const eSPublic = x25519Public(eS);
  const eCPublic = x25519Public(eC);
  const shared = x25519Shared(eC, eSPublic);
  const th = transcriptHash(challenge, eCPublic);
  const keys = deriveKeys(shared, rC, th);
  const spki = serverKey.publicKey.spki;
  return {
    name,
    server_bits: spec.serverBits,
    client_bits: spec.clientBits,
    challenge_size: spec.challengeSize,
    server_private_pkcs8_der: toHex(serverKey.pkcs8),
    server_public_spki_der: toHex(spki),
    client_private_pkcs8_der: toHex(clientKey.pkcs8),
    client_public_spki_der: toHex(clientKey.publicKey.spki),
    client_id: toHex(id),
    e_s_private: toHex(eS),
    e_c_private: toHex(eC),
    r_c: toHex(rC),
    challenge_data: toHex(challenge.subarray(2 + spki.length)),
    challenge_payload: toHex(challenge),
    e_s_public: toHex(eSPublic),
    e_c_public: toHex(eCPublic),
    shared_secret: toHex(shared),
    th: toHex(th),
    k_c2s: toHex(keys.c2s),
    k_s2c: toHex(keys.s2c),
    response_payload: toHex(response),
    config_timestamp: spec.configTimestamp,
    config_json: CONFIG_JSON,
    config_message: toHex(configMessage),
    config_frame_payload: toHex(configFrame),
    c2c: {
      client_to_server: {
        recipient: toHex(recipient),
        data: toHex(upData),
        message_data: toHex(up),
        counter: 1,
        payload: toHex(upPayload),
      },
      server_to_client: {
        sender: toHex(sender),
        data: toHex(downData),
        message_data: toHex(down),
        counter: 1,
        payload: toHex(downPayload),
      },
    },
  };
}

if (import.meta.main) {
  const existing = readExisting();
  const cases = [];
  for (const spec of CASES) cases.push(await makeCase(spec, existing.get(spec.name)));
  const text = `${JSON.stringify({ description: DESCRIPTION, cases }, null, 2)}\n`;
  const before = existsSync(OUT) ? readFileSync(OUT, "utf8") : "";
  if (text === before) {
    console.log(`${OUT}: unchanged`);
  } else {
    writeFileSync(OUT, text);
    console.log(`${OUT}: written (${cases.length} cases)`);
  }
}
