/**
 * "Did you mean …?" for a mistyped command or option, as git and cargo do: the known
 * words closest to what was typed, by optimal-string-alignment distance (Levenshtein
 * plus the swap of two neighbours, so `sned` is one edit from `send`), or the known
 * words it is a prefix of.
 */

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and
 * transpositions of adjacent characters, each costing 1 (no substring edited twice).
 * Case-insensitive; counts UTF-16 code units.
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  // d[i][j]: distance between the first i characters of s and the first j of t.
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) =>
    Array.from({ length: t.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= s.length; i++) {
    const row = d[i] as number[];
    const prev = d[i - 1] as number[];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        best = Math.min(best, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = best;
    }
  }
  return (d[s.length] as number[])[t.length] as number;
}

/** The most edits a word of `length` characters may be from a suggestion. */
function tolerance(length: number): number {
  return length <= 3 ? 1 : length <= 6 ? 2 : 3;
}

/**
 * The known words `typed` most likely meant, best first (empty when none is close):
 * those at the smallest edit distance within the tolerance for its length (1 edit up
 * to 3 characters, 2 up to 6, else 3), or else the words it is a prefix of (2 or more
 * characters typed).
 */
export function suggest(typed: string, known: readonly string[]): string[] {
  if (typed.length === 0) return [];
  const most = tolerance(typed.length);
  let best = most + 1;
  let found: string[] = [];
  for (const word of known) {
    const dist = editDistance(typed, word);
    if (dist > most) continue;
    if (dist < best) {
      best = dist;
      found = [word];
    } else if (dist === best && !found.includes(word)) {
      found.push(word);
    }
  }
  if (found.length > 0) return found;
  if (typed.length < 2) return [];
  return known.filter((w) => w.toLowerCase().startsWith(typed.toLowerCase()));
}

/** ` (did you mean send?)`, ` (did you mean status or stats?)`, or "" when nothing is close. */
export function didYouMean(typed: string, known: readonly string[], prefix = ""): string {
  const found = suggest(typed, known).slice(0, 3);
  if (found.length === 0) return "";
  const words = found.map((w) => `${prefix}${w}`);
  const list =
    words.length === 1 ? words[0] : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
  return `did you mean ${list}?`;
}
