/**
 * The monitor's timing wrapper around the store must be the store in every other way:
 * a server with `--monitor` once lost the E2E key directory (`store.keys`), so every
 * KEYS request answered `unavailable` and end-to-end encryption failed.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type StoreOp, timedStore } from "../../src/monitor/timed-store.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test("every property and method of the store passes through; the listed calls are timed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "backbone-timed-"));
  dirs.push(dir);
  const inner = new SqliteStore(join(dir, "backbone.db"));
  const seen: StoreOp[] = [];
  const { store } = timedStore(inner, { observe: (op) => seen.push(op) });
  expect(store.keys).toBe(inner.keys); // the E2E key directory
  expect((store as SqliteStore).path).toBe(inner.path);
  const id = "00000000-0000-4000-8000-000000000001";
  await store.addClient({ id, name: "a", publicKey: new Uint8Array(32), fingerprint: "f" });
  expect((await store.getClient(id))?.name).toBe("a");
  expect(await store.keys?.countKeys(id)).toBeNull();
  expect(seen).toEqual(["getClient"]);
  store.close();
});
