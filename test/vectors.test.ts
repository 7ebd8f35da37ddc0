/**
 * The handshake vectors (test/vectors/handshake.json) checked independently: every
 * deterministic value is recomputed from the inputs with the primitives directly (noble
 * X25519, @noble/hashes, node:crypto), the randomized response is decrypted and
 * verified, and then the project's handshake code is run against the stored bytes.
 */
import { describe, expect, test } from "bun:test";
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  privateDecrypt,
  verify,
} from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { RsaPrivateKey } from "../src/crypto/rsa.ts";
import { ClientHandshake } from "../src/handshake/client.ts";
import { ServerHandshake } from "../src/handshake/server.ts";
import { ascii, cat, hex, toHex, u8, u16, u32 } from "./helpers/bytes.ts";
import { clientSchedule, gcmOpen, gcmSeal, signedBytes } from "./helpers/schedule.ts";

interface C2C {
  data: string;
  message_data: string;
  counter: number;
  payload: string;
}
interface Case {
  [field: string]: unknown;
  name: string;
  server_bits: number;
  client_bits: number;
  challenge_size: number;
  config_timestamp: number;
  config_json: string;
  c2c: {
    client_to_server: C2C & { recipient: string };
    server_to_client: C2C & { sender: string };
  };
}

const file = JSON.parse(readFileSync(join(import.meta.dir, "vectors", "handshake.json"), "utf8"));
const cases = file.cases as Case[];
const TEXT_FIELDS = new Set(["name", "config_json"]);

/** A hex field of a case, as bytes. */
const b = (c: Case, field: string) => hex(c[field] as string);

/** derive(label, n) as the file's description defines it, re-implemented with node:crypto. */
function derive(label: string, name: string, n: number): Uint8Array {
  const blocks: Buffer[] = [];
  for (let i = 0; i * 32 < n; i++) {
    blocks.push(createHash("sha256").update(`backbone/1 vectors/${label}/${name}/${i}`).digest());
  }
  return new Uint8Array(Buffer.concat(blocks).subarray(0, n));
}
function deriveId(label: string, name: string): Uint8Array {
  const id = derive(label, name, 16);
  id[6] = ((id[6] as number) & 0x0f) | 0x40;
  id[8] = ((id[8] as number) & 0x3f) | 0x80;
  return id;
}

function rsa(c: Case, who: "server" | "client") {
  const priv = createPrivateKey({
    key: Buffer.from(b(c, `${who}_private_pkcs8_der`)),
    format: "der",
    type: "pkcs8",
  });
  const pub = createPublicKey(priv);
  const spki = new Uint8Array(pub.export({ type: "spki", format: "der" }));
  return { priv, pub, spki, bytes: (pub.asymmetricKeyDetails?.modulusLength ?? 0) / 8 };
}

/** Every string in `value` except text fields must be lowercase hex of whole bytes. */
function checkHex(value: unknown, path: string): void {
  if (typeof value === "string") {
    if (!TEXT_FIELDS.has(path.split(".").at(-1) ?? "")) {
      expect({ path, ok: /^([0-9a-f]{2})+$/.test(value) }).toEqual({ path, ok: true });
    }
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) checkHex(v, `${path}.${k}`);
  }
}

describe("the vector file", () => {
  test("has a description of every field and at least the required cases", () => {
    expect(typeof file.description.summary).toBe("string");
    expect(typeof file.description.inputs).toBe("string");
    const fields = Object.keys(file.description.fields);
    for (const c of cases) for (const k of Object.keys(c)) expect(fields).toContain(k);
    expect(cases.length).toBeGreaterThanOrEqual(3);
    expect(new Set(cases.map((c) => c.server_bits))).toEqual(new Set([2048, 3072, 4096]));
    expect(cases.map((c) => c.challenge_size)).toContain(2048);
    expect(Math.min(...cases.map((c) => c.challenge_size))).toBeLessThanOrEqual(64);
  });

  test("every byte value is lowercase hex", () => {
    for (const c of cases) checkHex(c, c.name);
  });
});

for (const c of cases) {
  describe(`vector ${c.name}`, () => {
    const server = rsa(c, "server");
    const client = rsa(c, "client");
    const s = clientSchedule(b(c, "challenge_payload"), b(c, "e_c_private"), b(c, "r_c"));

    test("keys: sizes, e = 65537, public halves", () => {
      expect(server.bytes * 8).toBe(c.server_bits);
      expect(client.bytes * 8).toBe(c.client_bits);
      for (const k of [server, client]) {
        expect(k.pub.asymmetricKeyDetails?.publicExponent).toBe(65537n);
      }
      expect(b(c, "server_public_spki_der")).toEqual(server.spki);
      expect(b(c, "client_public_spki_der")).toEqual(client.spki);
    });

    test("inputs are derived from the name as described", () => {
      expect(b(c, "client_id")).toEqual(deriveId("client_id", c.name));
      for (const label of ["e_s", "e_c", "r_c"]) {
        const field = label === "r_c" ? "r_c" : `${label}_private`;
        expect(b(c, field)).toEqual(derive(label, c.name, 32));
      }
      const data = b(c, "challenge_data");
      expect(data.length).toBe(c.challenge_size);
      expect(data.subarray(32)).toEqual(derive("challenge_random", c.name, c.challenge_size - 32));
      const up = c.c2c.client_to_server;
      const down = c.c2c.server_to_client;
      expect(hex(up.recipient)).toEqual(deriveId("recipient", c.name));
      expect(hex(down.sender)).toEqual(deriveId("sender", c.name));
      expect(hex(up.data)).toEqual(ascii(`hello from ${c.name}`));
      expect(hex(down.data)).toEqual(ascii(`hello to ${c.name}`));
    });

    test("challenge, X25519, transcript hash and keys", () => {
      const data = b(c, "challenge_data");
      expect(b(c, "challenge_payload")).toEqual(cat(u16(server.spki.length), server.spki, data));
      const eSPublic = x25519.getPublicKey(b(c, "e_s_private"));
      expect(b(c, "e_s_public")).toEqual(eSPublic);
      expect(data.subarray(0, 32)).toEqual(eSPublic);
      expect(b(c, "e_c_public")).toEqual(s.eCPublic);
      expect(b(c, "shared_secret")).toEqual(s.shared);
      expect(u8(x25519.getSharedSecret(b(c, "e_s_private"), s.eCPublic))).toEqual(s.shared);
      expect(b(c, "th")).toEqual(s.th);
      expect(b(c, "k_c2s")).toEqual(s.kC2s);
      expect(b(c, "k_s2c")).toEqual(s.kS2c);
    });

    test("CONFIG and the C2C frames", () => {
      const json = new TextEncoder().encode(c.config_json);
      const message = cat(new Uint8Array([0x11]), u32(c.config_timestamp), json);
      expect(b(c, "config_message")).toEqual(message);
      expect(typeof JSON.parse(c.config_json)).toBe("object");
      expect(b(c, "config_frame_payload")).toEqual(gcmSeal(s.kS2c, 0, message));
      const up = c.c2c.client_to_server;
      const upMessage = cat(new Uint8Array([0x00]), hex(up.recipient), hex(up.data));
      expect(hex(up.message_data)).toEqual(upMessage);
      expect(up.counter).toBe(1);
      expect(hex(up.payload)).toEqual(gcmSeal(s.kC2s, 1, upMessage));
      const down = c.c2c.server_to_client;
      const downMessage = cat(new Uint8Array([0x00]), hex(down.sender), hex(down.data));
      expect(hex(down.message_data)).toEqual(downMessage);
      expect(down.counter).toBe(1);
      expect(hex(down.payload)).toEqual(gcmSeal(s.kS2c, 1, downMessage));
    });

    test("response: OAEP block, sealed ID and PSS signature", () => {
      const response = b(c, "response_payload");
      expect(response.length).toBe(server.bytes + 16 + client.bytes + 16);
      const block = response.subarray(0, server.bytes);
      const plain = privateDecrypt(
        { key: server.priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
        block,
      );
      expect(u8(plain)).toEqual(cat(s.eCPublic, b(c, "r_c")));
      const inner = gcmOpen(s.kC2s, 0, response.subarray(server.bytes));
      const id = b(c, "client_id");
      expect(inner.subarray(0, 16)).toEqual(id);
      const signature = inner.subarray(16);
      expect(signature.length).toBe(client.bytes);
      const pss = (key: KeyObject) => ({
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: 32,
      });
      expect(verify("sha256", signedBytes(s.th, id), pss(client.pub), signature)).toBe(true);
      // Control: the same signature does not cover another transcript or another ID.
      const otherTh = s.th.slice();
      otherTh[0] = (otherTh[0] as number) ^ 1;
      expect(verify("sha256", signedBytes(otherTh, id), pss(client.pub), signature)).toBe(false);
      expect(
        verify("sha256", signedBytes(s.th, s.th.subarray(0, 16)), pss(client.pub), signature),
      ).toBe(false);
    });

    test("the project's ServerHandshake accepts the stored response", async () => {
      const key = await RsaPrivateKey.fromPkcs8(b(c, "server_private_pkcs8_der"));
      const clientKey = await RsaPrivateKey.fromPkcs8(b(c, "client_private_pkcs8_der"));
      const hs = new ServerHandshake({
        key,
        challengeSize: c.challenge_size,
        ephemeralSecret: b(c, "e_s_private"),
        challengeRandom: b(c, "challenge_data").subarray(32),
      });
      expect(hs.challenge).toEqual(b(c, "challenge_payload"));
      const accepted = await hs.verify(b(c, "response_payload"), (id) =>
        toHex(id) === c.client_id ? clientKey.publicKey : null,
      );
      expect(accepted.clientId).toEqual(b(c, "client_id"));
      expect(u8(accepted.session.sealer.seal(b(c, "config_message")))).toEqual(
        b(c, "config_frame_payload"),
      );
      expect(u8(accepted.session.opener.open(hex(c.c2c.client_to_server.payload)))).toEqual(
        hex(c.c2c.client_to_server.message_data),
      );
    });

    test("the project's ClientHandshake opens the stored CONFIG and C2C", async () => {
      const hs = new ClientHandshake({
        id: b(c, "client_id"),
        key: await RsaPrivateKey.fromPkcs8(b(c, "client_private_pkcs8_der")),
        pinnedServerKey: (await RsaPrivateKey.fromPkcs8(b(c, "server_private_pkcs8_der")))
          .publicKey,
        ephemeralSecret: b(c, "e_c_private"),
        rC: b(c, "r_c"),
      });
      await hs.respond(b(c, "challenge_payload"));
      const done = hs.finish(b(c, "config_frame_payload"));
      expect(done.config).toEqual(JSON.parse(c.config_json));
      const down = c.c2c.server_to_client;
      expect(u8(done.session.opener.open(hex(down.payload)))).toEqual(hex(down.message_data));
    });
  });
}
