/**
 * The reference ops API: a small HTTP service that stands in for the trading bot in the sandbox and
 * implements what the runbooks call on one (Z1 health, I1 kill switch, I2 circuit breaker, I3
 * positions, I9 pause/resume, S4/S7 metrics), backed by real PostgreSQL and Redis.
 *
 * - Starts even when PostgreSQL or Redis is down (after one bounded attempt at each): /health
 *   answers, /health/ready says 503, and the schema is created once the database is reachable.
 * - Logs JSON lines; the token, the admin key and the URLs' passwords are redacted from every line.
 * - `close()` is the graceful shutdown (Z4): no new connections, 503 to new requests on open ones,
 *   in-flight requests finish, then PostgreSQL and Redis are released. The caller enforces the cap.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { OpsApiConfig } from "./config.ts";
import { DependencyUnavailable, HttpError, hasBearerToken } from "./http.ts";
import { createLogger, errorMessage, type Logger, maskUrl, urlPassword } from "./log.ts";
import { OpsMetrics } from "./metrics.ts";
import { CircuitBreaker, connectRedis, firstConnectAttempt, pingRedis, queueLengths } from "./redis.ts";
import { createRouteContext, type ModelHolder, opsRoutes, type Reply, type Route } from "./routes.ts";
import { loadModel, migrateUp } from "./release.ts";
import { SimulatedMarket } from "./simulation.ts";
import { createPool, TradingStore } from "./state.ts";

export type { OpsApiConfig } from "./config.ts";

export interface OpsApi {
  /** Base URL with the real port, e.g. `http://127.0.0.1:8000`. */
  url: string;
  /** Graceful shutdown; safe to call more than once. */
  close(): Promise<void>;
}

/** Everything the logger must never print: the token, the admin key and the connection passwords. */
export function configSecrets(config: OpsApiConfig): string[] {
  return [config.token, config.killSwitchAdminKey, urlPassword(config.databaseUrl), urlPassword(config.redisUrl)];
}

export async function startOpsApi(config: OpsApiConfig): Promise<OpsApi> {
  const log = createLogger(configSecrets(config), config.logSink);
  log.info("starting", {
    version: config.version,
    database: maskUrl(config.databaseUrl),
    redis: maskUrl(config.redisUrl),
  });
  const pool = createPool(config.databaseUrl, log);
  const redis = connectRedis(config.redisUrl, log);
  const store = new TradingStore(pool);
  const breaker = new CircuitBreaker(redis);
  const model = modelHolder(config, log);
  const market = new SimulatedMarket();
  const metrics = new OpsMetrics({
    market: () => market.current(),
    queueLengths: () => queueLengths(redis),
    stateGauges: () => store.gauges(),
    circuitBreakerState: async () => (await breaker.status()).state,
    appInfo: () => ({ version: config.version, modelVersion: model.status?.version ?? "" }),
  });
  const routes = opsRoutes({
    config,
    log,
    store,
    breaker,
    metrics,
    probes: { database: () => store.probeWritable(), redis: () => pingRedis(redis) },
    startedAt: Date.now(),
    model,
    market,
  });
  const http: HttpContext = { routes, token: config.token, metrics, log, draining: false, inFlight: 0, fault: config.fault ?? "none" };
  const server = createServer((request, response) => void serve(http, request, response));

  // One attempt at each dependency before listening, so readiness is meaningful from the first probe.
  // Both are bounded by their connect timeouts; a failure only delays them to first use or reconnect.
  await Promise.all([tryCreateSchema(store, log), firstConnectAttempt(redis)]);
  if (config.migrations) await migrateUp(config.databaseUrl, config.migrations, log);
  const releaseDependencies = async () => {
    redis.disconnect();
    await pool.end();
  };
  await listen(server, config.host, config.port).catch(async (error: unknown) => {
    await releaseDependencies();
    throw error;
  });
  server.on("error", (error) => log.error("http server error", { error: errorMessage(error) }));
  const url = baseUrl(config.host, (server.address() as AddressInfo).port);
  log.info("listening", { url, version: config.version });

  let closing: Promise<void> | undefined;
  const shutDown = async () => {
    http.draining = true;
    log.info("shutting down: refusing new requests, draining in-flight ones", { in_flight: http.inFlight });
    // Node closes idle keep-alive sockets here; busy ones close after their response (sent with `connection: close`).
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await releaseDependencies();
    log.info("shut down");
  };
  return { url, close: () => (closing ??= shutDown()) };
}

/** What request handling needs; `draining` flips once at shutdown. */
interface HttpContext {
  routes: Route[];
  token: string;
  metrics: OpsMetrics;
  log: Logger;
  draining: boolean;
  inFlight: number;
  fault: NonNullable<OpsApiConfig["fault"]>;
}

async function serve(http: HttpContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const started = performance.now();
  http.inFlight += 1;
  try {
    const { route, reply } = await answer(http, request).catch((error: unknown) => ({
      route: UNMATCHED,
      reply: failureReply(error, UNMATCHED, http.log),
    }));
    writeReply(response, reply, http.draining);
    const seconds = (performance.now() - started) / 1_000;
    http.metrics.observeRequest(request.method ?? "", route, reply.status, seconds);
    if (route.startsWith("/api/") || reply.status >= 500) {
      const duration_ms = Math.round(seconds * 100_000) / 100;
      http.log.info("request", { method: request.method, route, status: reply.status, duration_ms });
    }
  } finally {
    http.inFlight -= 1;
  }
}

// Metrics label by route pattern, never the raw path: unknown paths must not grow the series count.
const UNMATCHED = "unmatched";

async function answer(http: HttpContext, request: IncomingMessage): Promise<{ route: string; reply: Reply }> {
  const path = new URL(request.url ?? "/", "http://ops-api").pathname;
  const candidates = http.routes.filter((route) => route.path === path);
  const label = candidates.length > 0 ? path : UNMATCHED;
  if (http.draining) return { route: label, reply: errorReply(503, "shutting down") };
  if (path.startsWith("/api/") && !hasBearerToken(request, http.token)) {
    const unauthorized = errorReply(401, "missing or wrong bearer token");
    return { route: label, reply: { ...unauthorized, headers: { "www-authenticate": "Bearer" } } };
  }
  if (candidates.length === 0) return { route: label, reply: errorReply(404, `no route ${path}`) };
  if (http.fault === "api-500" && path.startsWith("/api/")) return { route: label, reply: errorReply(500, "internal error (injected fault of this release)") };
  const route = candidates.find((candidate) => candidate.method === request.method);
  if (!route) return { route: label, reply: methodNotAllowed(candidates) };
  try {
    return { route: label, reply: await route.handle(createRouteContext(request)) };
  } catch (error) {
    return { route: label, reply: failureReply(error, label, http.log) };
  }
}

/** The model set of `config.modelDir`, loaded once at start; a dir that cannot be read leaves none loaded (said in the log). */
function modelHolder(config: OpsApiConfig, log: Logger): ModelHolder {
  const holder: ModelHolder = {
    reload: () => {
      if (!config.modelDir) throw new Error("this API has no model dir (OPS_API_MODEL_DIR)");
      holder.status = loadModel(config.modelDir);
      return holder.status;
    },
  };
  if (config.modelDir) {
    try {
      log.info("model loaded", { version: holder.reload().version });
    } catch (error) {
      log.warn("no model loaded", { error: errorMessage(error) });
    }
  }
  return holder;
}

async function tryCreateSchema(store: TradingStore, log: Logger): Promise<void> {
  try {
    await store.ensureSchema();
    log.info("database schema ready");
  } catch (error) {
    log.warn("database unavailable at start; the schema will be created once it is reachable", {
      error: errorMessage(error),
    });
  }
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function baseUrl(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function writeReply(response: ServerResponse, reply: Reply, closeConnection: boolean): void {
  const payload = reply.contentType ? String(reply.body) : JSON.stringify(reply.body);
  response.writeHead(reply.status, {
    "content-type": reply.contentType ?? "application/json; charset=utf-8",
    "cache-control": "no-store",
    ...(closeConnection ? { connection: "close" } : {}),
    ...reply.headers,
  });
  response.end(payload);
}

function errorReply(status: number, error: string, extra: Record<string, unknown> = {}): Reply {
  return { status, body: { error, ...extra } };
}

function methodNotAllowed(candidates: Route[]): Reply {
  const allowed = candidates.map((route) => route.method).join(", ");
  return { ...errorReply(405, `method not allowed; use ${allowed}`), headers: { allow: allowed } };
}

function failureReply(error: unknown, route: string, log: Logger): Reply {
  if (error instanceof HttpError) return errorReply(error.status, error.message, error.body);
  if (error instanceof DependencyUnavailable) {
    log.warn("dependency unavailable", { route, error: error.message });
    return errorReply(503, error.message);
  }
  log.error("request failed", { route, error: errorMessage(error) });
  return errorReply(500, "internal error");
}
