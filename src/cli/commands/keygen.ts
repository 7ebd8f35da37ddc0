/** `backbone keygen`: enrol a new client on the server's machine and write its identity file. */
import { existsSync, type Stats, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { defineCommand } from "citty";
import { parseHostPort } from "../../client/address.ts";
import { writeSecretFile } from "../../crypto/keyfile.ts";
import { parsePublicKey } from "../../crypto/keyformats.ts";
import { RsaPublicKey } from "../../crypto/rsa.ts";
import { describeErrno } from "../../errors.ts";
import { checkName } from "../../ids.ts";
import {
  dataPaths,
  defaultDataDir,
  loadOrCreateServerKey,
  undoCreate,
} from "../../server/datadir.ts";
import { enrollClient, refuseLookAlike } from "../../server/enroll.ts";
import { DEFAULT_PORT, RSA_BITS } from "../../wire/constants.ts";
import { CliError, EXIT, note, readUserFile, withProgress } from "../common.ts";
import { openToolStore, refuseNewKeyForOldClients, STORE_ARG, storeSpec } from "../store-option.ts";
import { configuredPort } from "./serve.ts";

export const keygen = defineCommand({
  meta: {
    name: "keygen",
    description: "Register a new client and write its identity file (run on the server's machine)",
  },
  args: {
    name: {
      type: "string",
      description: "Client name (unique; letters, digits, . _ -)",
      valueHint: "NAME",
    },
    data: {
      type: "string",
      description: "Server data directory (default: $BACKBONE_DATA or ~/.local/share/backbone)",
      valueHint: "DIR",
    },
    ...STORE_ARG,
    server: {
      type: "string",
      description:
        "Address clients connect to, written into the identity (default: 127.0.0.1:PORT)",
      valueHint: "HOST:PORT",
    },
    out: {
      type: "string",
      description: "Identity file to write (default: ./NAME.identity)",
      valueHint: "FILE",
    },
    bits: {
      type: "string",
      description: "RSA key size: 2048, 3072 or 4096 (default 3072)",
      valueHint: "N",
    },
    "public-key": {
      type: "string",
      description:
        'Register this RSA public key instead of generating one (an OpenSSH .pub line "ssh-rsa AAAA…", or PEM: PUBLIC KEY or RSA PUBLIC KEY): the private key never leaves the client, whose owner appends it to the identity file (PKCS#8, PKCS#1 or OpenSSH, passphrase allowed): cat KEY >> NAME.identity',
      valueHint: "FILE",
    },
    force: { type: "boolean", description: "Overwrite the identity file if it exists" },
  },
  async run({ args }) {
    const dir = args.data ?? defaultDataDir();
    const bits = args.bits === undefined ? undefined : Number(args.bits);
    if (bits !== undefined && !(RSA_BITS as readonly number[]).includes(bits)) {
      throw new CliError(`--bits must be one of ${RSA_BITS.join(", ")}`, EXIT.USAGE);
    }
    const server = args.server ?? `127.0.0.1:${configuredPort(dir) ?? DEFAULT_PORT}`;
    parseHostPort(server);
    const spec = storeSpec(args.store, dir);
    if (args.name !== undefined) {
      // Before anything is created; a look-alike of an existing name is named first.
      if (spec || existsSync(dataPaths(dir).db)) {
        const existing = await openToolStore(dir, spec);
        try {
          await refuseLookAlike(existing, args.name.normalize("NFKC"));
        } finally {
          existing.close();
        }
      }
      checkName(args.name);
    }
    const publicKey = args["public-key"] ? await readPublicKey(args["public-key"]) : undefined;
    // Checked before enrolling: a registration whose file cannot be written is revoked,
    // and its name stays taken.
    const plannedOut =
      args.out ?? (args.name !== undefined ? `./${args.name}.identity` : undefined);
    if (args.out !== undefined) checkOutPath(args.out);
    if (plannedOut !== undefined && !args.force && existsSync(plannedOut)) {
      throw new CliError(
        `${plannedOut} already exists; refusing to overwrite it (use ${args.out === undefined ? "--out or " : ""}--force)`,
        EXIT.USAGE,
      );
    }

    const {
      key: serverKey,
      created,
      paths,
      made,
    } = await loadOrCreateServerKey(dir, {
      onCreate: () => note(`creating server data directory ${dir}`),
    });
    if (created) note(`server key: ${serverKey.publicKey.fingerprint} (new; in ${paths.key})`);

    const store = await openToolStore(dir, spec, serverKey);
    let done = false;
    try {
      await refuseNewKeyForOldClients(dir, store, created);
      const enrolled = await withProgress(
        publicKey ? "registering key" : `generating ${bits ?? 3072}-bit RSA key`,
        enrollClient(store, {
          ...(args.name !== undefined ? { name: args.name } : {}),
          server,
          serverKey,
          ...(bits ? { bits } : {}),
          ...(publicKey ? { publicKey } : {}),
        }),
      );
      const { record, identityText } = enrolled;
      const out = args.out ?? `./${record.name}.identity`;
      try {
        writeSecretFile(out, identityText, { exclusive: !args.force });
      } catch (err) {
        // Without its identity file the registration is useless: revoke it.
        await store.revokeClient(record.id, Math.floor(Date.now() / 1000));
        throw err;
      }
      const lines = [
        `registered client "${record.name}"`,
        `  id:        ${record.id}`,
        `  key:       ${record.fingerprint}${publicKey ? " (registered public key)" : ""}`,
        `  server:    ${server} (key ${serverKey.publicKey.fingerprint})`,
        `  identity:  ${out}${publicKey ? " (no private key: append yours — see backbone keygen --help)" : " (keep it private; give it to its user)"}`,
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
      done = true;
      if (!args.server)
        note(
          `note: clients on other machines need --server HOST:PORT at keygen, or --server when they connect`,
        );
    } finally {
      store.close();
      // A data directory made for a registration that failed is not left behind.
      if (!done && made) undoCreate(paths, made);
    }
  },
});

/** `--out` must name a file in a directory that exists (checked before enrolling). */
function checkOutPath(out: string): void {
  let st: Stats | undefined;
  try {
    st = statSync(out);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) {
    throw new CliError(
      `--out ${out} is a directory: give a file name, such as ${join(out, "NAME.identity")}`,
      EXIT.USAGE,
    );
  }
  const dir = dirname(out);
  let dirSt: Stats;
  try {
    dirSt = statSync(dir);
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === "ENOENT";
    throw new CliError(
      `--out ${out}: ${missing ? `no such directory ${dir}` : `${dir}: ${describeErrno(cause)}`}`,
      EXIT.USAGE,
    );
  }
  if (!dirSt.isDirectory())
    throw new CliError(`--out ${out}: ${dir} is not a directory`, EXIT.USAGE);
}

/** `--public-key FILE`: an RSA public key in any format of crypto/keyformats.ts, as SPKI DER. */
async function readPublicKey(path: string): Promise<Uint8Array> {
  const text = readUserFile(path);
  try {
    const spki = parsePublicKey(text, path);
    await RsaPublicKey.fromSpki(spki); // size and exponent, before anything is created
    return spki;
  } catch (cause) {
    const message = (cause as Error).message;
    throw new CliError(message.startsWith(path) ? message : `${path}: ${message}`, EXIT.USAGE);
  }
}
