/**
 * A receiving client in its own process, for the E2E crash tests: connects with the E2E
 * layer and writes each message it is shown as one JSON line on stdout (synchronously,
 * so a line written is a message shown). Exits after `count` messages.
 * Usage: bun test/helpers/e2e-listener.ts <identity file> <server host:port> <state dir> <count>
 * With BACKBONE_E2E_TEST_CRASH_AT set, the E2E layer kills the process at that point.
 */
import { writeSync } from "node:fs";
import { connectE2E } from "../../src/e2e/connect.ts";

const [identity, server, stateDir, count] = process.argv.slice(2);
let shown = 0;
const { client, e2e } = await connectE2E({
  identity: identity as string,
  server: server as string,
  e2e: { stateDir: stateDir as string },
});
client.on("message", (m) => {
  writeSync(
    1,
    `${JSON.stringify({ text: new TextDecoder().decode(m.data), e2e: m.e2e, kind: m.kind })}\n`,
  );
  if (++shown === Number(count)) {
    // Let the ACK and the inbox save go out, then leave.
    setTimeout(async () => {
      await client.close();
      e2e.close();
      process.exit(0);
    }, 50);
  }
});
