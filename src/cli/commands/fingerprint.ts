/** `backbone fingerprint`: show key fingerprints, as OpenSSH prints them. */
import { defineCommand } from "citty";
import { findPem } from "../../crypto/pem.ts";
import { fingerprint } from "../../crypto/primitives.ts";
import { RsaPrivateKey, RsaPublicKey } from "../../crypto/rsa.ts";
import { checkDataDir, dataPaths, defaultDataDir } from "../../server/datadir.ts";
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
    if (args.file === undefined) checkDataDir(args.data ?? defaultDataDir());
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
    const pub = findPem(text, "PUBLIC KEY");
    if (pub) {
      const key = await RsaPublicKey.fromSpki(pub);
      process.stdout.write(`${key.fingerprint} ${path} (RSA ${key.bits})\n`);
      return EXIT.OK;
    }
    const priv = findPem(text, "PRIVATE KEY");
    if (priv) {
      const key = await RsaPrivateKey.fromPkcs8(priv);
      process.stdout.write(
        `${fingerprint(key.publicKey.spki)} ${path} (RSA ${key.publicKey.bits}, private)\n`,
      );
      return EXIT.OK;
    }
    throw new CliError(`${path}: no key or identity found`, EXIT.USAGE);
  },
});
