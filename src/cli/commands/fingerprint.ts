/** `backbone fingerprint`: show key fingerprints, as OpenSSH prints them. */
import { defineCommand } from "citty";
import { hasPrivateKey, parsePrivateKey, parsePublicKey } from "../../crypto/keyformats.ts";
import { fingerprint } from "../../crypto/primitives.ts";
import { RsaPrivateKey, RsaPublicKey } from "../../crypto/rsa.ts";
import { KeyError } from "../../errors.ts";
import { checkDataDirPath, dataPaths, defaultDataDir } from "../../server/datadir.ts";
import { CliError, EXIT, readUserFile } from "../common.ts";

export const fingerprintCommand = defineCommand({
  meta: {
    name: "fingerprint",
    description: "Show the fingerprint of a key, identity file, or this server",
  },
  args: {
    file: {
      type: "positional",
      required: false,
      description: "Identity file or PEM key (default: the server key of the data directory)",
      valueHint: "FILE",
    },
    data: { type: "string", description: "Server data directory (without FILE)", valueHint: "DIR" },
  },
  async run({ args }) {
    if (args.file === undefined) checkDataDirPath(args.data ?? defaultDataDir());
    const path = args.file ?? dataPaths(args.data ?? defaultDataDir()).pub;
    const text = readUserFile(path);
    if (/^backbone-identity:/m.test(text)) {
      // Read without the permission check: fingerprints are public.
      const line = (k: string) => new RegExp(`^${k}:[ \\t]*(\\S+)`, "m").exec(text)?.[1] ?? "?";
      process.stdout.write(
        `${line("key")} ${line("name")} (client key)\n${line("server-key")} ${line("server")} (pinned server key)\n`,
      );
      return EXIT.OK;
    }
    if (hasPrivateKey(text)) {
      // Never asked for a passphrase: an encrypted key's fingerprint needs its public half.
      const pkcs8 = await parsePrivateKey(text, path).catch((err) => {
        if (err instanceof KeyError && err.code === "KEY_ENCRYPTED") {
          throw new CliError(
            `${path}: the private key is encrypted: give its public half (the .pub file) instead`,
            EXIT.USAGE,
          );
        }
        throw err;
      });
      if (pkcs8) {
        const key = await RsaPrivateKey.fromPkcs8(pkcs8);
        process.stdout.write(
          `${fingerprint(key.publicKey.spki)} ${path} (RSA ${key.publicKey.bits}, private)\n`,
        );
        return EXIT.OK;
      }
    }
    let spki: Uint8Array | undefined;
    try {
      spki = parsePublicKey(text, path);
    } catch (err) {
      if (!(err instanceof KeyError) || err.code !== "PEM_MISSING") throw err;
    }
    if (spki) {
      const key = await RsaPublicKey.fromSpki(spki);
      process.stdout.write(`${key.fingerprint} ${path} (RSA ${key.bits})\n`);
      return EXIT.OK;
    }
    throw new CliError(`${path}: no key or identity found`, EXIT.USAGE);
  },
});
