/**
 * `backbone verify NAME`: show the safety number shared with a peer (60 digits, the
 * same on both sides, as Signal computes it) and a QR code of it, and mark the peer
 * verified once the user confirms the numbers match (docs/E2E.md § Trust). With
 * `--accept`, accepts a changed key first (it must then be verified again).
 */
import { createInterface } from "node:readline/promises";
import encodeQR from "@paulmillr/qr";
import { defineCommand } from "citty";
import { E2EError } from "../../e2e/errors.ts";
import { formatSafetyNumber } from "../../e2e/fingerprint.ts";
import { escapeControls } from "../../text/escape.ts";
import { CLIENT_ARGS, CliError, EXIT } from "../common.ts";
import { connectWithE2E, E2E_TAKEOVER_ARG, EXIT_E2E_REQUIRED, EXIT_KEY_CHANGED } from "../e2e.ts";

/** Exit code when the user says the numbers do not match. */
export const EXIT_MISMATCH = 8;

export const verify = defineCommand({
  meta: {
    name: "verify",
    description: "Compare the E2E safety number with a peer and mark it verified",
  },
  args: {
    peer: {
      type: "positional",
      required: true,
      description: "Peer ID or name",
      valueHint: "ID|NAME",
    },
    ...CLIENT_ARGS,
    "e2e-state": {
      type: "string",
      description:
        "E2E state directory (default: $BACKBONE_E2E_STATE or ~/.local/state/backbone/e2e/<id>)",
      valueHint: "DIR",
    },
    ...E2E_TAKEOVER_ARG,
    accept: { type: "boolean", description: "Accept the peer's changed key before verifying" },
    // citty reads `--no-qr` as `qr: false`.
    qr: {
      type: "boolean",
      default: true,
      description: "Print the safety number as a QR code too, on a terminal",
      negativeDescription: "Do not print the QR code",
    },
  },
  async run({ args }) {
    const { client, e2e } = await connectWithE2E(args, { waitSeconds: 10, receive: "none" });
    if (!e2e) throw new CliError("internal: no E2E layer", EXIT.FAILURE);
    try {
      await e2e.keysSynced;
      if (args.accept) {
        const id = await client.resolve(args.peer).catch(() => {
          throw new CliError(`no client "${args.peer}"`, EXIT.UNDELIVERABLE);
        });
        e2e.acceptKey(id);
      }
      const peer = await e2e.lookupPeer(args.peer).catch((err) => {
        // No keys yet: nothing to compare — the same refusal as --strict's (exit 9).
        if (err instanceof E2EError && err.code === "NO_KEYS")
          throw new CliError(
            `${err.message}: nothing to verify until it has run chat, send or listen once`,
            EXIT_E2E_REQUIRED,
          );
        if (err instanceof E2EError) throw new CliError(err.message, EXIT.FAILURE);
        throw new CliError(`no client "${args.peer}"`, EXIT.UNDELIVERABLE);
      });
      const label = escapeControls(peer.name || args.peer);
      const out = process.stdout;
      out.write(`Safety number with ${label} (${peer.id}):\n\n`);
      const groups = formatSafetyNumber(peer.safetyNumber).split(" ");
      for (let i = 0; i < groups.length; i += 4)
        out.write(`    ${groups.slice(i, i + 4).join(" ")}\n`);
      out.write(
        `\nTheir identity key: ${peer.fingerprint}\nYours:              ${e2e.fingerprint}\n`,
      );
      // The QR code is drawn with terminal colours: only on a terminal, never into a file.
      if (args.qr !== false && process.stdout.isTTY)
        out.write(`\n${encodeQR(peer.safetyNumber, "term")}\n`);
      if (peer.pending) {
        throw new CliError(
          `${label}'s key changed to ${peer.pending} since you verified it; to compare the new safety number and verify it: backbone verify ${label} --accept`,
          EXIT_KEY_CHANGED,
        );
      }
      if (peer.verified) {
        out.write(`${label} is already verified.\n`);
        return EXIT.OK;
      }
      out.write(
        `Compare these digits with what ${label} sees (in person, or over a channel you trust).\n`,
      );
      const answer = await ask(`Do they match? [y/N] `);
      if (!/^y(es)?$/i.test(answer.trim())) {
        out.write(`Not verified. If they differ, someone may be between you and ${label}.\n`);
        return EXIT_MISMATCH;
      }
      e2e.verify(peer.id, peer.fingerprint);
      out.write(`${label} is now verified.\n`);
      return EXIT.OK;
    } finally {
      await client.close("done");
    }
  },
});

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: false });
  try {
    process.stdout.write(question);
    const line = await new Promise<string>((resolve) => {
      rl.once("line", resolve);
      rl.once("close", () => resolve(""));
    });
    return line;
  } finally {
    rl.close();
  }
}
