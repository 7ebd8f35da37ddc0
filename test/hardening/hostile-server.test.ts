/**
 * A malicious server cannot upset the client through CONFIG (docs/PROTOCOL.md
 * § Connection settings): every setting is bounded by the client, and a value out of
 * range is a protocol error — the first CONFIG fails the handshake, a later one closes
 * the connection — with STOP `protocol error` sent to the server either way. The input
 * that showed the fault: `heartbeat_interval` 1e10, which overflowed the runtime's
 * timers (fired every 1 ms, printed `TimeoutOverflowWarning` on the user's terminal).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, connect } from "../../src/client/client.ts";
import { formatIdentity, type Identity } from "../../src/client/identity.ts";
import { fingerprint } from "../../src/crypto/primitives.ts";
import { generateRsaKeyPair, RsaPrivateKey } from "../../src/crypto/rsa.ts";
import { HandshakeError, WireError } from "../../src/errors.ts";
import { newClientId } from "../../src/ids.ts";
import {
  applyConnectionSettings,
  CONNECTION_SETTING_RANGES,
  DEFAULT_CONNECTION_SETTINGS,
} from "../../src/wire/settings.ts";
import { cleanupAll, sandbox } from "../helpers/binary.ts";
import { until } from "../helpers/cluster.ts";
import { FakeServer } from "../helpers/fake-server.ts";

let serverKey: RsaPrivateKey;
let clientKey: RsaPrivateKey;
let clientPkcs8: Uint8Array;
const warnings: string[] = [];
const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);

beforeAll(async () => {
  const [s, c] = await Promise.all([generateRsaKeyPair(2048), generateRsaKeyPair(2048)]);
  serverKey = await RsaPrivateKey.fromPkcs8(s.privatePkcs8);
  clientKey = await RsaPrivateKey.fromPkcs8(c.privatePkcs8);
  clientPkcs8 = c.privatePkcs8;
  process.on("warning", onWarning);
});
afterAll(() => {
  process.off("warning", onWarning);
});
afterEach(cleanupAll);

const HUGE = { heartbeat_interval: 1e10, heartbeat_timeout: 3e10 };

async function fake(config: Record<string, unknown>, later?: Record<string, unknown>[]) {
  const id = newClientId();
  const server = await FakeServer.start({
    key: serverKey,
    clients: new Map([[id, clientKey.publicKey]]),
    config,
    ...(later ? { later } : {}),
  });
  const identity: Identity = {
    id,
    name: "victim",
    server: server.address,
    serverKey: serverKey.publicKey,
    key: clientKey,
  };
  return { server, identity };
}

describe("the client bounds every CONFIG setting", () => {
  test("each range's ends are accepted; just outside, and non-numbers, are refused", () => {
    for (const [key, r] of Object.entries(CONNECTION_SETTING_RANGES)) {
      const base = { ...DEFAULT_CONNECTION_SETTINGS, heartbeat_interval: 0.05 };
      const k = key as keyof typeof CONNECTION_SETTING_RANGES;
      const fits = (v: number) =>
        k === "heartbeat_interval" ? { [k]: v, heartbeat_timeout: 10_800 } : { [k]: v };
      for (const v of [r.min, r.max]) {
        expect(applyConnectionSettings(base, fits(v))[k]).toBe(v);
      }
      const step = r.integer ? 1 : r.min / 2;
      for (const v of [r.min - step, r.max + step, 1e10, -1, 0, "15", null, true, [], {}]) {
        expect(() => applyConnectionSettings(base, { [k]: v }), `${k} = ${v}`).toThrow(WireError);
      }
      if (r.integer) expect(() => applyConnectionSettings(base, { [k]: 100.5 })).toThrow(WireError);
    }
    // Unknown keys are ignored, missing keys keep their value.
    expect(applyConnectionSettings(DEFAULT_CONNECTION_SETTINGS, { later_key: 1e99 })).toEqual(
      DEFAULT_CONNECTION_SETTINGS,
    );
    // heartbeat_timeout must stay longer than heartbeat_interval.
    expect(() =>
      applyConnectionSettings(DEFAULT_CONNECTION_SETTINGS, { heartbeat_timeout: 15 }),
    ).toThrow(/heartbeat_timeout 15 is not longer than heartbeat_interval 15/);
  });

  test("first CONFIG with heartbeat_interval 1e10: the handshake fails, STOP protocol error, no timer overflow", async () => {
    const { server, identity } = await fake(HUGE);
    await using _ = server;
    const before = warnings.length;
    const err = await connect({ identity, reconnect: false }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HandshakeError);
    expect((err as HandshakeError).code).toBe("BAD_CONFIG");
    expect((err as Error).message).toMatch(/heartbeat_interval 10000000000 is not a number from/);
    await until(() => server.stops.length > 0, 5000, "the client's STOP");
    expect(server.stops).toEqual(["protocol error"]);
    await until(() => server.closed > 0, 5000, "the close");
    await Bun.sleep(50); // any timer that overflowed would have fired (and warned) by now
    expect(warnings.slice(before)).toEqual([]);
  });

  test("a later CONFIG out of range: STOP protocol error and the connection closes", async () => {
    const { server, identity } = await fake({ heartbeat_interval: 0.2, heartbeat_timeout: 5 }, [
      HUGE,
    ]);
    await using _ = server;
    const before = warnings.length;
    let client: Client | undefined;
    try {
      client = await connect({ identity, reconnect: false });
      const closed = new Promise((r) => client?.once("close", r));
      // Its first message (ACK 0, sent with the response) brings the hostile CONFIG.
      await until(() => server.stops.length > 0, 5000, "the client's STOP");
      expect(server.stops).toEqual(["protocol error"]);
      await closed;
      expect(client.settings.heartbeat_interval).toBe(0.2);
      expect(warnings.slice(before)).toEqual([]);
    } finally {
      await client?.close();
    }
  });
});

test("the CLI against a hostile server: one line, a non-zero exit, no TimeoutOverflowWarning", async () => {
  await using sb = await sandbox();
  const { server, identity } = await fake(HUGE);
  await using _ = server;
  const file = join(sb.dir, "victim.identity");
  writeFileSync(
    file,
    formatIdentity({
      id: identity.id,
      name: identity.name,
      server: server.address,
      serverSpki: serverKey.publicKey.spki,
      serverFingerprint: serverKey.publicKey.fingerprint,
      clientFingerprint: fingerprint(clientKey.publicKey.spki),
      privatePkcs8: clientPkcs8,
    }),
    { mode: 0o600 },
  );
  const r = await sb.run(["status", "--identity", file]);
  expect(r.stderr).not.toMatch(/TimeoutOverflowWarning/);
  expect(r.code).not.toBe(0);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(
    /^backbone: .*heartbeat_interval 10000000000 is not a number from 0\.05 to 3600 s/,
  );
  expect(server.stops).toEqual(["protocol error"]);
});

test("the Python client written from PROTOCOL.md bounds CONFIG too", async () => {
  const python = process.env.BACKBONE_PYTHON ?? "python3";
  const has = Bun.spawnSync([python, "-c", "import cryptography"]).exitCode === 0;
  if (!has) return; // test/interop.test.ts reports the missing package
  await using sb = await sandbox();
  const { server, identity } = await fake(HUGE);
  await using _ = server;
  const file = join(sb.dir, "py.identity");
  writeFileSync(
    file,
    formatIdentity({
      id: identity.id,
      name: identity.name,
      server: server.address,
      serverSpki: serverKey.publicKey.spki,
      serverFingerprint: serverKey.publicKey.fingerprint,
      clientFingerprint: fingerprint(clientKey.publicKey.spki),
      privatePkcs8: clientPkcs8,
    }),
    { mode: 0o600 },
  );
  const client = join(import.meta.dir, "..", "interop", "backbone_client.py");
  const run = Bun.spawn([python, client, file], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out] = await Promise.all([run.exited, new Response(run.stdout).text()]);
  expect(code).not.toBe(0);
  expect(out).toMatch(/^ERROR protocol error: CONFIG heartbeat_interval 10000000000/m);
  await until(() => server.stops.length > 0, 5000, "the Python client's STOP");
  expect(server.stops).toEqual(["protocol error"]);
});
