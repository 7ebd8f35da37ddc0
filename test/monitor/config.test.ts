/** The monitor's address parsing, the loopback rule and the token check (pure functions). */
import { expect, test } from "bun:test";
import {
  isLoopback,
  monitorConfig,
  parseMonitorAddress,
  tokenCheck,
} from "../../src/monitor/config.ts";

test("addresses: HOST:PORT, [IPv6]:PORT, a bare port on 127.0.0.1; anything else refused", () => {
  expect(parseMonitorAddress("127.0.0.1:8222")).toEqual({ host: "127.0.0.1", port: 8222 });
  expect(parseMonitorAddress("[::1]:8222")).toEqual({ host: "::1", port: 8222 });
  expect(parseMonitorAddress("8222")).toEqual({ host: "127.0.0.1", port: 8222 });
  expect(parseMonitorAddress("monitor.internal:0")).toEqual({ host: "monitor.internal", port: 0 });
  for (const bad of ["", "host:", "host:65536", "a b:1", "::1:8222", "[::1]", "http://x:1"])
    expect(() => parseMonitorAddress(bad)).toThrow(/invalid monitor address/);
});

test("loopback: 127/8, ::1, localhost; not the wildcard or a LAN address", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])
    expect({ h, loopback: isLoopback(h) }).toEqual({ h, loopback: true });
  for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "127.0.0.1.example.com", "fe80::1"])
    expect({ h, loopback: isLoopback(h) }).toEqual({ h, loopback: false });
  expect(() => monitorConfig("10.0.0.1:8222", undefined)).toThrow(/without a token/);
  expect(monitorConfig("[::1]:0", undefined)).toEqual({ host: "::1", port: 0, token: null });
});

test("the token: Bearer or Basic password, compared exactly", () => {
  const token = "0123456789abcdef0123";
  const ok = tokenCheck(token);
  const basic = (userPass: string) => `Basic ${Buffer.from(userPass).toString("base64")}`;
  expect(ok(`Bearer ${token}`)).toBe(true);
  expect(ok(`bearer ${token}`)).toBe(true);
  expect(ok(basic(`anyone:${token}`))).toBe(true);
  expect(ok(basic(`:${token}`))).toBe(true);
  expect(ok(null)).toBe(false);
  expect(ok("")).toBe(false);
  expect(ok(`Bearer ${token}x`)).toBe(false);
  expect(ok(`Bearer ${token.slice(1)}`)).toBe(false);
  expect(ok(`Token ${token}`)).toBe(false);
  expect(ok(basic(`${token}:`))).toBe(false); // the token as the user name is not the password
  expect(ok(basic(`a:b:${token}`))).toBe(false);
  // No token configured (loopback): everything passes.
  expect(tokenCheck(null)(null)).toBe(true);
});
