/**
 * `backbone room`: room membership (docs/PROTOCOL.md § Rooms) — create, invite, remove,
 * join, leave, list, members, owner — each one request to the server, each with
 * `--json`. Room and member names are peer-controlled text: escaped before printing.
 */
import { defineCommand } from "citty";
import type { Client } from "../../client/client.ts";
import { RoomError } from "../../client/rooms.ts";
import type { UsageError } from "../../errors.ts";
import { checkRoomName } from "../../rooms/names.ts";
import { escapeControls } from "../../text/escape.ts";
import { ago, CLIENT_ARGS, CliError, connectFromFlags, EXIT, roomExitCode } from "../common.ts";

const ACTIONS = ["create", "invite", "remove", "join", "leave", "list", "members", "owner"];
/** Actions that take MEMBER…, and those that take exactly one. */
const WITH_MEMBERS = new Set(["invite", "remove", "owner"]);

const esc = (s: string) => escapeControls(s);

export const room = defineCommand({
  meta: {
    name: "room",
    description: "Rooms: create, invite, remove, join, leave, list, members, owner",
  },
  args: {
    action: {
      type: "positional",
      required: true,
      description: `One of: ${ACTIONS.join(", ")}`,
      valueHint: "ACTION",
    },
    name: {
      type: "positional",
      required: false,
      description: "The room (`ops` or `#ops`); not for `list`",
      valueHint: "NAME",
    },
    member: {
      type: "positional",
      required: false,
      description: "Clients (ID or name) for invite, remove (several) and owner (one)",
      valueHint: "MEMBER…",
    },
    public: { type: "boolean", description: "create: anyone may join (default: invite-only)" },
    json: { type: "boolean", description: "Print the server's answer as JSON" },
    ...CLIENT_ARGS,
  },
  async run({ args }) {
    const action = String(args.action);
    if (!ACTIONS.includes(action))
      throw new CliError(
        `room: unknown action "${esc(action)}" (one of ${ACTIONS.join(", ")})`,
        EXIT.USAGE,
      );
    const words = args._.slice(1).map(String);
    const [name, ...members] = words;
    if (action === "list" && words.length > 0)
      throw new CliError("room list: takes no arguments", EXIT.USAGE);
    if (action !== "list" && name === undefined)
      throw new CliError(`room ${action}: missing argument <NAME>`, EXIT.USAGE);
    if (WITH_MEMBERS.has(action) && members.length === 0)
      throw new CliError(`room ${action}: missing argument <MEMBER>`, EXIT.USAGE);
    if (
      (action === "owner" && members.length > 1) ||
      (!WITH_MEMBERS.has(action) && members.length > 0)
    )
      throw new CliError(`room ${action}: too many arguments`, EXIT.USAGE);
    if (args.public && action !== "create")
      throw new CliError("room: --public goes with `create`", EXIT.USAGE);
    const room = name === undefined ? "" : checkName(name);
    const client = await connectFromFlags(args, { waitSeconds: 0, receive: "none" });
    try {
      return await act(client, action, room, members, args.public === true, args.json === true);
    } catch (err) {
      if (err instanceof RoomError)
        throw new CliError(`room ${action}: ${err.message}`, roomExitCode(err));
      throw err;
    } finally {
      await client.close("done");
    }
  },
});

function checkName(name: string): string {
  try {
    return checkRoomName(name);
  } catch (err) {
    throw new CliError((err as UsageError).message, EXIT.USAGE);
  }
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function act(
  client: Client,
  action: string,
  name: string,
  members: string[],
  isPublic: boolean,
  json: boolean,
): Promise<number> {
  const r = client.rooms;
  switch (action) {
    case "create": {
      const got = await r.create(name, { public: isPublic });
      if (json) out(JSON.stringify({ ...got, public: isPublic }));
      else out(`created #${esc(got.room)} (${isPublic ? "public" : "invite-only"})`);
      return EXIT.OK;
    }
    case "invite":
    case "remove": {
      // Each member on its own: one that fails is reported, the rest still go.
      let code: number = EXIT.OK;
      for (const m of members) {
        try {
          const who = action === "invite" ? await r.invite(name, m) : await r.remove(name, m);
          if (json) out(JSON.stringify({ room: name, op: action, member: who }));
          else
            out(
              `${action === "invite" ? "invited" : "removed"} ${esc(who.name)} ${action === "invite" ? "to" : "from"} #${esc(name)}`,
            );
        } catch (err) {
          if (!(err instanceof RoomError)) throw err;
          if (code !== EXIT.REFUSED) code = roomExitCode(err);
          process.stderr.write(`backbone: room ${action} ${esc(m)}: ${esc(err.message)}\n`);
        }
      }
      return code;
    }
    case "join": {
      const got = await r.join(name);
      out(json ? JSON.stringify(got) : `joined #${esc(got.room)}`);
      return EXIT.OK;
    }
    case "leave": {
      const got = await r.leave(name);
      if (json) out(JSON.stringify(got));
      else
        out(`left #${esc(got.room)}${got.deleted ? " (its last member: the room is gone)" : ""}`);
      return EXIT.OK;
    }
    case "owner": {
      const who = await r.setOwner(name, members[0] as string);
      out(
        json
          ? JSON.stringify({ room: name, owner: who })
          : `#${esc(name)} is now owned by ${esc(who.name)}`,
      );
      return EXIT.OK;
    }
    case "list": {
      const rooms = await r.list();
      if (json) {
        for (const x of rooms) out(JSON.stringify(x));
        return EXIT.OK;
      }
      if (rooms.length === 0) out("no rooms (create one with `backbone room create NAME`)");
      const rows = rooms.map((x) => [
        `#${esc(x.room)}`,
        x.state === "invited" ? "invited" : x.owner ? "owner" : "member",
        x.public ? "public" : "invite-only",
        `${x.members} member${x.members === 1 ? "" : "s"}`,
      ]);
      table(rows.length > 0 ? [["ROOM", "YOU", "ACCESS", "SIZE"], ...rows] : []);
      return EXIT.OK;
    }
    default: {
      const got = await r.members(name);
      if (json) {
        out(JSON.stringify(got));
        return EXIT.OK;
      }
      const now = Math.floor(Date.now() / 1000);
      const rows = got.members.map((m) => [
        esc(m.name),
        m.owner ? "owner" : m.state,
        m.state === "invited"
          ? "-"
          : m.id.toLowerCase() === client.id.toLowerCase()
            ? "you" // this one-shot session is not presence: "last seen 0s ago" would puzzle
            : m.online
              ? "online"
              : m.last_seen === null
                ? "never seen"
                : `last seen ${ago(now - m.last_seen)} ago`,
        m.id,
      ]);
      table([["NAME", "ROLE", "PRESENCE", "ID"], ...rows]);
      return EXIT.OK;
    }
  }
}

function table(rows: string[][]): void {
  if (rows.length === 0) return;
  const widths = (rows[0] as string[]).map((_, i) =>
    Math.max(...rows.map((r) => (r[i] ?? "").length)),
  );
  for (const r of rows)
    out(
      r
        .map((v, i) => v.padEnd(widths[i] as number))
        .join("  ")
        .trimEnd(),
    );
}
