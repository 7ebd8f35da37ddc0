/**
 * PEM armour (RFC 7468) for PKCS#8 `PRIVATE KEY` and SPKI `PUBLIC KEY` blocks.
 */
import { KeyError } from "../errors.ts";

export type PemLabel = "PRIVATE KEY" | "PUBLIC KEY";

/** DER → PEM with 64-character lines and a final newline. */
export function toPem(label: PemLabel, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Finds the first PEM block with `label` in `text`, or `null` when there is none. */
export function findPem(text: string, label: PemLabel): Uint8Array | null {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*?)-----END ${label}-----`);
  const m = re.exec(text);
  if (!m) return null;
  const body = (m[1] ?? "").replace(/\s+/g, "");
  if (body.length === 0 || body.length % 4 !== 0) {
    throw new KeyError("PEM_INVALID", `malformed ${label} PEM block`);
  }
  return new Uint8Array(Buffer.from(body, "base64"));
}

/** PEM → DER; throws `KeyError` when the block is missing or malformed. */
export function fromPem(text: string, label: PemLabel): Uint8Array {
  const der = findPem(text, label);
  if (!der) {
    const other = /-----BEGIN (RSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----/.exec(text)?.[0];
    const hint =
      other && label === "PRIVATE KEY"
        ? ` (found "${other}": convert it with \`openssl pkcs8 -topk8 -nocrypt\`)`
        : "";
    throw new KeyError("PEM_MISSING", `no "${label}" PEM block${hint}`);
  }
  return der;
}
