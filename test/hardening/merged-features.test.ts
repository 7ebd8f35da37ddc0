/**
 * Faults an attacking review found where the features of one round meet (sessions,
 * rooms, E2E, revocation, the key directory, the monitor): each a test that failed
 * before its fix, against a real server over real sockets.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IncomingMessage } from "../../src/client/types.ts";
import { connectE2E } from "../../src/e2e/connect.ts";
import {
  encodeBundle,
  generateIdentity,
  generateOneTimePreKeys,
  generateSignedPreKey,
  publicIdentity,
} from "../../src/e2e/keys.ts";
import { E2EManager } from "../../src/e2e/session-manager.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { idToBytes } from "../../src/ids.ts";
import { loopbackHost } from "../../src/monitor/http.ts";
import { ControlType, decodeJson, decodeMessage, encodeControl } from "../../src/wire/message.ts";
import { cleanupAll, sandbox } from "../helpers/binary.ts";
import { notices, startCluster, until } from "../helpers/cluster.ts";
import { FramedSocket } from "../helpers/framed.ts";
import { c2c } from "../helpers/raw.ts";

const td = new TextDecoder();
const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
  await cleanupAll();
});
const stateDir = () => {
  const r = mkdtempSync(join(tmpdir(), "backbone-merged-"));
  roots.push(r);
  return join(r, "state");
};

describe("revocation", () => {
  test("a login in flight when its client is revoked is refused, not admitted", async () => {
    await using c = await startCluster();
    const m = await c.enroll("mallory");
    await using sock = await FramedSocket.dial(c.server.port);
    const hs = new ClientHandshake({
      id: idToBytes(m.id),
      key: m.key,
      pinnedServerKey: m.serverKey,
    });
    sock.writeFrame(await hs.respond(await sock.nextFrame()));
    const tag = crypto.getRandomValues(new Uint8Array(16));
    const session = hs.sealEarly(
      encodeControl(ControlType.SESSION, new Uint8Array([1, 3, ...tag])),
    );
    sock.write(session.subarray(0, 3)); // a partial first frame: the server waits for the rest
    // RSA verification takes a few ms; then the server waits for the rest of the frame.
    await Bun.sleep(500);
    expect(await c.server.revoke(m.id)).toBe(true);
    sock.write(session.subarray(3));
    const first = await sock.nextFrame();
    // Refused (STOP revoked; or, had verification been slower, the usual refusal).
    expect(() => hs.finish(first)).toThrow(/^(revoked|authentication failed)$/);
    expect(c.server.router.online.sessionCount).toBe(0);
  });
});

describe("revocation and room fan-out", () => {
  test("a revoked sender's room fan-out waiting for its budget delivers and stores nothing more", async () => {
    await using c = await startCluster({ room_fanout_rate: 1, room_fanout_burst: 1 });
    const mallory = await c.client("mallory");
    const bob = await c.client("bob");
    const carolId = await c.enroll("carol");
    const carol = await c.client(carolId);
    await mallory.rooms.create("ops", { public: true });
    await bob.rooms.join("ops");
    await carol.rooms.join("ops");
    await carol.close(); // offline: her copy would go to her queue
    await Bun.sleep(1100); // the budget refilled
    const bobGot: string[] = [];
    bob.on("message", (m) => bobGot.push(td.decode(m.data)));
    // Two copies against a burst of one: the fan-out waits about a second.
    mallory.send("#ops", "sent before the revocation");
    await Bun.sleep(100); // read by the server (its reply would wait behind the fan-out)
    expect(await c.server.revoke(mallory.id)).toBe(true);
    await Bun.sleep(2500); // past the budget's wait
    await bob.ping();
    expect(bobGot).toEqual([]);
    expect(await c.store.peek(carolId.id, 10)).toEqual([]);
  });
});

describe("acknowledgements after a failed incoming hook", () => {
  test("a stored room message does not acknowledge a stored direct message the hook failed on", async () => {
    await using c = await startCluster();
    const alice = await c.client("alice");
    const bobId = await c.enroll("bob");
    const bob = await c.client(bobId);
    await alice.rooms.create("ops", { public: true });
    await bob.rooms.join("ops");
    await bob.close();
    alice.send(bobId.id, "important direct");
    alice.send("#ops", "room chatter");
    await until(async () => (await c.store.pendingCount()) === 2, 5000, "two stored");
    const failing = await c.client(bobId, {
      incoming: (m) => {
        if (m.stored && m.room === null) throw new Error("state not saved");
        return m;
      },
    });
    const failed: Error[] = [];
    failing.on("incomingError", ({ error }) => failed.push(error));
    await until(() => failed.length === 1, 5000, "the hook failed");
    await failing.ping();
    await failing.close();
    // Nothing was acknowledged: both are still held, and come again.
    expect(await c.store.pendingCount()).toBe(2);
    const again = await c.client(bobId);
    const got: string[] = [];
    again.on("message", (m) => got.push(td.decode(m.data)));
    await until(() => got.length === 2, 5000, "both again");
    expect(got).toEqual(["important direct", "room chatter"]);
  });
});

describe("E2E: the live hand-over between processes of one identity", () => {
  test("a live envelope replayed to a process started later is not shown there", async () => {
    await using c = await startCluster();
    const aliceId = await c.enroll("alice");
    const bobId = await c.enroll("bob");
    const bobDir = stateDir();
    const a = await connectE2E({ identity: aliceId, e2e: { stateDir: stateDir() } });
    const b = await connectE2E({ identity: bobId, e2e: { stateDir: bobDir } });
    await a.e2e.keysSynced;
    await b.e2e.keysSynced;
    const shown: string[] = [];
    b.client.on("message", (m) => shown.push(td.decode(m.data)));
    const raw = await c.raw(bobId); // a second session of bob: it receives the same ciphertext
    await a.e2e.send("bob", "pay 100 to carol");
    let envelope: Uint8Array | null = null;
    for (let i = 0; i < 20 && !envelope; i++) {
      const m = await raw.next(5000);
      if (m[0] === 0x00) envelope = m.subarray(17);
    }
    await until(() => shown.length === 1, 5000, "bob's first process shows it");
    expect(envelope).not.toBeNull();
    await Bun.sleep(1100); // the next process starts in a later second
    const later = E2EManager.open(bobId.id, { stateDir: bobDir });
    const replay = {
      from: aliceId.id,
      fromBytes: idToBytes(aliceId.id),
      data: envelope as Uint8Array,
      kind: "direct",
      room: null,
      stored: false,
      queuedAt: null,
      receivedAt: new Date(),
    } as IncomingMessage;
    expect(later.incoming(replay)).toBeNull();
    later.close();
    await a.client.close();
    await b.client.close();
  });
});

describe("the key directory and sessions", () => {
  test("prekeys_low goes to the owner's sessions that use KEYS, never to one that does not", async () => {
    await using c = await startCluster();
    const bobId = await c.enroll("bob");
    const publisher = await c.client(bobId);
    const identity = generateIdentity(bobId.id);
    const bundle = encodeBundle({
      identity: publicIdentity(identity),
      signedPreKey: generateSignedPreKey(identity, 1),
      oneTimePreKeys: generateOneTimePreKeys(identity, 1, 20),
    });
    expect(
      await publisher.keyDirectory({
        op: "publish",
        bundle: Buffer.from(bundle).toString("base64"),
      }),
    ).toMatchObject({ one_time_prekeys: 20 });
    const toPublisher = notices(publisher);
    const plain = await c.client(bobId); // a newer session that never sent KEYS
    const toPlain = notices(plain);
    const alice = await c.client("alice");
    expect((await alice.keyDirectory({ op: "fetch", client: "bob" })).bundle).toBeDefined();
    await until(() => toPublisher.length === 1, 5000, "the NOTICE");
    await publisher.ping();
    await plain.ping();
    expect(toPublisher.map((n) => n.status)).toEqual(["prekeys_low"]);
    expect(toPlain).toEqual([]);
  });
});

describe("rooms", () => {
  test("members of a room too large to list in one message: pages that fit, the connection stays", async () => {
    await using c = await startCluster();
    const aliceId = await c.enroll("alice");
    const alice = await c.client(aliceId);
    await alice.rooms.create("big", { public: true });
    const now = Math.floor(Date.now() / 1000);
    for (let i = 0; i < 700; i++) {
      const id = randomUUID();
      await c.store.addClient({
        id,
        name: `member${i}`,
        publicKey: new Uint8Array(32),
        fingerprint: `x${i}`,
      });
      await c.store.rooms.setMembership("big", id, "member", now);
    }
    c.server.router.rooms.invalidate();
    const raw = await c.raw(aliceId);
    const reply = await raw.request(ControlType.ROOM, { op: "members", room: "big" }, 5000);
    expect(reply).toMatchObject({ op: "members", ok: true });
    const first = (reply.members as unknown[]).length;
    expect(reply.next).toBe(first); // the rest on the next page(s)
    expect((await alice.rooms.members("big")).members.length).toBe(701);
    expect(await alice.ping()).toBeGreaterThanOrEqual(0);
  });

  test("send '#room' with --strict (a member without keys) or --peer-key refuses (exit 9, 2) and sends nothing", async () => {
    await using sb = await sandbox();
    const server = await sb.serve();
    for (const name of ["alice", "bob"]) await sb.keygen(name, server.address);
    const as = (n: string) => ["--identity", `${n}.identity`];
    expect((await sb.run(["room", "create", "ops", "--public", ...as("alice")])).code).toBe(0);
    expect((await sb.run(["room", "join", "ops", ...as("bob")])).code).toBe(0);
    const strict = await sb.run([
      "send",
      "#ops",
      "the launch code is 1234",
      "--strict",
      ...as("alice"),
    ]);
    expect(strict.code).toBe(9);
    // bob never ran with E2E: no keys, so strict mode refuses the room (docs/E2E.md § Rooms).
    expect(strict.stderr).toMatch(/^backbone: #ops: bob published no E2E keys; nothing sent$/m);
    const pinned = await sb.run([
      "send",
      "#ops",
      "pinned?",
      "--peer-key",
      "SHA256:AlXT0QK+IKonU0GoQ41g7TvknKfC3S6gam/Imv31tY4",
      ...as("alice"),
    ]);
    // --peer-key pins one peer: for a room it is a usage error.
    expect(pinned.code).toBe(2);
    expect(pinned.stderr).toMatch(/--peer-key pins one peer; #ops is a room/);
    // Nothing reached bob: his listen prints only what is sent after.
    const bob = sb.start(["listen", ...as("bob")]);
    expect((await sb.run(["send", "#ops", "marker", ...as("alice")])).code).toBe(0);
    await bob.waitFor(/#ops alice( \(while you were away\))?: marker$/);
    expect(bob.lines.stdout).toHaveLength(1);
  });
});

describe("the monitor", () => {
  test("without a token it answers only to a loopback Host (no DNS rebinding)", () => {
    for (const ok of [
      "localhost",
      "localhost:8222",
      "127.0.0.1:9",
      "127.1.2.3",
      "[::1]:8222",
      "[::1]",
    ])
      expect(loopbackHost(ok)).toBe(true);
    for (const bad of [
      null,
      "",
      "attacker.example:8222",
      "127.0.0.1.evil.example",
      "localhost.evil",
    ])
      expect(loopbackHost(bad)).toBe(false);
  });
});

void decodeJson;
void decodeMessage;
void c2c;
