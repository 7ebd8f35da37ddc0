/** Types for the data file of unicode-match-property-value-ecmascript (no types of its own). */
declare module "unicode-match-property-value-ecmascript/data/mappings.js" {
  /** Property name → (value alias → canonical value), per ECMAScript RegExp property escapes. */
  const mappings: Map<string, Map<string, string>>;
  export default mappings;
}
