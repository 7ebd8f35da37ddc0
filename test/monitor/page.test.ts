/**
 * The status page in a real browser: headless Chromium (Debian's, driven by
 * playwright-core) opens `/` of a `serve --monitor`, the figures change while a client
 * sends, nothing is fetched from anywhere but the monitor, and the page obeys its own
 * Content-Security-Policy. A screenshot is written to BACKBONE_SCREENSHOT (default: the
 * temp directory) for a human to look at (docs/monitor.png is one).
 */
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { type Client, connect } from "../../src/client/client.ts";
import { cleanupAll, sandbox } from "../helpers/binary.ts";
import { serveMonitored } from "./helpers.ts";

afterEach(cleanupAll);
setDefaultTimeout(90_000);

/** The page's DOM as far as the checks below use it (they run in the browser). */
interface PageDom {
  document: {
    getElementById(id: string): { textContent: string | null } | null;
    querySelector(selector: string): { getAttribute(name: string): string | null } | null;
  };
}

const CHROMIUM = process.env.BACKBONE_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

test.skipIf(!existsSync(CHROMIUM))(
  "the live page shows clients and traffic, changing while a client sends; no network beyond the monitor",
  async () => {
    await using sb = await sandbox();
    const server = await serveMonitored(sb);
    for (const name of ["alice", "bob"]) await sb.keygen(name, server.address);
    const profile = mkdtempSync(join(tmpdir(), "backbone-chromium-"));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1280, height: 800 },
    });
    const clients: Client[] = [];
    let sending: ReturnType<typeof setInterval> | undefined;
    try {
      const requests: string[] = [];
      context.on("request", (r) => requests.push(r.url()));
      const page = await context.newPage();
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(m.text());
      });
      page.on("pageerror", (e) => problems.push(e.message));
      await page.goto(server.url);
      await page.locator("#stream", { hasText: "live" }).waitFor();
      await page.locator("#clients", { hasText: /^0$/ }).waitFor();
      expect(await page.locator("#health").textContent()).toBe("healthy");
      expect(await page.locator("#nodes").textContent()).toContain("(this node)");

      const alice = await connect({ identity: join(sb.dir, "alice.identity"), reconnect: false });
      const bob = await connect({ identity: join(sb.dir, "bob.identity"), reconnect: false });
      clients.push(alice, bob);
      await page.locator("#clients", { hasText: /^2$/ }).waitFor();

      // A steady stream (bounded: at most 40 s at 50 messages/s) while the page updates.
      let sent = 0;
      sending = setInterval(() => {
        if (sent >= 2000) return clearInterval(sending);
        for (let i = 0; i < 5; i++, sent++) alice.send(bob.id, `page test ${sent}`);
      }, 100);
      const rateIn = page.locator("#rate-in");
      // (These functions run in the page, as functions: its CSP forbids eval of strings.)
      await page.waitForFunction(
        () =>
          Number(
            (globalThis as unknown as PageDom).document.getElementById("rate-in")?.textContent,
          ) >= 20,
        undefined,
        { timeout: 20_000 },
      );
      const first = Number(await rateIn.textContent());
      const points = await page.locator("#chart polyline").first().getAttribute("points");
      // The chart grows as samples arrive.
      await page.waitForFunction(
        (before) =>
          (globalThis as unknown as PageDom).document
            .querySelector("#chart polyline")
            ?.getAttribute("points") !== before,
        points,
        { timeout: 5_000 },
      );
      expect(first).toBeGreaterThan(0);
      expect(Number(await page.locator("#rate-out").textContent())).toBeGreaterThan(0);

      // A refusal shows up in the table: a message to someone unknown.
      alice.send("00000000-0000-4000-8000-000000000000", "to nobody");
      await page.locator("#refusals", { hasText: "unknown recipient" }).waitFor({ timeout: 5_000 });

      const shot = process.env.BACKBONE_SCREENSHOT ?? join(tmpdir(), "backbone-monitor-page.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(10_000);

      // Traffic stops: the rate falls back to 0.
      clearInterval(sending);
      await page.waitForFunction(
        () =>
          (globalThis as unknown as PageDom).document.getElementById("rate-in")?.textContent ===
          "0",
        undefined,
        { timeout: 10_000 },
      );
      expect(requests.every((u) => u.startsWith(server.url))).toBe(true);
      expect(requests).toContain(`${server.url}events`);
      expect(problems).toEqual([]);
    } finally {
      clearInterval(sending);
      for (const c of clients) await c.close();
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  },
);
