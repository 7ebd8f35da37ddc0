/**
 * Names that look alike (docs/PROTOCOL.md § Names; docs/SECURITY.md § Look-alike
 * names), after Unicode Technical Standard #39 (Unicode Security Mechanisms):
 *
 * - `skeleton` (UTS #39 §4): NFD, then every character replaced by its prototype from
 *   Unicode's confusables.txt, then NFD again. Two strings are confusable when their
 *   skeletons are equal. The mapping is Unicode's own data file, as shipped by the
 *   `unhomoglyph` package (confusables.txt 13.0.0) — not a table of ours.
 * - `mixedScripts` (UTS #39 §5.1–5.2): the scripts of a string from the runtime's
 *   Unicode Script_Extensions property (RegExp `\p{scx=…}`; the script names come from
 *   the `unicode-match-property-value-ecmascript` data), Common and Inherited counted
 *   as any script. A string passes when it is single-script (its resolved script set
 *   is not empty) or at the "Highly Restrictive" level (§5.2): covered by Latin + Han +
 *   Hiragana + Katakana (Japanese), Latin + Han + Bopomofo (Chinese) or Latin + Han +
 *   Hangul (Korean). So Japanese names mixing kanji and kana are allowed.
 */

/// <reference path="../types/unicode-data.d.ts" />
import unhomoglyph from "unhomoglyph";
import propertyValues from "unicode-match-property-value-ecmascript/data/mappings.js";

/** The UTS #39 skeleton of `text`: equal skeletons mean the strings can look the same. */
export function skeleton(text: string): string {
  return unhomoglyph(text.normalize("NFD")).normalize("NFD");
}

/**
 * The code points of `a` that are not ASCII, as `U+XXXX` — what to point at when `a`
 * looks like another name.
 */
export function nonAscii(a: string): string[] {
  return [...new Set([...a].filter((c) => c > "\x7f"))].map(
    (c) => `U+${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}`,
  );
}

/** Whether `a` and `b` can look alike: as written, or once both are lowercased. */
export function confusable(a: string, b: string): boolean {
  return skeleton(a) === skeleton(b) || skeleton(a.toLowerCase()) === skeleton(b.toLowerCase());
}

/** Every script as a Script_Extensions test, Common/Inherited/Unknown apart. */
const SCRIPTS: [string, RegExp][] = (() => {
  const names = new Set((propertyValues.get("Script_Extensions") ?? new Map()).values());
  const out: [string, RegExp][] = [];
  for (const name of names) {
    if (name === "Common" || name === "Inherited" || name === "Unknown") continue;
    try {
      out.push([name, new RegExp(`^\\p{Script_Extensions=${name}}$`, "u")]);
    } catch {
      // a script newer than this runtime's Unicode data: no character of it exists here
    }
  }
  return out;
})();

/** UTS #39 §5.1: the scripts each of Han, Hiragana, Katakana, Hangul, Bopomofo also count as. */
const AUGMENT: Record<string, string[]> = {
  Han: ["Japanese", "Korean", "Han_with_Bopomofo"],
  Hiragana: ["Japanese"],
  Katakana: ["Japanese"],
  Hangul: ["Korean"],
  Bopomofo: ["Han_with_Bopomofo"],
};

/** UTS #39 §5.2 "Highly Restrictive": the script sets that may mix. */
const ALLOWED_MIXES: ReadonlySet<string>[] = [
  new Set(["Latin", "Han", "Hiragana", "Katakana"]),
  new Set(["Latin", "Han", "Bopomofo"]),
  new Set(["Latin", "Han", "Hangul"]),
];

/** The scripts of one character (Script_Extensions); empty for Common and Inherited. */
function scriptsOf(ch: string): string[] {
  return SCRIPTS.filter(([, re]) => re.test(ch)).map(([name]) => name);
}

/**
 * The scripts `text` mixes when it is neither single-script nor Highly Restrictive
 * (UTS #39 §5.2), sorted; `null` when it is acceptable.
 * @example mixedScripts("pаypal") // ["Cyrillic", "Latin"]
 * @example mixedScripts("山田たろう") // null (Han + Hiragana)
 */
export function mixedScripts(text: string): string[] | null {
  let resolved = null as Set<string> | null; // null: every script (so far only Common/Inherited)
  const used = new Set<string>();
  for (const ch of text) {
    const own = scriptsOf(ch);
    if (own.length === 0) continue;
    const set = new Set(own.flatMap((s) => [s, ...(AUGMENT[s] ?? [])]));
    // A character with several Script_Extensions (e.g. U+30FC, Hiragana and Katakana) is
    // one of them: count the first for the mix.
    used.add(own.find((s) => used.has(s)) ?? (own[0] as string));
    resolved = resolved === null ? set : new Set([...resolved].filter((s) => set.has(s)));
  }
  if (resolved === null || resolved.size > 0) return null;
  for (const mix of ALLOWED_MIXES) if ([...used].every((s) => mix.has(s))) return null;
  return [...used].sort();
}
