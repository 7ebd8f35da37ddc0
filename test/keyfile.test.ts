/**
 * Secret files and PEM armour (docs/PROTOCOL.md § Keys and primitives: private keys
 * are PKCS#8 PEM, file mode 0600, refused when others may read them, as OpenSSH does).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSecretFile, writeSecretFile } from "../src/crypto/keyfile.ts";
import { findPem, fromPem, type PemLabel, toPem } from "../src/crypto/pem.ts";
import { KeyError } from "../src/errors.ts";
import { expectError, thrown } from "./helpers/errors.ts";
import { Prng } from "./helpers/prng.ts";

let dir: string;
let n = 0;
/** A fresh path in the test directory. */
const fresh = () => join(dir, `key-${n++}.pem`);
const modeOf = (path: string) => statSync(path).mode & 0o777;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "backbone-keyfile-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("writeSecretFile", () => {
  test("creates the file with mode 0600 and the exact text, leaving no temporary file", () => {
    const path = fresh();
    const before = readdirSync(dir).length;
    writeSecretFile(path, "secret\n");
    expect(modeOf(path)).toBe(0o600);
    expect(readSecretFile(path)).toBe("secret\n");
    expect(readdirSync(dir).length).toBe(before + 1);
  });

  test("refuses to overwrite by default (FILE_EXISTS) and leaves the file alone", () => {
    const path = fresh();
    writeSecretFile(path, "first");
    expectError(
      thrown(() => writeSecretFile(path, "second")),
      KeyError,
      { code: "FILE_EXISTS" },
    );
    expect(readSecretFile(path)).toBe("first");
  });

  test("with exclusive: false it replaces the file, and the result is 0600", () => {
    const path = fresh();
    writeFileSync(path, "old", { mode: 0o644 });
    chmodSync(path, 0o644);
    writeSecretFile(path, "new", { exclusive: false });
    expect(modeOf(path)).toBe(0o600);
    expect(readSecretFile(path)).toBe("new");
  });

  test("a missing directory is KEY_UNWRITABLE", () => {
    expectError(
      thrown(() => writeSecretFile(join(dir, "no-such-dir", "key.pem"), "x")),
      KeyError,
      { code: "KEY_UNWRITABLE" },
    );
  });
});

describe("readSecretFile", () => {
  for (const mode of [0o640, 0o644, 0o604, 0o660, 0o606, 0o610, 0o601]) {
    test(`refuses mode ${mode.toString(8)} with KEY_PERMISSIONS and the chmod 600 fix`, () => {
      const path = fresh();
      writeSecretFile(path, "secret");
      chmodSync(path, mode);
      const err = thrown(() => readSecretFile(path));
      expectError(err, KeyError, { code: "KEY_PERMISSIONS" });
      expect((err as Error).message).toContain("chmod 600");
      expect((err as Error).message).toContain(path);
    });
  }

  test("accepts 0600 and 0400", () => {
    const path = fresh();
    writeSecretFile(path, "secret");
    chmodSync(path, 0o400);
    expect(readSecretFile(path)).toBe("secret");
  });

  test("a missing file or a directory is KEY_UNREADABLE", () => {
    expectError(
      thrown(() => readSecretFile(join(dir, "missing.pem"))),
      KeyError,
      { code: "KEY_UNREADABLE" },
    );
    const sub = join(dir, "a-directory");
    mkdirSync(sub, { mode: 0o700 });
    expectError(
      thrown(() => readSecretFile(sub)),
      KeyError,
      { code: "KEY_UNREADABLE" },
    );
  });
});

describe("PEM", () => {
  test("toPem / fromPem round trip random DER of many lengths (seed 60)", () => {
    const rng = new Prng(60);
    for (let i = 0; i < 200; i++) {
      const der = rng.bytes(rng.int(1, 3000));
      const label: PemLabel = rng.pick(["PRIVATE KEY", "PUBLIC KEY"]);
      const pem = toPem(label, der);
      const lines = pem.split("\n");
      expect(lines[0]).toBe(`-----BEGIN ${label}-----`);
      expect(lines.at(-2)).toBe(`-----END ${label}-----`);
      expect(lines.at(-1)).toBe("");
      for (const line of lines.slice(1, -2)) expect(line.length).toBeLessThanOrEqual(64);
      expect(fromPem(pem, label)).toEqual(der);
      // Surrounding text and CRLF line ends are tolerated.
      expect(fromPem(`comment\r\n${pem.replaceAll("\n", "\r\n")}trailer`, label)).toEqual(der);
    }
  });

  test("a missing block is PEM_MISSING; findPem returns null", () => {
    const pub = toPem("PUBLIC KEY", new Uint8Array([1, 2, 3]));
    expect(findPem(pub, "PRIVATE KEY")).toBeNull();
    for (const text of ["", "hello", pub]) {
      expectError(
        thrown(() => fromPem(text, "PRIVATE KEY")),
        KeyError,
        { code: "PEM_MISSING" },
      );
    }
    expectError(
      thrown(() => fromPem(toPem("PRIVATE KEY", new Uint8Array([1])), "PUBLIC KEY")),
      KeyError,
      { code: "PEM_MISSING" },
    );
  });

  test('an "RSA PRIVATE KEY" (PKCS#1) block gives a conversion hint', () => {
    const pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    const err = thrown(() => fromPem(pkcs1, "PRIVATE KEY"));
    expectError(err, KeyError, { code: "PEM_MISSING" });
    expect((err as Error).message).toContain("RSA PRIVATE KEY");
    expect((err as Error).message).toContain("openssl pkcs8 -topk8 -nocrypt");
  });

  test("an empty or malformed body is PEM_INVALID", () => {
    for (const body of ["", "AAA", "AAAAA"]) {
      const text = `-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----\n`;
      expectError(
        thrown(() => fromPem(text, "PUBLIC KEY")),
        KeyError,
        { code: "PEM_INVALID" },
      );
    }
  });
});
