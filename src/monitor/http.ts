/**
 * The monitor's HTTP layer (Bun.serve): routes, the token rule, and the page's event
 * stream. Read-only: every endpoint answers GET (and HEAD) only.
 *
 *   /          the live status page (HTML)        /varz   server figures (JSON)
 *   /events    the page's server-sent events      /connz  connections (JSON)
 *   /metrics   Prometheus text exposition         /healthz 200 "ok" or 503 and why
 */
import type { Server } from "bun";
import { UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { type MonitorConfig, tokenCheck } from "./config.ts";
import type { History, Refusal, Sample, Snapshot } from "./history.ts";
import type { Metrics } from "./metrics.ts";
import { connz, QueryError, varz } from "./nats.ts";
import { statusPage } from "./page.ts";
import type { Probe } from "./probe.ts";
import type { MonitorTarget, NodeInfo } from "./target.ts";

export interface HttpParts {
  config: MonitorConfig;
  node: string;
  target: MonitorTarget;
  metrics: Metrics;
  probe: Probe;
  history: History;
}

/** Event streams open at once; more are refused (503), so the page cannot be used to exhaust us. */
const MAX_STREAMS = 64;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

function json(body: unknown, status = 200): Response {
  return new Response(`${JSON.stringify(body, null, 2)}\n`, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "application/json; charset=utf-8" },
  });
}

function text(body: string, status = 200, extra: Record<string, string> = {}): Response {
  return new Response(`${body}\n`, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...extra },
  });
}

/** Starts the HTTP server. Throws `UsageError` `MONITOR_LISTEN` when it cannot bind. */
export function serveHttp(parts: HttpParts): Server<undefined> {
  const { config, target, metrics, probe, history, node } = parts;
  const allowed = tokenCheck(config.token);
  let streams = 0;
  const nodes = (): NodeInfo[] =>
    target.nodes?.() ?? [
      { name: node, clients: target.router.online.size, seen: Date.now(), self: true },
    ];

  const routes: Record<string, (req: Request, url: URL) => Response | Promise<Response>> = {
    "/healthz": async () => {
      const h = await probe.check();
      return text(h.reason, h.ok ? 200 : 503);
    },
    "/metrics": async () =>
      new Response(await metrics.text(), {
        headers: { ...SECURITY_HEADERS, "content-type": metrics.contentType },
      }),
    "/varz": async () =>
      json(await varz(target, probe, { node, httpHost: config.host, httpPort: server.port ?? 0 })),
    "/connz": (_req, url) => json(connz(target, url.searchParams)),
    "/": () => {
      const nonce = crypto.getRandomValues(Buffer.alloc(16)).toString("base64");
      return new Response(statusPage(nonce), {
        headers: {
          ...SECURITY_HEADERS,
          "content-type": "text/html; charset=utf-8",
          // Nothing but this page's own script and style, and its own event stream.
          "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
        },
      });
    },
    "/events": async (req) => {
      if (streams >= MAX_STREAMS) return text("too many event streams open", 503);
      streams++;
      const snapshot: Snapshot = {
        node,
        version: VERSION,
        started: target.startedAt,
        health: await probe.check(),
        samples: history.samples,
        refusals: history.refusals,
        nodes: nodes(),
      };
      let unsubscribe = () => {};
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        streams--;
        unsubscribe();
      };
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          const enc = new TextEncoder();
          const send = (event: string, data: unknown) => {
            try {
              controller.enqueue(enc.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
            } catch {
              close();
            }
          };
          send("snapshot", snapshot);
          unsubscribe = history.subscribe((sample: Sample, found: Refusal[]) => {
            void probe.check().then((health) => {
              if (!closed) send("sample", { sample, refusals: found, health, nodes: nodes() });
            });
          });
          req.signal.addEventListener("abort", () => {
            close();
            try {
              controller.close();
            } catch {
              // already closed
            }
          });
        },
        cancel: close,
      });
      return new Response(stream, {
        headers: {
          ...SECURITY_HEADERS,
          "content-type": "text/event-stream; charset=utf-8",
          connection: "keep-alive",
        },
      });
    },
  };

  let server: Server<undefined>;
  try {
    server = Bun.serve({
      hostname: config.host,
      port: config.port,
      // The event stream sends every second; anything idle longer is gone.
      idleTimeout: 30,
      async fetch(req) {
        const url = new URL(req.url);
        // Without a token only loopback is allowed: a Host naming anything else is a web
        // page that rebound its name to 127.0.0.1 (DNS rebinding), not a local tool.
        if (!config.token && !loopbackHost(req.headers.get("host"))) {
          return text("403 forbidden: this monitor answers only to a loopback Host", 403);
        }
        if (!allowed(req.headers.get("authorization"))) {
          return text("401 unauthorized: this monitor needs its token", 401, {
            "www-authenticate": 'Bearer realm="backbone monitor", Basic realm="backbone monitor"',
          });
        }
        const route = routes[url.pathname];
        if (!route) return text("404 not found", 404);
        if (req.method !== "GET" && req.method !== "HEAD")
          return text("405 method not allowed", 405, { allow: "GET, HEAD" });
        try {
          return await route(req, url);
        } catch (err) {
          if (err instanceof QueryError) return json({ error: err.message }, 400);
          throw err;
        }
      },
      error(err) {
        return text(`500 internal error: ${err.message.split("\n")[0]}`, 500);
      },
    });
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? (cause as Error).message;
    throw new UsageError(
      "MONITOR_LISTEN",
      `cannot listen for the monitor on ${config.host}:${config.port}: ${code}`,
      { cause },
    );
  }
  return server;
}

/** `localhost`, `127.x.y.z` or `[::1]`, with or without a port. */
export function loopbackHost(host: string | null): boolean {
  if (!host) return false;
  const name = host.startsWith("[")
    ? host.slice(0, host.indexOf("]") + 1)
    : host.replace(/:\d+$/, "");
  return name === "localhost" || name === "[::1]" || /^127(\.\d{1,3}){3}$/.test(name);
}
