/**
 * Resource attacks against a real server (docs/PROTOCOL.md § Limits): a response
 * dribbled a byte at a time, thousands of handshakes never answered from many /24s, a
 * flood of bogus responses, and a client sending as fast as it can. In each case the
 * server's work and holdings stay bounded and a legitimate client still gets through.
 *
 * Sources: Linux routes all of 127.0.0.0/8 to loopback, so a socket bound to
 * 127.A.B.C (`dialFrom`, test/helpers/flood.ts) reaches the server from the /24 `127.A.B.0`.
 */
import { describe, expect, test } from "bun:test";
import { connect } from "../../src/client/client.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import { idToBytes } from "../../src/ids.ts";
import { encodeFrame } from "../../src/wire/frame.ts";
import { FAST, MemoryLog, startCluster, until } from "../helpers/cluster.ts";
import { countDecrypts, type Dialed, dialFrom, RESPONSE_BYTES } from "../helpers/flood.ts";
import { c2c, FramedSocket } from "../helpers/raw.ts";

describe("slowloris", () => {
  test("a response dribbled one byte per 200 ms is closed at connection_timeout, before any RSA work", async () => {
    await using c = await startCluster({ connection_timeout: 1 });
    using decrypts = countDecrypts(c.server.key);
    const socks = await Promise.all(
      Array.from({ length: 20 }, () => FramedSocket.dial(c.server.port)),
    );
    await Promise.all(socks.map((s) => s.nextFrame()));
    const header = encodeFrame(new Uint8Array(RESPONSE_BYTES)).subarray(0, 2);
    for (const s of socks) s.write(header);
    let dribbled = 0;
    const end = performance.now() + 10_000; // 10 × connection_timeout
    while (!socks.every((s) => s.isClosed) && performance.now() < end) {
      await Bun.sleep(200);
      for (const s of socks) s.write(new Uint8Array([0]));
      dribbled++;
    }
    expect(socks.every((s) => s.isClosed)).toBe(true);
    expect(dribbled).toBeLessThan(RESPONSE_BYTES); // never got to finish the frame
    expect(socks.every((s) => s.framesReceived === 1)).toBe(true); // the challenge, nothing more
    expect(decrypts.count).toBe(0);
    expect(c.server.stats.authFailures).toBe(0);
    await until(() => c.server.connectionCount === 0, 3000, "every slot to be freed");
  });

  test("after login, a frame dribbled one byte per 200 ms is not a sign of life: STOP 'heartbeat timeout'", async () => {
    await using c = await startCluster(FAST); // heartbeat_timeout 0.6 s
    const raw = await c.raw("dribbler");
    raw.sendRaw(new Uint8Array([0x00, 0x40])); // a 64-byte frame, never finished
    const stopped = raw.expectStop(10_000);
    let dribbled = 0;
    while (!raw.sock.isClosed && dribbled < 40) {
      await Bun.sleep(200);
      raw.sendRaw(new Uint8Array([0]));
      dribbled++;
    }
    expect(await stopped).toEqual({ reason: "heartbeat timeout", before: [] });
    expect(dribbled).toBeLessThan(62);
    expect(c.server.router.online.size).toBe(0);
  });
});

describe("handshake floods", () => {
  test("2000 handshakes never answered, from 250 /24s: the server holds at most max_pending_handshakes, a real client still gets in", async () => {
    const cap = 256;
    const perPrefix = 8;
    // connection_timeout far above the test's length: only the two limits act here.
    await using c = await startCluster({
      max_pending_handshakes: cap,
      max_pending_per_prefix: perPrefix,
      connection_timeout: 60,
    });
    const port = c.server.port;
    const alice = await c.enroll("alice");

    // Rule 1: over max_pending_per_prefix, the NEWCOMER is refused (closed, no challenge).
    const crowd: Dialed[] = [];
    for (let i = 1; i <= perPrefix + 4; i++) crowd.push(await dialFrom(port, `127.20.0.${i}`));
    await until(() => crowd.filter((d) => d.closed).length === 4, 3000, "4 refusals");
    expect(crowd.slice(perPrefix).every((d) => d.closed && d.bytes === 0)).toBe(true);
    await until(() => crowd.slice(0, perPrefix).every((d) => d.bytes > 0), 3000, "8 challenges");
    expect(crowd.slice(0, perPrefix).some((d) => d.closed)).toBe(false);

    // Rule 2: over max_pending_handshakes, the OLDEST pending is dropped. 2000 more,
    // 8 per /24 (never over the per-prefix limit), in waves of 100.
    const flood: Dialed[] = [];
    let most = 0;
    let legit: Promise<void> | null = null;
    for (let wave = 0; wave < 20; wave++) {
      const dials = [];
      for (let i = 0; i < 100; i++) {
        const n = wave * 100 + i;
        dials.push(
          dialFrom(
            port,
            `127.${10 + (n % 5)}.${Math.floor(n / 5) % 50}.${1 + Math.floor(n / 250)}`,
          ),
        );
      }
      flood.push(...(await Promise.all(dials)));
      most = Math.max(most, c.server.connectionCount);
      // Halfway through, a legitimate client from 127.0.0.1 logs in and talks.
      if (wave === 10) {
        legit = connect({
          identity: alice,
          waitForServer: 15_000,
          backoff: { initialMs: 20, maxMs: 200 },
        }).then(async (cl) => {
          expect(await cl.ping()).toBeGreaterThanOrEqual(0);
          await cl.close();
        });
      }
    }
    await legit;
    most = Math.max(most, c.server.connectionCount);
    // What the server holds: at most `cap` pending (+ the legitimate client while it was on).
    expect(most).toBeLessThanOrEqual(cap + 1);
    await until(() => c.server.connectionCount <= cap, 3000, "the pending count to settle");
    // Every flood connection got its challenge (none was refused: 8 per /24) ...
    await until(() => flood.every((d) => d.bytes > 0 || d.closed), 5000, "challenges");
    const refusedAtOnce = flood.filter((d) => d.closed && d.bytes === 0).length;
    expect(refusedAtOnce).toBe(0);
    // ... and the oldest were dropped: the first crowd and the early flood are gone,
    // the newest are still waiting.
    await until(() => crowd.every((d) => d.closed), 3000, "the oldest to be dropped");
    expect(flood.slice(0, 1000).every((d) => d.closed)).toBe(true);
    expect(flood.slice(-100).every((d) => !d.closed)).toBe(true);
    const open = flood.filter((d) => !d.closed).length;
    expect(open).toBeLessThanOrEqual(cap);
    expect(open).toBeGreaterThan(cap / 2);
    console.log(
      `flood: dialed=${crowd.length + flood.length} refused_per_prefix=4 held_at_most=${most} cap=${cap} open_at_end=${open} refused=${c.server.stats.handshakesRefused}`,
    );
    for (const d of [...crowd, ...flood]) d.sock.destroy();
  });

  test("a failed handshake frees its place at once: a prefix is not locked out by its own failures", async () => {
    await using c = await startCluster({
      max_pending_per_prefix: 2,
      handshake_rate: 1000,
      handshake_burst: 1000,
    });
    const stranger = { ...(await c.enroll("stranger")), id: crypto.randomUUID() }; // not registered
    const bogus = new Uint8Array(RESPONSE_BYTES); // decrypts to nothing: OAEP fails
    const failures: ((challenge: Uint8Array) => Promise<Uint8Array>)[] = [
      async () => bogus,
      async () => new Uint8Array(7), // wrong size: refused before any work
      async (challenge) => {
        const hs = new ClientHandshake({
          id: idToBytes(stranger.id),
          key: stranger.key,
          pinnedServerKey: stranger.serverKey,
        });
        return hs.respond(challenge); // a real response from an unknown ID: STOP, then close
      },
    ];
    for (let round = 0; round < 3; round++) {
      for (const fail of failures) {
        await using s = await FramedSocket.dial(c.server.port);
        s.writeFrame(await fail(await s.nextFrame()));
        await s.waitClosed();
      }
    }
    // Nine failures from 127.0.0.0/24 with room for two pending: all freed their place.
    await until(() => c.server.connectionCount === 0, 3000, "the failed connections to go");
    const alice = await c.client("alice", { reconnect: false });
    expect(await alice.ping()).toBeGreaterThanOrEqual(0);
    expect(c.server.stats.handshakesRefused).toBe(0);
  });

  test("bogus responses of a valid length: handshake_rate bounds the RSA work per prefix, a client from another prefix gets in", async () => {
    const rate = 5;
    const burst = 10;
    const log = new MemoryLog();
    await using c = await startCluster({ handshake_rate: rate, handshake_burst: burst }, log);
    using decrypts = countDecrypts(c.server.key);
    const alice = await c.enroll("alice");
    const port = c.server.port;

    // Garbage, but shaped to cost an RSA decryption: the right length, the OAEP block
    // below the modulus (first byte 0).
    const bogus = crypto.getRandomValues(new Uint8Array(RESPONSE_BYTES));
    bogus[0] = 0;
    const frame = encodeFrame(bogus);
    let attempts = 0;
    let first = 0;
    let last = 0;
    let stop = false;
    const attacker = async (k: number) => {
      while (!stop && attempts < 3000) {
        const d = await dialFrom(port, `127.30.0.${1 + (k % 200)}`);
        await until(() => d.bytes > 0 || d.closed, 5000, "a challenge");
        if (!d.closed) {
          first ||= performance.now();
          d.sock.write(frame);
          attempts++;
          last = performance.now();
          await until(() => d.closed, 5000, "the server to close a bogus response");
        }
        d.sock.destroy();
      }
    };
    const attackers = Array.from({ length: 16 }, (_, k) => attacker(k));
    await until(() => attempts >= 50, 10_000, "the flood to start");
    // During the flood, a real client from 127.0.0.1 (its own /24, its own bucket).
    const client = await connect({ identity: alice, waitForServer: 10_000 });
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    await until(() => performance.now() - first > 2000, 10_000, "two seconds of flood");
    stop = true;
    await Promise.all(attackers);
    await client.close();

    const seconds = (last - first) / 1000;
    const fromFlood = log
      .find("auth failed")
      .filter((e) => String(e.fields.addr).startsWith("127.30."));
    const limited = log.find("handshake rate limited").length;
    expect(fromFlood.every((e) => e.fields.stage === "key-exchange")).toBe(true);
    // The bound: RSA decryptions for the prefix ≤ burst + rate × seconds (+1 for rounding).
    expect(fromFlood.length).toBeLessThanOrEqual(burst + Math.ceil(rate * seconds) + 1);
    expect(decrypts.count).toBeLessThanOrEqual(fromFlood.length + 1); // + alice's
    expect(limited).toBeGreaterThan(attempts / 2); // most responses never reached RSA
    console.log(
      `bogus: responses=${attempts} in ${seconds.toFixed(1)} s, rsa_decryptions=${decrypts.count} (bound ${burst}+${rate}/s), rate_limited=${limited}`,
    );
  });
});

describe("a client sending as fast as it can", () => {
  test("others' round trips still complete while the flood runs, and the flood loses nothing", async () => {
    await using c = await startCluster({ max_message_size: 65498 });
    const flooder = await c.raw("flooder");
    const sink = await c.client("sink");
    const alice = await c.client("alice");
    const bob = await c.client("bob");
    let sunk = 0;
    sink.on("message", () => sunk++);
    bob.on("message", (m) => bob.send(m.from, m.data)); // echo
    const echoes: string[] = [];
    alice.on("message", (m) => echoes.push(new TextDecoder().decode(m.data)));

    const message = c2c(0x00, sink.id, new Uint8Array(1000));
    let sent = 0;
    let running = true;
    const flood = (async () => {
      const end = performance.now() + 20_000;
      while (running && sent < 500_000 && performance.now() < end) {
        // As fast as the server takes them: at most ~2 MB ahead of what the sink got.
        if (sent - sunk > 2000) {
          await Bun.sleep(1);
          continue;
        }
        for (let i = 0; i < 200; i++) flooder.send(message);
        sent += 200;
        await Bun.sleep(0);
      }
    })();
    await until(() => sunk > 2000, 10_000, "the flood to be under way");
    const before = sunk;
    for (let round = 0; round < 20; round++) {
      alice.send(bob.id, `canary ${round}`);
      await until(() => echoes.length === round + 1, 10_000, `canary ${round} round trip`);
      expect(running).toBe(true);
    }
    expect(echoes).toEqual(Array.from({ length: 20 }, (_, i) => `canary ${i}`));
    expect(sunk - before).toBeGreaterThan(500); // the flood kept going all along
    running = false;
    await flood;
    await until(() => sunk === sent, 10_000, "the sink to get every flooded message");
    expect(c.server.stats.slowConsumers).toBe(0);
    expect(flooder.sock.isClosed).toBe(false);
    console.log(`fast sender: flooded=${sent} delivered=${sunk} canaries=20`);
  });
});
