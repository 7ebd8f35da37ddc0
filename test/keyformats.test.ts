/**
 * crypto/keyformats.ts on keys made by the real ssh-keygen: the passphrase dialogue
 * (how often it asks, what it says), damaged keys, key sizes; and cli/suggest.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { editDistance, suggest } from "../src/cli/suggest.ts";
import { parsePrivateKey, parsePublicKey } from "../src/crypto/keyformats.ts";
import { RsaPrivateKey, RsaPublicKey } from "../src/crypto/rsa.ts";
import { KeyError } from "../src/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "backbone-keyformats-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sshKeygen(name: string, ...args: string[]): { priv: string; pub: string } {
  const r = Bun.spawnSync(["ssh-keygen", "-q", "-C", "t@host", "-f", join(dir, name), ...args], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`ssh-keygen: ${r.stderr.toString()}`);
  return {
    priv: readFileSync(join(dir, name), "utf8"),
    pub: readFileSync(join(dir, `${name}.pub`), "utf8"),
  };
}

async function keyError(p: Promise<unknown> | (() => unknown)): Promise<KeyError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(KeyError);
    expect((err as Error).message).not.toContain("\n");
    return err as KeyError;
  }
  throw new Error("no error");
}

describe("the passphrase of an encrypted key", () => {
  const enc = sshKeygen("enc", "-t", "rsa", "-b", "2048", "-N", "s3cret");

  test("asked once when right; the key is the one of the .pub file", async () => {
    const prompts: string[] = [];
    const pkcs8 = await parsePrivateKey(enc.priv, "enc", async (p) => {
      prompts.push(p);
      return "s3cret";
    });
    expect(prompts).toEqual(["passphrase for enc: "]);
    const key = await RsaPrivateKey.fromPkcs8(pkcs8 as Uint8Array);
    const pub = await RsaPublicKey.fromSpki(parsePublicKey(enc.pub, "enc.pub"));
    expect(key.publicKey.fingerprint).toBe(pub.fingerprint);
  });

  test("asked again after a wrong one, three tries in all, then refused", async () => {
    const prompts: string[] = [];
    const err = await keyError(
      parsePrivateKey(enc.priv, "enc", async (p) => {
        prompts.push(p);
        return "nope";
      }),
    );
    expect(prompts).toEqual([
      "passphrase for enc: ",
      "wrong passphrase. passphrase for enc: ",
      "wrong passphrase. passphrase for enc: ",
    ]);
    expect(err.code).toBe("KEY_PASSPHRASE");
    expect(err.message).toBe("enc: wrong passphrase for the private key");
  });

  test("no way to ask: says how to give it", async () => {
    const err = await keyError(parsePrivateKey(enc.priv, "enc"));
    expect(err.code).toBe("KEY_ENCRYPTED");
    expect(err.message).toBe("enc: the private key is protected by a passphrase");
  });

  test("an unencrypted key never asks", async () => {
    const plain = sshKeygen("plain", "-t", "rsa", "-b", "2048", "-N", "");
    let asked = 0;
    const pkcs8 = await parsePrivateKey(plain.priv, "plain", async () => {
      asked++;
      return "x";
    });
    expect(asked).toBe(0);
    expect(pkcs8).toBeInstanceOf(Uint8Array);
  });
});

describe("damaged and unsuitable keys", () => {
  test("one line each, naming the file", async () => {
    const plain = sshKeygen("dmg", "-t", "rsa", "-b", "2048", "-N", "");
    const lines = plain.priv.split("\n");
    const damaged = [
      lines[0],
      ...lines.slice(1, -3).map((l) => l.replace(/[A-M]/g, "Q")),
      ...lines.slice(-3),
    ].join("\n");
    expect((await keyError(parsePrivateKey(damaged, "dmg"))).code).toBe("KEY_INVALID");
    const blob = plain.pub.split(" ")[1] as string;
    expect(
      (await keyError(() => parsePublicKey(`ssh-rsa ${blob.slice(0, 40)} x`, "dmg.pub"))).code,
    ).toBe("KEY_INVALID");
    expect((await keyError(() => parsePublicKey("hello\n", "notes.txt"))).message).toBe(
      'notes.txt: no public key found (expected "ssh-rsa AAAA…", or a PEM "PUBLIC KEY" or "RSA PUBLIC KEY" block)',
    );
    expect(await parsePrivateKey("no key here", "x")).toBeNull();
  });

  test("a 1024-bit RSA key is refused for its size", async () => {
    const small = sshKeygen("small", "-t", "rsa", "-b", "1024", "-N", "");
    const err = await keyError(RsaPublicKey.fromSpki(parsePublicKey(small.pub, "small.pub")));
    expect(err.code).toBe("KEY_SIZE");
  });
});

describe("did you mean", () => {
  const commands = [
    "keygen",
    "serve",
    "chat",
    "send",
    "listen",
    "status",
    "clients",
    "revoke",
    "fingerprint",
    "help",
    "version",
  ];

  test("edit distance counts a swap of neighbours as one edit", () => {
    expect(editDistance("sned", "send")).toBe(1);
    expect(editDistance("send", "send")).toBe(0);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("SEND", "send")).toBe(0);
  });

  test("close words, else words it begins, else nothing", () => {
    expect(suggest("sned", commands)).toEqual(["send"]);
    expect(suggest("lisen", commands)).toEqual(["listen"]);
    expect(suggest("statsu", commands)).toEqual(["status"]);
    expect(suggest("fingerprnt", commands)).toEqual(["fingerprint"]);
    expect(suggest("fing", commands)).toEqual(["fingerprint"]);
    expect(suggest("chat", commands)).toEqual(["chat"]);
    expect(suggest("xyzzy", commands)).toEqual([]);
    expect(suggest("q", commands)).toEqual([]);
  });
});
