/**
 * Helpers to capture a thrown error so a test can check its class and its fields
 * (`code`, `stage`) together. Each fails the test when nothing is thrown.
 */
import { expect } from "bun:test";

/** The error `fn` throws; fails when it returns normally. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw, but the call returned");
}

/** The error `promise` rejects with; fails when it resolves. */
export async function rejected(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection, but the promise resolved");
}

/** Asserts `err` is an instance of `cls` whose fields include `fields`. */
export function expectError(
  err: unknown,
  cls: abstract new (...args: never[]) => Error,
  fields: Record<string, unknown> = {},
): void {
  expect(err).toBeInstanceOf(cls);
  expect(err).toMatchObject(fields);
}
