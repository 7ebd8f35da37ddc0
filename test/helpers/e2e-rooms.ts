/**
 * Members for the E2E room tests (test/integration/e2e-rooms*.test.ts): a client with
 * its E2E layer on a real server, what it received, its NOTICEs, and every room
 * ciphertext its layer sent (by recipient), plus a room set up with its members.
 */
import { afterEach } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "../../src/client/client.ts";
import type { Identity } from "../../src/client/identity.ts";
import type { IncomingMessage, Notice } from "../../src/client/types.ts";
import { connectE2E } from "../../src/e2e/connect.ts";
import type { E2EManager } from "../../src/e2e/session-manager.ts";
import type { RoomCiphertext } from "../../src/wire/room-e2e.ts";
import type { Cluster } from "./cluster.ts";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});
export function stateDir(): string {
  const r = mkdtempSync(join(tmpdir(), "backbone-e2e-rooms-"));
  roots.push(r);
  return join(r, "state");
}

export interface Member {
  id: string;
  identity: Identity;
  dir: string;
  client: Client;
  e2e: E2EManager;
  got: IncomingMessage[];
  notices: Notice[];
  text(): string[];
  /** Every room ciphertext this member's layer sent, by recipient. */
  sent: RoomCiphertext[];
  close(): Promise<void>;
}

export async function member(
  c: Cluster,
  who: string | Identity,
  opts: { dir?: string; receive?: "all" | "none"; takeover?: boolean } = {},
): Promise<Member> {
  const identity = typeof who === "string" ? await c.enroll(who) : who;
  const dir = opts.dir ?? stateDir();
  const { client, e2e } = await connectE2E({
    identity: { ...identity, server: c.address },
    backoff: { initialMs: 20, maxMs: 200 },
    e2e: { stateDir: dir, ...(opts.takeover ? { takeover: true } : {}) },
    ...(opts.receive ? { session: { receive: opts.receive } } : {}),
  });
  const got: IncomingMessage[] = [];
  const notices: Notice[] = [];
  const sent: RoomCiphertext[] = [];
  client.on("message", (m) => got.push(m));
  client.on("notice", (n) => notices.push(n));
  const original = client.sendRoomE2E.bind(client);
  client.sendRoomE2E = (id, room, entries) => {
    sent.push(...entries.map((e) => ({ member: e.member, ciphertext: e.ciphertext.slice() })));
    original(id, room, entries);
  };
  await e2e.keysSynced;
  return {
    id: identity.id,
    identity,
    dir,
    client,
    e2e,
    got,
    notices,
    sent,
    text: () => got.map((m) => new TextDecoder().decode(m.data)),
    async close() {
      await client.close();
      e2e.close();
    },
  };
}

/** `owner` creates `room` and every one of `others` joins it. */
export async function room(name: string, owner: Client, ...others: Client[]): Promise<void> {
  await owner.rooms.create(name);
  for (const o of others) {
    await owner.rooms.invite(name, o.id);
    await o.rooms.join(name);
  }
}
