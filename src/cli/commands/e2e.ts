/**
 * `backbone e2e ACTION`: this client's own E2E keys (docs/E2E.md).
 *
 * - `rotate`: make a new E2E identity, sign it with the old one and publish it (§ Key
 *   rollover). Peers that knew the old key follow the signed rollover quietly and keep
 *   their verification; messages already on their way to the old key still decrypt for
 *   RETIRED_IDENTITY_SECONDS.
 * - `status`: this client's identity key, the rollovers and retired keys it holds.
 * - `export FILE` / `import FILE`: move the E2E state to another machine, sealed under a
 *   passphrase (export.ts); the exported state is not used here any more.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { defineCommand } from "citty";
import { readSecretFile } from "../../crypto/keyfile.ts";
import { RETIRED_IDENTITY_SECONDS } from "../../e2e/constants.ts";
import { E2EError } from "../../e2e/errors.ts";
import { exportState, importState } from "../../e2e/export.ts";
import { identityFingerprint } from "../../e2e/fingerprint.ts";
import { type PublicIdentity, publicIdentity } from "../../e2e/keys.ts";
import type { E2EManager } from "../../e2e/session-manager.ts";
import { defaultStateDir, E2EState } from "../../e2e/state.ts";
import { escapeControls } from "../../text/escape.ts";
import { CLIENT_ARGS, CliError, EXIT, loadIdentityFromFlags } from "../common.ts";
import { connectWithE2E, E2E_TAKEOVER_ARG, type E2EFlags, openE2E } from "../e2e.ts";
import { askTerminal, closeTerminal } from "../passphrase.ts";

const ACTIONS = ["rotate", "status", "export", "import"];

const fp = (ik: Uint8Array): string =>
  identityFingerprint({
    signingKey: ik.subarray(0, 32),
    dhKey: ik.subarray(32, 64),
    dhSignature: new Uint8Array(64),
  } as PublicIdentity);

export const e2eCommand = defineCommand({
  meta: {
    name: "e2e",
    description:
      "Your E2E keys: rotate (a new key signed by the old), status, export/import (move to another machine)",
  },
  args: {
    action: {
      type: "positional",
      required: true,
      description: `One of: ${ACTIONS.join(", ")}`,
      valueHint: "ACTION",
    },
    file: {
      type: "positional",
      required: false,
      description: "export/import: the file holding the sealed state",
      valueHint: "FILE",
    },
    "e2e-passphrase-file": {
      type: "string",
      description:
        "export/import: file holding the passphrase that seals the state (default: asked on the terminal)",
      valueHint: "FILE",
    },
    force: { type: "boolean", description: "import: replace an E2E state already here" },
    ...CLIENT_ARGS,
    "e2e-state": {
      type: "string",
      description:
        "E2E state directory (default: $BACKBONE_E2E_STATE or ~/.local/state/backbone/e2e/<id>)",
      valueHint: "DIR",
    },
    ...E2E_TAKEOVER_ARG,
  },
  async run({ args }) {
    const action = String(args.action);
    if (!ACTIONS.includes(action))
      throw new CliError(
        `e2e: unknown action "${escapeControls(action)}" (one of ${ACTIONS.join(", ")})`,
        EXIT.USAGE,
      );
    const withFile = action === "export" || action === "import";
    if (args._.length > (withFile ? 2 : 1))
      throw new CliError(`e2e ${action}: too many arguments`, EXIT.USAGE);
    if (withFile) return moveState(action, args);
    if (action === "status") {
      // Local only: no connection, nothing published.
      const identity = await loadIdentityFromFlags(args);
      const e2e = openE2E(identity, args) as E2EManager;
      try {
        printStatus(e2e);
      } finally {
        e2e.close();
      }
      return EXIT.OK;
    }
    const { client, e2e } = await connectWithE2E(args, { waitSeconds: 10, receive: "none" });
    if (!e2e) throw new CliError("internal: no E2E layer", EXIT.FAILURE);
    try {
      // The current key must be the published one (or ours to take over) before it is replaced.
      await e2e.keysSynced;
      const failed = new Promise<Error>((resolve) =>
        e2e.once("syncFailed", ({ error }) => resolve(error)),
      );
      const { previous, fingerprint } = e2e.rotateIdentity();
      const error = await Promise.race([e2e.keysSynced.then(() => null), failed]);
      const out = process.stdout;
      out.write(`New E2E identity key: ${fingerprint}\n`);
      out.write(`Signed by the old one: ${previous}\n`);
      if (error) {
        throw new CliError(
          `the new key is saved but could not be published (${error.message}); it is published at the next connection`,
          EXIT.FAILURE,
        );
      }
      out.write(
        `Published. Peers that knew the old key keep their verification when they see the new one; messages on their way to the old key still decrypt for ${RETIRED_IDENTITY_SECONDS / 86400} days.\n`,
      );
      return EXIT.OK;
    } finally {
      await client.close("done");
    }
  },
});

function printStatus(e2e: E2EManager): void {
  const out = process.stdout;
  const st = e2e.state;
  out.write(`E2E identity key: ${e2e.fingerprint}\n`);
  out.write(`State directory:  ${escapeControls(st.dir)}\n`);
  if (st.rollovers.length > 0) {
    out.write(`Rollovers (oldest first, each signed by the key before it):\n`);
    for (const link of st.rollovers) out.write(`  ${fp(link.previous)} → ${fp(link.next)}\n`);
  }
  for (const r of st.retired) {
    const left = Math.max(0, r.retiredAt + RETIRED_IDENTITY_SECONDS - st.now());
    out.write(
      `Retired key ${identityFingerprint(publicIdentity(r.identity))}: still decrypts for ${Math.ceil(left / 86400)} days\n`,
    );
  }
}

interface MoveFlags extends E2EFlags {
  file?: string | undefined;
  "e2e-passphrase-file"?: string | undefined;
  force?: boolean | undefined;
}

/** `e2e export FILE` / `e2e import FILE`. */
async function moveState(action: "export" | "import", args: MoveFlags): Promise<number> {
  const file = args.file;
  if (!file) throw new CliError(`e2e ${action}: missing argument <FILE>`, EXIT.USAGE);
  const identity = await loadIdentityFromFlags(args);
  const dir = args["e2e-state"] ?? process.env.BACKBONE_E2E_STATE ?? defaultStateDir(identity.id);
  const passphrase = await askPassphrase(args["e2e-passphrase-file"], action === "export");
  try {
    if (action === "export") {
      if (existsSync(file))
        throw new CliError(`${escapeControls(file)} exists already`, EXIT.USAGE);
      const st = E2EState.open(dir, identity.id);
      let bytes: Uint8Array;
      try {
        bytes = exportState(st, passphrase);
        writeFileSync(file, bytes, { flag: "wx", mode: 0o600 });
      } finally {
        st.close();
      }
      process.stdout.write(
        `Exported the E2E state (${st.fingerprint}) to ${escapeControls(file)}. It is not used on this machine any more: run backbone e2e import on the new one.\n`,
      );
      return EXIT.OK;
    }
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch {
      throw new CliError(`cannot read ${escapeControls(file)}`, EXIT.USAGE);
    }
    const { fingerprint } = importState(dir, identity.id, data, passphrase, {
      ...(args.force ? { force: true } : {}),
    });
    process.stdout.write(`Imported the E2E state (${fingerprint}) into ${escapeControls(dir)}.\n`);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof E2EError) {
      const usage = ["MALFORMED", "BAD_PASSPHRASE", "WRONG_CLIENT", "STATE_EXISTS"].includes(
        err.code,
      );
      throw new CliError(err.message, usage ? EXIT.USAGE : EXIT.FAILURE);
    }
    throw err;
  }
}

/** The sealing passphrase: the first line of `file`, else asked on the terminal (twice to export). */
async function askPassphrase(file: string | undefined, confirm: boolean): Promise<string> {
  if (file !== undefined) {
    const line = readSecretFile(file, "a passphrase file").split(/\r?\n/, 1)[0] ?? "";
    if (!line) throw new CliError(`${escapeControls(file)}: empty passphrase`, EXIT.USAGE);
    return line;
  }
  try {
    const first = await askTerminal("Passphrase for the E2E state: ");
    if (first === undefined)
      throw new CliError(
        "no terminal to ask a passphrase on: use --e2e-passphrase-file FILE",
        EXIT.USAGE,
      );
    if (!first) throw new CliError("empty passphrase", EXIT.USAGE);
    if (confirm && (await askTerminal("Again: ")) !== first)
      throw new CliError("the passphrases differ", EXIT.USAGE);
    return first;
  } finally {
    closeTerminal();
  }
}
