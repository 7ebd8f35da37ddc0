/**
 * `backbone e2e ACTION`: this client's own E2E keys (docs/E2E.md).
 *
 * - `rotate`: make a new E2E identity, sign it with the old one and publish it (§ Key
 *   rollover). Peers that knew the old key follow the signed rollover quietly and keep
 *   their verification; messages already on their way to the old key still decrypt for
 *   RETIRED_IDENTITY_SECONDS.
 * - `status`: this client's identity key, the rollovers and retired keys it holds.
 */
import { defineCommand } from "citty";
import { RETIRED_IDENTITY_SECONDS } from "../../e2e/constants.ts";
import { identityFingerprint } from "../../e2e/fingerprint.ts";
import { type PublicIdentity, publicIdentity } from "../../e2e/keys.ts";
import type { E2EManager } from "../../e2e/session-manager.ts";
import { escapeControls } from "../../text/escape.ts";
import { CLIENT_ARGS, CliError, EXIT, loadIdentityFromFlags } from "../common.ts";
import { connectWithE2E, E2E_TAKEOVER_ARG, openE2E } from "../e2e.ts";

const ACTIONS = ["rotate", "status"];

const fp = (ik: Uint8Array): string =>
  identityFingerprint({
    signingKey: ik.subarray(0, 32),
    dhKey: ik.subarray(32, 64),
    dhSignature: new Uint8Array(64),
  } as PublicIdentity);

export const e2eCommand = defineCommand({
  meta: {
    name: "e2e",
    description: "Your E2E keys: rotate (a new key signed by the old), status",
  },
  args: {
    action: {
      type: "positional",
      required: true,
      description: `One of: ${ACTIONS.join(", ")}`,
      valueHint: "ACTION",
    },
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
    if (args._.length > 1) throw new CliError(`e2e ${action}: too many arguments`, EXIT.USAGE);
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
