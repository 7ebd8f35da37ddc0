/**
 * Names that look alike are refused (docs/PROTOCOL.md § Names, Unicode TR39): a name
 * whose skeleton equals an existing name's, and a name that mixes scripts beyond TR39's
 * "Highly Restrictive" level. With the real binary (`keygen`), and the library rules
 * with the inputs of the issue and their kin.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { UsageError } from "../../src/errors.ts";
import { checkName } from "../../src/ids.ts";
import { confusable, mixedScripts, skeleton } from "../../src/text/confusables.ts";
import { cleanupAll, EXIT, expectError, sandbox } from "../helpers/binary.ts";
import { thrown } from "../helpers/errors.ts";

afterEach(cleanupAll);

test("keygen refuses аlice (Cyrillic а) and alıce (dotless ı) once alice exists, naming alice", async () => {
  await using sb = await sandbox();
  const keygen = (name: string) =>
    sb.run([
      "keygen",
      "--name",
      name,
      "--bits",
      "2048",
      "--out",
      `${sb.dir}/${name.length}-${Math.random()}.identity`,
    ]);
  expect((await keygen("alice")).code).toBe(EXIT.OK);
  for (const [impostor, odd] of [
    ["аlice", "U\\+0430"],
    ["alıce", "U\\+0131"],
    ["aIice", null], // capital I for small L
    ["a1ice", null],
  ] as const) {
    const r = await keygen(impostor);
    expectError(
      r,
      EXIT.USAGE,
      new RegExp(
        `^backbone: the name "${impostor}" looks like the existing name "alice"${odd ? ` \\(it has ${odd}\\)` : ""}; choose another$`,
      ),
    );
  }
  // Nothing was registered for them; a different name still works.
  const list = await sb.run(["clients", "--json"]);
  expect(
    list.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).name),
  ).toEqual(["alice"]);
  expect((await keygen("bob")).code).toBe(EXIT.OK);
});

test("keygen refuses a name that mixes scripts, naming them", async () => {
  await using sb = await sandbox();
  const r = await sb.run(["keygen", "--name", "pаypal", "--bits", "2048", "--out", "x.identity"]);
  expectError(
    r,
    EXIT.USAGE,
    /^backbone: invalid name "pаypal": it mixes scripts \(Cyrillic, Latin\); use the letters of one script \(Unicode TR39\)$/,
  );
});

describe("the rules", () => {
  test("skeletons come from Unicode's confusables data", () => {
    expect(skeleton("аlice")).toBe(skeleton("alice"));
    expect(skeleton("alıce")).toBe(skeleton("alice"));
    expect(skeleton("rn")).toBe(skeleton("m"));
    expect(skeleton("ΑΒΕΖ")).toBe(skeleton("ABEZ")); // Greek capitals
    expect(confusable("Ian", "lan")).toBe(true); // capital I and small L
    expect(confusable("alice", "alicia")).toBe(false);
    expect(confusable("bob", "b0b")).toBe(false); // 0 and o are told apart by TR39
  });

  test("mixed scripts: one script, or TR39 Highly Restrictive; Common and Inherited go with any", () => {
    for (const ok of [
      "alice",
      "Москва",
      "ελληνικά",
      "山田たろう",
      "山田タロウ",
      "Tokyo東京",
      "서울Seoul",
      "中文ㄅ",
      "a1_b-c.d",
      "José",
      "ナー",
    ]) {
      expect({ ok, mixed: mixedScripts(ok) }).toEqual({ ok, mixed: null });
      expect(checkName(ok)).toBe(ok.normalize("NFKC"));
    }
    for (const [bad, scripts] of [
      ["pаypal", ["Cyrillic", "Latin"]],
      ["Ωmega", ["Greek", "Latin"]],
      ["ΑлЬфа", ["Cyrillic", "Greek"]],
      ["서울東京たろう", ["Hangul", "Han", "Hiragana"]],
      ["עבריתabc", ["Hebrew", "Latin"]],
    ] as const) {
      expect(mixedScripts(bad)?.sort()).toEqual([...scripts].sort());
      expect(thrown(() => checkName(bad))).toBeInstanceOf(UsageError);
    }
  });
});
