/**
 * Public keys that belong to no one (their private halves were discarded when they
 * were made). A response naming an unknown client ID is verified against the one of
 * the signature's size, so an unknown ID costs the server the same work as a known
 * one and timing does not tell which IDs exist (docs/PROTOCOL.md § Handshake, step 5).
 */
import { RsaPublicKey } from "../crypto/rsa.ts";

const DUMMY_SPKI: Record<number, string> = {
  256: "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwl1VJ+Esu7oG59sSKrS7T7zsAc8egarTkgtkfgxR/iptBgnnKc4UPxTNLlTJk/bfLYz89c3NIdda63wAUKmi+7UCYpwr6Ufuly/wPCYdd+SdJLC9zED35g+eBuAFn+KOZKS6ZdV5emX3uoNXc15oqJTB9IHoz27rDVl60Fw/J2eNE8I1Iixt1PM4tTuYwqPUbxtrK0EkuvCV366OFwvpfChPKeE3cS1EzE60G1UuuNEVraatZ5gg9ADZv7dBVre2Mx3JPFZt2xALpFq3xEx9A8uobDBJZrxGAM13RkBt0sS/Ymnsm5rmgiN2pVKrBC20weKIEdCMlyCAyAxN43asJwIDAQAB",
  384: "MIIBojANBgkqhkiG9w0BAQEFAAOCAY8AMIIBigKCAYEAwsH9Xe6wQ/jdhiuzZfkEze8c2CKYq2hI419Ix4kIMqsMQIEM5uw0Vnf154VwFp4Z3E1e0NAdCbwHk7ho+PFmLnaA3V+gKKOqX81+BvGektyAXNcligWuArz0Fgx/3asEZRCaex2EUUQJWn9QXqVsmxShSxrw1Zt7f+dmTIUgFMd/wzZAIbrljWXcDT3OHaNarnzHLgXrucBQlLQDDjhwPW6in+1TAoq2bedZU3XNx6cy0yXhd3/N3Hj5vlU8gcE054JYh3ht+C/Dl3fkYdF8m1QzR+nRQ2xFohtt4OmgtcWOEBtYvCkG/balY6A0GfHPOJ8Csdi6LneK5oTxEoQZKb5FxDK+MD15h5bYSe31V5n0DB0tUbK0CkhV/056oeUfasD3OlwOcMZmeTOmzJ+eZKourx/Wpuwx/IzZwNQBUirya2fWS168N0LSAM6guPazbb0xndw4X9zu1kodLQfjrPUKQnxYegkN3dIKc+kvGqnJ9Tb8Ac9IBD+cgRpVNd/dAgMBAAE=",
  512: "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAkS7JV/kFFJ5k3l+sws/oj6ByvYgFtECuNRhR+xSNUZ2BnCxsiK4pphLA1A766bhrxWtFQguczrqy79osO+Tgz4gOq0yRLqLehVMQ1xsYbHgoesLkRuxf0iBDHjJIED2fZe+eqDcPiHX9LSOqqbp4FiEo9Pxljg9nRl1DsD86qYKwyfrJ0AHgJBF8RgvGB/TfcYp2JNU9TK+YeEyvImLnw3bfmgDZThuEPqHhpfb4nZ+qpRuXCulM+lu8ag3QtpXdGOF74r2InsSUiQNIfXzYi17y9TcDUxfYetS5WnaFuGXL6sVw//b6ckVN1ELiomzHmo5X2TBlEznKadXbP8ZXbyswxVI9SILsCNxJcvKWG3RGRMa/K53U2ysJ5fWk69fhsklmL+NnYvYgGfBTL4QgyKx+54HQMCqhphw+RyJ/f3IAUv0nHhAvaHe8MSkJdPHVf53PmYR7mimN8ZXLZC0gImN+0oDIc3icMExqryb6osDTDFYFvFXaz6k4wNBi9adQB1YgmADDh92HSKqn/+WR+5Qj8iL2PvnnGi7OEVqGrGKNIhdarolKqCiVeNEsOVKBpfdMqjwrKz0Jdps4V8Ij8e/p432r1JRgwgpfO0sI77+crJjnXC8JlZwhacacufueuLc5i7HVbB4VtOSlYKWlxpvYquaWr/VM+1kTwX63h1cCAwEAAQ==",
};

const cache = new Map<number, Promise<RsaPublicKey>>();

/** The SPKI DER of the dummy key whose signatures are `signatureBytes` long (384-byte one otherwise). */
export function dummySpki(signatureBytes: number): Uint8Array {
  const b64 = DUMMY_SPKI[signatureBytes] ?? DUMMY_SPKI[384];
  return new Uint8Array(Buffer.from(b64 as string, "base64"));
}

/**
 * A new SPKI DER of the size of {@link dummySpki}`(signatureBytes)` with a random
 * modulus (top bit set, odd; exponent 65537): a key no one holds, different each
 * time. An unknown ID is checked against one of these, imported and used for the
 * first time just as a registered client's key is on its first login — importing and
 * first using the same bytes again is measurably cheaper (~20 µs), which would tell.
 */
export function standInSpki(signatureBytes: number): Uint8Array {
  const spki = dummySpki(signatureBytes);
  const bytes = DUMMY_SPKI[signatureBytes] ? signatureBytes : 384;
  // The SPKI ends: INTEGER modulus (bytes) || 02 03 01 00 01 (the exponent).
  const at = spki.length - 5 - bytes;
  crypto.getRandomValues(spki.subarray(at, at + bytes));
  spki[at] = (spki[at] as number) | 0x80;
  spki[at + bytes - 1] = (spki[at + bytes - 1] as number) | 1;
  return spki;
}

/** The dummy key whose signatures are `signatureBytes` long (256, 384 or 512). */
export function dummyKey(signatureBytes: number): Promise<RsaPublicKey> {
  let key = cache.get(signatureBytes);
  if (!key) {
    key = RsaPublicKey.fromSpki(dummySpki(signatureBytes), "verify");
    cache.set(signatureBytes, key);
  }
  return key;
}

/** Imports every dummy key now, so the first unknown login costs no import. */
export async function warmDummyKeys(): Promise<void> {
  await Promise.all(Object.keys(DUMMY_SPKI).map((n) => dummyKey(Number(n))));
}
