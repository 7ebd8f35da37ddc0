/**
 * Cluster mode (docs/CLUSTER.md): two `serve` processes of the compiled binary on one
 * real redis-server, each with its own data directory holding the same server key.
 * Clients are library clients on real TCP, each pointed at one node.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import IORedis from "ioredis";
import type { Notice } from "../../src/client/types.ts";
import { cleanupAll } from "../helpers/binary.ts";
import { inbox, notices, until } from "../helpers/cluster.ts";
import { collect, type Got, isOnline, twoNodes } from "../helpers/two-nodes.ts";

afterEach(cleanupAll);

/** The Python client written from docs/PROTOCOL.md alone (test/interop.test.ts). */
const PYTHON = process.env.BACKBONE_PYTHON ?? "python3";
const PY_CLIENT = join(import.meta.dir, "..", "interop", "backbone_client.py");
const hasPython = (() => {
  try {
    const opts = { stdout: "ignore", stderr: "ignore" } as const;
    return Bun.spawnSync([PYTHON, "-c", "import cryptography"], opts).exitCode === 0;
  } catch {
    return false;
  }
})();
setDefaultTimeout(60_000);

function texts(got: { text: string }[]): string[] {
  return got.map((m) => m.text);
}

const N = 200;
const numbered = (prefix: string, n = N) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe("two nodes on one Redis", () => {
  test("clients on different nodes chat both ways in order; a broadcast reaches every node", async () => {
    const t = await twoNodes(["alice", "bob", "carol"]);
    try {
      const alice = await t.client("alice", t.a);
      const bob = await t.client("bob", t.b);
      const carol = await t.client("carol", t.b);
      const [toAlice, toBob, toCarol] = [inbox(alice), inbox(bob), inbox(carol)];
      const [nA, nB] = [notices(alice), notices(bob)];
      // Both see the other online across nodes, with the sessions of the whole cluster.
      await until(async () => (await isOnline(alice, "bob")) === true);
      for (const m of numbered("a")) alice.send(t.ids.bob as string, m);
      for (const m of numbered("b")) bob.send(t.ids.alice as string, m);
      await until(() => toBob.length >= N && toAlice.length >= N, 15_000, "both directions");
      expect(texts(toBob)).toEqual(numbered("a"));
      expect(texts(toAlice)).toEqual(numbered("b"));
      expect(toBob.every((m) => m.from === t.ids.alice && m.kind === "direct")).toBe(true);

      // A broadcast keeps its place among the sender's direct messages.
      alice.send(t.ids.bob as string, "before");
      alice.broadcast("to everyone");
      alice.send(t.ids.bob as string, "after");
      await until(() => toBob.length >= N + 3 && toCarol.length > 0, 10_000, "node B");
      expect(toBob.slice(N).map((m) => [m.text, m.kind])).toEqual([
        ["before", "direct"],
        ["to everyone", "broadcast"],
        ["after", "direct"],
      ]);
      expect(texts(toCarol)).toEqual(["to everyone"]);
      expect(toAlice.length).toBe(N); // not to the sender
      expect([...nA, ...nB]).toEqual([]);

      // A session of bob on node A ends: bob stays online (his session on node B), also
      // for `backbone clients`, which reads the store.
      const bobOnA = await t.client("bob", t.a);
      await bobOnA.close();
      await Bun.sleep(300); // the presence write is gathered for 50 ms (nothing to wait on)
      expect(await isOnline(alice, "bob")).toBe(true);
      const listed = await t.sb.run(["clients", "--json", "--store", t.redis.url]);
      const rows = listed.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(rows.find((r) => r.name === "bob")?.online).toBe(true);

      // SERVER_STATUS: this node's figures and the cluster's.
      const s = (await alice.serverStatus()) as unknown as Record<string, number>;
      expect(s.clients_online).toBe(1);
      expect(s.cluster_nodes).toBe(2);
      expect(s.cluster_clients_online).toBe(3);
    } finally {
      await t.close();
    }
  });

  test("a room message reaches members on the other node in order, and is held for the offline one", async () => {
    const t = await twoNodes(["alice", "bob", "carol"]);
    try {
      const alice = await t.client("alice", t.a);
      const bob = await t.client("bob", t.b);
      await alice.rooms.create("ops", { public: true });
      const heard: string[] = [];
      alice.on("room", (e) => heard.push(`${e.event} ${e.member.name}`));
      await bob.rooms.join("ops");
      // The owner on node A hears of the join on node B.
      await until(() => heard.includes("joined bob"), 5_000, "the joined event on node A");
      const carol = await t.client("carol", t.a);
      await carol.rooms.join("ops");
      await carol.close();
      // Node A knows of bob's join on node B (told at once, not by its 250 ms poll).
      await until(
        async () => (await alice.rooms.members("ops")).members.length === 3,
        1_000,
        "node A to see bob's join",
      );
      const [toBob, nA] = [inbox(bob), notices(alice)];
      const sent = numbered("r", 50);
      for (const m of sent) alice.send("#ops", m);
      alice.send(t.ids.bob as string, "after the room");
      await until(() => toBob.length === 51, 10_000, "the room's messages on node B");
      expect(texts(toBob)).toEqual([...sent, "after the room"]);
      expect(toBob.slice(0, 50).every((m) => m.kind === "room" && m.from === t.ids.alice)).toBe(
        true,
      );
      const carolB = await t.client("carol", t.b);
      const toCarol = inbox(carolB);
      await until(() => toCarol.length === 50, 10_000, "carol's held room messages");
      expect(texts(toCarol)).toEqual(sent);
      expect(toCarol.every((m) => m.kind === "room")).toBe(true);
      expect(nA).toEqual([]);
    } finally {
      await t.close();
    }
  });

  test("a message stored through node A is delivered at login on node B; unknown is told", async () => {
    const t = await twoNodes(["alice", "bob"]);
    try {
      const alice = await t.client("alice", t.a);
      const nA = notices(alice);
      alice.send(t.ids.bob as string, "while away");
      alice.send("00000000-0000-4000-8000-000000000000", "to nobody");
      await until(() => nA.length === 2);
      expect(nA.map((n: Notice) => n.status)).toEqual(["queued", "unknown"]);
      const bob = await t.client("bob", t.b);
      const got = inbox(bob);
      await until(() => got.length === 1);
      expect(got[0]).toMatchObject({ text: "while away", from: t.ids.alice, kind: "stored" });
    } finally {
      await t.close();
    }
  });

  test("a stored backlog is delivered exactly once with receiving sessions on both nodes", async () => {
    const t = await twoNodes(["alice", "bob"]);
    try {
      const alice = await t.client("alice", t.a);
      const nA = notices(alice);
      for (const m of numbered("s", 300)) alice.send(t.ids.bob as string, m);
      await until(() => nA.length === 300, 15_000, "300 queued");
      expect(nA.every((n) => n.status === "queued")).toBe(true);
      // Two sessions of bob, one per node, log in at once.
      // (Collected from the first message on: one connect may resolve before the other.)
      const gotA: Got = [];
      const gotB: Got = [];
      await Promise.all([
        t.client("bob", t.a, { incoming: collect(gotA) }),
        t.client("bob", t.b, { incoming: collect(gotB) }),
      ]);
      await until(() => gotA.length + gotB.length >= 300, 15_000, "the backlog");
      // Then a live message reaches both: everything stored came before it.
      alice.send(t.ids.bob as string, "live");
      await until(() => gotA.at(-1)?.text === "live" && gotB.at(-1)?.text === "live");
      const stored = [...gotA, ...gotB].filter((m) => m.kind === "stored");
      expect(stored.map((m) => m.text).sort()).toEqual(numbered("s", 300).sort());
      // Each session's share in order, and before any live message.
      for (const got of [gotA, gotB]) {
        const lastStored = got.map((m) => m.kind).lastIndexOf("stored");
        expect(got.slice(0, lastStored + 1).every((m) => m.kind === "stored")).toBe(true);
        const mine = got.filter((m) => m.kind === "stored").map((m) => Number(m.text.slice(1)));
        expect(mine).toEqual([...mine].sort((x, y) => x - y));
      }
    } finally {
      await t.close();
    }
  });

  test("same-tag replacement across nodes; revoke stops the session on the other node", async () => {
    const t = await twoNodes(["alice", "bob"]);
    try {
      const tag = new Uint8Array(16).fill(7);
      const first = await t.client("bob", t.a, { session: { tag } });
      let ended: string | undefined;
      first.on("disconnect", (d) => {
        ended = d.reason;
      });
      const second = await t.client("bob", t.b, { session: { tag } });
      await until(() => ended !== undefined, 5_000, "the old session to end");
      expect(ended).toBe("replaced by a new connection");
      expect(second.connected).toBe(true);

      // Logins with one tag on both nodes at the same instant: the later one stays.
      for (let round = 0; round < 5; round++) {
        const same = new Uint8Array(16).fill(round + 10);
        const ends: string[] = [];
        const pair = await Promise.all(
          [t.a, t.b].map(async (node) => {
            const c = await t.client("bob", node, { session: { tag: same } });
            c.on("disconnect", (d) => ends.push(d.reason));
            return c;
          }),
        );
        await until(() => ends.length > 0, 5_000, `round ${round}: one replaced`);
        // A second replacement would follow within milliseconds: give it time to come.
        await Bun.sleep(300);
        expect({ round, ends, up: pair.filter((c) => c.connected).length }).toEqual({
          round,
          ends: ["replaced by a new connection"],
          up: 1,
        });
      }

      const alice = await t.client("alice", t.b);
      const gone = new Promise<string>((r) => alice.on("disconnect", (d) => r(d.reason)));
      // Revoked through the store (node A's data directory), alice sits on node B.
      const r = await t.sb.run(["revoke", "alice", "--store", t.redis.url]);
      expect(r.code).toBe(0);
      expect(await gone).toMatch(/revoked/);
    } finally {
      await t.close();
    }
  });

  test("kill -9 of a node: its clients show offline within the lease; messages meanwhile are held", async () => {
    const t = await twoNodes(["alice", "bob"]);
    try {
      const alice = await t.client("alice", t.a);
      const nA = notices(alice);
      await t.client("bob", t.b);
      await until(async () => (await isOnline(alice, "bob")) === true);
      t.b.proc.kill("SIGKILL");
      await t.b.proc.exit();
      // Sent while node B is dead but still in presence: into its mailbox, held when reaped.
      alice.send(t.ids.bob as string, "into the void 1");
      await until(async () => (await isOnline(alice, "bob")) === false, 20_000, "bob offline");
      alice.send(t.ids.bob as string, "into the void 2");
      // `backbone clients` (the store's flag) agrees once node B is reaped.
      await until(
        async () => {
          const r = await t.sb.run(["clients", "--json", "--store", t.redis.url]);
          const rows = r.stdout
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));
          return rows.find((row) => row.name === "bob")?.online === false;
        },
        10_000,
        "clients to show bob offline",
      );
      await until(() => nA.length === 1);
      expect(nA[0]?.status).toBe("queued");
      const bob = await t.client("bob", t.a);
      const got = inbox(bob);
      await until(() => got.length === 2, 10_000, "both held messages");
      expect(texts(got)).toEqual(["into the void 1", "into the void 2"]);
    } finally {
      await t.close();
    }
  });

  test.skipIf(!hasPython)(
    "the Python interop client on node B talks with a client on node A",
    async () => {
      const t = await twoNodes(["alice", "bob"]);
      const py = Bun.spawn([PYTHON, PY_CLIENT, join(t.sb.dir, "bob.identity"), t.b.address], {
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
      });
      try {
        const lines: string[] = [];
        void (async () => {
          const decoder = new TextDecoder();
          let rest = "";
          for await (const chunk of py.stdout) {
            rest += decoder.decode(chunk, { stream: true });
            const parts = rest.split("\n");
            rest = parts.pop() ?? "";
            lines.push(...parts);
          }
        })();
        await until(() => lines.some((l) => l.startsWith("CONFIG ")), 10_000, "python logged in");
        const alice = await t.client("alice", t.a);
        const got = inbox(alice);
        await until(async () => (await isOnline(alice, "bob")) === true);
        for (let i = 0; i < 5; i++) alice.send(t.ids.bob as string, `to python ${i}`);
        await until(() => lines.filter((l) => l.startsWith("MSG ")).length === 5, 10_000, "MSG");
        expect(lines.filter((l) => l.startsWith("MSG "))).toEqual(
          Array.from({ length: 5 }, (_, i) => `MSG direct ${t.ids.alice} to python ${i}`),
        );
        py.stdin.write(`send ${t.ids.alice} from python\n`);
        py.stdin.flush();
        await until(() => got.length === 1, 10_000, "python's message on node A");
        expect(got[0]).toMatchObject({ text: "from python", from: t.ids.bob, kind: "direct" });
      } finally {
        py.kill();
        await py.exited;
        await t.close();
      }
    },
  );

  test("Redis stopped: live delivery on one node goes on, offline sends are rejected; all resumes", async () => {
    const t = await twoNodes(["alice", "bob", "carol"], {
      appendonly: "yes",
      appendfsync: "always",
    });
    try {
      const alice = await t.client("alice", t.a);
      const bob = await t.client("bob", t.a);
      const [toBob, nA] = [inbox(bob), notices(alice)];
      await t.redis.stop();
      for (let i = 0; i < 5; i++) alice.send(t.ids.bob as string, `while Redis is away ${i}`);
      alice.send(t.ids.carol as string, "to an offline client");
      await until(() => toBob.length === 5 && nA.length === 1, 15_000, "local delivery, NOTICE");
      expect(texts(toBob)).toEqual(numbered("while Redis is away ", 5));
      expect(nA[0]).toMatchObject({ status: "rejected", reason: "storage failure" });
      await t.redis.start();
      // Back: an offline send is held again (tried until the nodes have reconnected), and
      // carol gets it on node B.
      const deadline = performance.now() + 20_000;
      for (;;) {
        const before = nA.length;
        alice.send(t.ids.carol as string, "after Redis is back");
        await until(() => nA.length > before, 10_000, "a NOTICE");
        if (nA.at(-1)?.status === "queued") break;
        if (performance.now() > deadline) throw new Error("no queued NOTICE after Redis returned");
        await Bun.sleep(100);
      }
      const carol = await t.client("carol", t.b);
      const got = inbox(carol);
      await until(() => got.length > 0, 10_000, "carol's held message");
      expect(got[0]).toMatchObject({ text: "after Redis is back", kind: "stored" });
    } finally {
      await t.close();
    }
  });

  test("kill -9 of Redis (appendonly, fsync always): every message answered queued survives, delivered in order on the other node", async () => {
    const t = await twoNodes(["alice", "carol"], { appendonly: "yes", appendfsync: "always" });
    try {
      const alice = await t.client("alice", t.a);
      const nA = notices(alice);
      for (const m of numbered("held ", 20)) alice.send(t.ids.carol as string, m);
      await until(() => nA.length === 20, 10_000, "20 NOTICEs");
      expect(nA.every((n) => n.status === "queued")).toBe(true);
      await t.redis.stop(); // SIGKILL
      await t.redis.start(); // same directory: the append-only file
      // The nodes resume by themselves; carol logs in on node B.
      const got: Got = [];
      await until(
        async () => {
          try {
            await t.client("carol", t.b, { incoming: collect(got) });
            return true;
          } catch {
            return false; // the node is still reconnecting to Redis
          }
        },
        20_000,
        "carol's login on node B",
      );
      await until(() => got.length === 20, 10_000, "the 20 held messages");
      expect(texts(got)).toEqual(numbered("held ", 20));
      expect(got.every((m) => m.kind === "stored")).toBe(true);
    } finally {
      await t.close();
    }
  });

  test("between two clients on one node no message goes through Redis, until the recipient logs in elsewhere too", async () => {
    const t = await twoNodes(["alice", "bob"]);
    const redis = new IORedis(t.redis.url);
    const evals = async () =>
      Number(/cmdstat_eval:calls=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? 0);
    try {
      const alice = await t.client("alice", t.a);
      const bob = await t.client("bob", t.a);
      const toBob = inbox(bob);
      // Settled: both known to node A (one message through, answered).
      alice.send(t.ids.bob as string, "hello");
      await until(() => toBob.length === 1);
      const before = await evals();
      for (const m of numbered("l", 100)) alice.send(t.ids.bob as string, m);
      await until(() => toBob.length === 101, 10_000, "100 local messages");
      expect(texts(toBob.slice(1))).toEqual(numbered("l", 100));
      // ROUTE is the one EVAL a message costs; a stray EVAL of another script may fall in.
      expect((await evals()) - before).toBeLessThan(10);

      // Bob logs in on node B as well: node A learns of it and routes through Redis.
      const bobB = await t.client("bob", t.b);
      const onB = inbox(bobB);
      await until(
        () => {
          alice.send(t.ids.bob as string, "anyone on B?");
          return onB.length > 0;
        },
        5_000,
        "a message on node B",
      );
      const n = toBob.length;
      for (const m of numbered("both", 20)) alice.send(t.ids.bob as string, m);
      // Wait for the last one on both sessions (late "anyone on B?" copies still arrive).
      await until(
        () => texts(onB).includes("both19") && texts(toBob.slice(n)).includes("both19"),
        10_000,
        "both sessions",
      );
      expect(texts(onB.slice(-20))).toEqual(numbered("both", 20));
      expect(texts(toBob.slice(-20))).toEqual(numbered("both", 20));
    } finally {
      redis.disconnect();
      await t.close();
    }
  });

  test("kill -9 of a node while a client sends: every message answered queued is delivered", async () => {
    const t = await twoNodes(["alice", "carol"], { appendonly: "yes", appendfsync: "always" });
    try {
      const alice = await t.client("alice", t.a);
      const nA = notices(alice);
      let sent = 0;
      const sending = (async () => {
        while (sent < 900 && alice.connected) {
          for (let i = 0; i < 20; i++) alice.send(t.ids.carol as string, `m${sent++}`);
          await Bun.sleep(2);
        }
      })();
      await until(() => nA.length >= 100, 10_000, "100 queued");
      t.a.proc.kill("SIGKILL");
      await sending.catch(() => {});
      const queued = nA.filter((n) => n.status === "queued").length;
      expect(nA.every((n) => n.status === "queued")).toBe(true);
      // carol logs in on node B: each message acknowledged as queued is there, in order
      // (NOTICEs come in the order of the messages, so they are the first `queued`).
      const got: Got = [];
      await t.client("carol", t.b, { incoming: collect(got) });
      await until(() => got.length >= queued, 10_000, `${queued} held messages`);
      expect(texts(got.slice(0, queued))).toEqual(numbered("m", queued));
    } finally {
      await t.close();
    }
  });

  test("a session that logs in on node B gets every message sent after its login, also those node A was delivering locally", async () => {
    const t = await twoNodes(["alice", "bob"]);
    try {
      const alice = await t.client("alice", t.a);
      await t.client("bob", t.a); // bob's first session, next to alice: local delivery
      let sent = 0;
      let stop = false;
      const sending = (async () => {
        while (!stop && sent < 5_000) {
          alice.send(t.ids.bob as string, `m${sent++}`);
          await Bun.sleep(1);
        }
      })();
      await until(() => sent >= 50, 5_000, "a stream");
      const got: Got = [];
      await t.client("bob", t.b, { incoming: collect(got) });
      const afterLogin = sent; // sent once the login on node B was complete
      await until(() => sent >= afterLogin + 100, 10_000, "100 more");
      stop = true;
      await sending;
      await until(() => got.some((m) => m.text === `m${sent - 1}`), 10_000, "the last one");
      const order = got.map((m) => Number(m.text.slice(1)));
      expect(order).toEqual([...order].sort((x, y) => x - y)); // the sender's order
      const indices = new Set(order);
      const missing = [];
      for (let i = afterLogin; i < sent; i++) if (!indices.has(i)) missing.push(i);
      expect(missing).toEqual([]);
    } finally {
      await t.close();
    }
  });
});
