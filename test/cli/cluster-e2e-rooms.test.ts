/**
 * End-to-end encrypted rooms in cluster mode (docs/CLUSTER.md, docs/E2E.md § Rooms):
 * two `serve` processes of the compiled binary on one real redis-server. A member on
 * the other node decrypts every message in order; a member offline gets the stored
 * ciphertexts at its login on the other node; Redis never holds the plaintext.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import IORedis from "ioredis";
import { loadIdentity } from "../../src/client/identity.ts";
import type { IncomingMessage } from "../../src/client/types.ts";
import { connectE2E } from "../../src/e2e/connect.ts";
import type { ServerInfo } from "../helpers/binary.ts";
import { cleanupAll } from "../helpers/binary.ts";
import { until } from "../helpers/cluster.ts";
import { type Nodes, twoNodes } from "../helpers/two-nodes.ts";

afterEach(cleanupAll);
setDefaultTimeout(60_000);

async function member(t: Nodes, name: string, node: ServerInfo) {
  const identity = await loadIdentity(join(t.sb.dir, `${name}.identity`));
  const { client, e2e } = await connectE2E({
    identity: { ...identity, server: node.address },
    reconnect: false,
    e2e: { stateDir: join(t.sb.dir, `e2e-${name}`) },
  });
  const got: IncomingMessage[] = [];
  client.on("message", (m) => got.push(m));
  await e2e.keysSynced;
  return {
    client,
    e2e,
    got,
    text: () => got.map((m) => new TextDecoder().decode(m.data)),
    async close() {
      await client.close();
      e2e.close();
    },
  };
}

/** Every value held in Redis, as bytes (streams, hashes, strings, sets, lists, sorted sets). */
async function everything(url: string): Promise<Buffer> {
  const redis = new IORedis(url);
  const parts: Buffer[] = [];
  try {
    for (const key of await redis.keysBuffer("*")) {
      const type = await redis.type(key);
      if (type === "stream")
        for (const [, fields] of await redis.xrangeBuffer(key, "-", "+")) parts.push(...fields);
      else if (type === "hash") parts.push(...(await redis.hvalsBuffer(key)));
      else if (type === "string") parts.push((await redis.getBuffer(key)) ?? Buffer.alloc(0));
      else if (type === "set") parts.push(...(await redis.smembersBuffer(key)));
      else if (type === "list") parts.push(...(await redis.lrangeBuffer(key, 0, -1)));
      else if (type === "zset") parts.push(...(await redis.zrangeBuffer(key, "0", "-1")));
    }
  } finally {
    redis.disconnect();
  }
  return Buffer.concat(parts);
}

describe("E2E rooms on two nodes", () => {
  test("a member on the other node decrypts in order; an offline member gets the stored ciphertexts on the other node; Redis holds no plaintext", async () => {
    const t = await twoNodes(["alice", "bob", "carol"]);
    try {
      const alice = await member(t, "alice", t.a);
      const bob = await member(t, "bob", t.b);
      const carol = await member(t, "carol", t.a);
      await alice.client.rooms.create("ops", { public: true });
      await bob.client.rooms.join("ops");
      await carol.client.rooms.join("ops");
      await carol.close(); // keys published; offline now
      await until(
        async () => (await alice.client.rooms.members("ops")).members.length === 3,
        5_000,
        "node A to see the joins",
      );
      const secrets = Array.from(
        { length: 20 },
        (_, i) => `CLUSTERSECRET-${i}-${"zk".repeat(i % 3)}`,
      );
      for (const s of secrets) expect((await alice.e2e.sendRoom("ops", s)).e2e).toBe(true);
      await until(() => bob.got.length === 20, 10_000, "bob on node B");
      expect(bob.text()).toEqual(secrets);
      expect(bob.got.every((m) => m.e2e && m.room === "ops" && m.kind === "room")).toBe(true);
      await alice.client.ping();
      const held = await everything(t.redis.url);
      expect(held.length).toBeGreaterThan(0);
      for (const s of secrets)
        for (let i = 0; i + 8 <= s.length; i += 4)
          expect(held.includes(Buffer.from(s.slice(i, i + 8)))).toBe(false);
      // The positive control: a plaintext room message held for carol is there in clear.
      alice.client.send("#ops", "CLUSTERPLAIN-CONTROL");
      await alice.client.ping();
      await until(async () => (await everything(t.redis.url)).includes("CLUSTERPLAIN-CONTROL"));
      // carol logs in on node B: every stored ciphertext, decrypted, once, in order.
      const carolB = await member(t, "carol", t.b);
      await until(() => carolB.got.length === 21, 10_000, "carol's stored room messages");
      expect(carolB.text()).toEqual([...secrets, "CLUSTERPLAIN-CONTROL"]);
      expect(carolB.got.slice(0, 20).every((m) => m.e2e && m.stored && m.room === "ops")).toBe(
        true,
      );
      expect(carolB.got[20]).toMatchObject({ e2e: false, room: "ops" });
      for (const m of [alice, bob, carolB]) await m.close();
    } finally {
      await t.close();
    }
  });
});
