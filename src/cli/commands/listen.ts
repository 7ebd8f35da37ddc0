/** `backbone listen`: print every incoming message, one line each. */
import { defineCommand } from "citty";
import { escapeControls } from "../../text/escape.ts";
import { CLIENT_ARGS, clock, displayText, EXIT, note, safeJson } from "../common.ts";
import { connectWithE2E, E2E_ARGS } from "../e2e.ts";
import {
  describeRoomEventE2E,
  describeRoomPresence,
  roomEventRow,
  roomPresenceRow,
} from "../e2e-rooms.ts";
import { NameCache } from "../names.ts";
import { roomPrefix } from "../rooms-ui.ts";
import { describeEnd, reportEnd, type SessionEnd } from "../session.ts";
import { messageText } from "../tty/lines.ts";

export const listen = defineCommand({
  meta: {
    name: "listen",
    description: "Print every incoming message, one per line (--json for scripts)",
  },
  args: {
    ...CLIENT_ARGS,
    ...E2E_ARGS,
    json: {
      type: "boolean",
      description:
        "One JSON object per line: from, name, time, kind, room (room messages), data, e2e, verified; membership changes as kind room_event with the member's fingerprint",
    },
  },
  async run({ args }) {
    const { client, e2e } = await connectWithE2E(args, {
      waitSeconds: Number.POSITIVE_INFINITY,
      countdown: true,
      receive: "all",
    });
    const names = new NameCache(client);
    // Revoked, or refused on a reconnect: say so and exit as a one-shot command would.
    let ended: SessionEnd | undefined;
    client.on("close", ({ error }) => {
      if (error) ended = describeEnd(error);
    });
    const decoder = new TextDecoder("utf-8", { fatal: true });
    client.on("disconnect", ({ reason, willReconnect }) => {
      if (willReconnect) note(`connection lost (${reason}); reconnecting…`);
    });
    client.on("connect", () => note("connected"));
    // Membership changes, with the member's E2E key (src/cli/e2e-rooms.ts): a JSON row
    // of kind "room_event", or a line on stderr.
    client.on("room", async (e) => {
      if (args.json) process.stdout.write(`${safeJson(await roomEventRow(e2e, e, client.id))}\n`);
      else for (const line of await describeRoomEventE2E(e2e, e, client.id)) note(`* ${line}`);
    });
    // A member never seen joining, announced before its first message.
    e2e?.on("roomMember", (p) => {
      if (args.json) process.stdout.write(`${safeJson(roomPresenceRow(p))}\n`);
      else for (const line of describeRoomPresence(p)) note(`* ${line}`);
    });
    const stop = () => void client.close("listener stopped");
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    for await (const m of client.messages()) {
      const name = await names.get(m.from);
      const time = m.queuedAt ?? m.receivedAt;
      if (args.json) {
        let data: string;
        let encoding: string | undefined;
        try {
          data = decoder.decode(m.data);
        } catch {
          data = Buffer.from(m.data).toString("base64");
          encoding = "base64";
        }
        const row = {
          from: m.from,
          name,
          time: time.toISOString(),
          kind: m.kind,
          ...(m.room !== null ? { room: m.room } : {}),
          data,
          ...(encoding ? { encoding } : {}),
          e2e: m.e2e === true,
          verified: m.verified === true,
        };
        process.stdout.write(`${safeJson(row)}\n`);
      } else {
        const tag = m.stored ? " (while you were away)" : m.kind === "broadcast" ? " (to all)" : "";
        const who = `${roomPrefix(m)}${escapeControls(name)}`;
        process.stdout.write(messageText(`[${clock(time)}] ${who}${tag}: `, displayText(m.data)));
      }
    }
    return ended ? reportEnd(ended) : EXIT.OK;
  },
});
