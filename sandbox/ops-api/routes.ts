/**
 * The route table: what the runbooks call on a trading bot, endpoint by endpoint. Bodies follow
 * contract/ops-api.ts; authentication, errors and metrics are handled once, in server.ts.
 */
import type { IncomingMessage } from "node:http";
import type { z } from "zod";
import type { OpsApiConfig } from "./config.ts";
import { readinessReport, type ReadinessProbes } from "./health.ts";
import { HttpError, readBody, secretMatches } from "./http.ts";
import type { Logger } from "./log.ts";
import type { OpsMetrics } from "./metrics.ts";
import {
  type AlertKillSwitchResult,
  AlertmanagerWebhook,
  SimulationRequest,
  CircuitBreakerTripRequest,
  CloseAllRequest,
  DEFAULT_CLOSE_ALL_REASON,
  DEFAULT_PAUSE_REASON,
  EmptyRequest,
  KillSwitchActivateRequest,
  KillSwitchDeactivateRequest,
  KillSwitchForceDeactivateRequest,
  type LivenessReport,
  type ModelStatus,
  PositionOpenRequest,
  TradingPauseRequest,
} from "../../contract/ops-api.ts";
import type { CircuitBreaker } from "./redis.ts";
import type { SimulatedMarket } from "./simulation.ts";
import type { DeactivationResult, TradingStore } from "./state.ts";

export interface Reply {
  status: number;
  body: unknown;
  /** Defaults to JSON; set for the Prometheus text of /metrics. */
  contentType?: string;
  headers?: Record<string, string>;
}

export interface RouteContext {
  request: IncomingMessage;
  /** Reads and validates the JSON body; throws a 400 HttpError when it does not match. */
  body<T extends z.ZodType>(schema: T): Promise<z.output<T>>;
}

export interface Route {
  method: "GET" | "POST";
  path: string;
  handle(context: RouteContext): Promise<Reply>;
}

export interface RouteDependencies {
  config: OpsApiConfig;
  log: Logger;
  store: TradingStore;
  breaker: CircuitBreaker;
  metrics: OpsMetrics;
  probes: ReadinessProbes;
  startedAt: number;
  market: SimulatedMarket;
  model: ModelHolder;
}

/** I4: the model set the bot trades with; `reload` re-reads its dir (and throws when it cannot). */
export interface ModelHolder {
  status?: ModelStatus;
  reload(): ModelStatus;
}

export function createRouteContext(request: IncomingMessage): RouteContext {
  return { request, body: (schema) => readBody(request, schema) };
}

export function opsRoutes(deps: RouteDependencies): Route[] {
  const routes = [...healthRoutes(deps), ...killSwitchRoutes(deps), ...circuitBreakerRoutes(deps), ...tradingRoutes(deps), ...modelRoutes(deps), ...alertRoutes(deps)];
  return [...routes.map((route) => slowedBy(deps.market, route)), ...simulationRoutes(deps)];
}

const reply = (status: number, body: unknown): Reply => ({ status, body });
const get = (path: string, handle: Route["handle"]): Route => ({ method: "GET", path, handle });
const post = (path: string, handle: Route["handle"]): Route => ({ method: "POST", path, handle });

/** Z1, C1, S4: open endpoints for probes and Prometheus. */
function healthRoutes({ config, metrics, probes, startedAt, model }: RouteDependencies): Route[] {
  return [
    get("/health", async () => {
      const liveness: LivenessReport = {
        status: "ok",
        timestamp: new Date().toISOString(),
        version: config.version,
        uptime_s: Math.round((Date.now() - startedAt) / 100) / 10,
        model_version: model.status?.version,
      };
      return reply(200, liveness);
    }),
    get("/health/ready", async () => {
      const report = await readinessReport(probes);
      return reply(report.status === "healthy" ? 200 : 503, report);
    }),
    get("/metrics", async () => ({ status: 200, body: await metrics.scrape(), contentType: metrics.contentType })),
  ];
}

/** I1. The confirmation code appears in the activation answer only: never in a status or a log line. */
function killSwitchRoutes({ config, log, store }: RouteDependencies): Route[] {
  const answerDeactivation = (result: DeactivationResult): Reply => {
    if ("deactivated" in result) {
      log.warn("kill switch deactivated", { deactivated_by: result.deactivated.deactivated_by });
      return reply(200, result.deactivated);
    }
    log.warn("kill switch deactivation refused", { refused: result.refused });
    switch (result.refused) {
      case "not-active":
        throw new HttpError(409, "kill switch is not active", { active: false });
      case "no-code":
        throw new HttpError(
          403,
          "the active kill switch was set without a confirmation code (e.g. by psql): use /api/kill-switch/force-deactivate",
        );
      case "wrong-code":
        throw new HttpError(403, "confirmation code does not match the active kill switch");
    }
  };

  return [
    post("/api/kill-switch", async ({ body }) => {
      const { reason } = await body(KillSwitchActivateRequest);
      const result = await store.activateKillSwitch(reason);
      if ("alreadyActive" in result) throw new HttpError(409, "kill switch already active", result.alreadyActive);
      log.warn("kill switch activated; trading paused", { reason, activated_at: result.activated.activated_at });
      return reply(201, result.activated);
    }),
    get("/api/kill-switch/status", async () => reply(200, await store.killSwitchStatus())),
    post("/api/kill-switch/deactivate", async ({ body }) => {
      const { confirmation_code } = await body(KillSwitchDeactivateRequest);
      return answerDeactivation(await store.deactivateKillSwitch(confirmation_code));
    }),
    post("/api/kill-switch/force-deactivate", async ({ body }) => {
      const { admin_key } = await body(KillSwitchForceDeactivateRequest);
      if (!secretMatches(admin_key, config.killSwitchAdminKey)) {
        log.warn("kill switch force-deactivation refused: wrong admin key");
        throw new HttpError(403, "admin key does not match");
      }
      return answerDeactivation(await store.forceDeactivateKillSwitch());
    }),
  ];
}

/** I2, T2. */
function circuitBreakerRoutes({ log, breaker }: RouteDependencies): Route[] {
  return [
    get("/api/circuit-breaker/status", async () => reply(200, await breaker.status())),
    post("/api/circuit-breaker/reset", async ({ body }) => {
      await body(EmptyRequest);
      const status = await breaker.reset();
      log.info("circuit breaker reset");
      return reply(200, status);
    }),
    post("/api/circuit-breaker/trip", async ({ body }) => {
      const { reason } = await body(CircuitBreakerTripRequest);
      const result = await breaker.trip(reason);
      if ("alreadyOpen" in result) throw new HttpError(409, "circuit breaker already open", result.alreadyOpen);
      log.warn("circuit breaker tripped", { reason });
      return reply(200, result.tripped);
    }),
  ];
}

/** I9 orderly stop (pause, check positions, close them) and I3 emergency close. */
function tradingRoutes({ log, store }: RouteDependencies): Route[] {
  return [
    get("/api/trading/status", async () => reply(200, await store.tradingStatus())),
    post("/api/trading/pause", async ({ body }) => {
      const { reason = DEFAULT_PAUSE_REASON } = await body(TradingPauseRequest);
      const status = await store.pauseTrading(reason);
      log.info("trading paused", { reason: status.reason });
      return reply(200, status);
    }),
    post("/api/trading/resume", async ({ body }) => {
      await body(EmptyRequest);
      const result = await store.resumeTrading();
      if ("killSwitch" in result) {
        throw new HttpError(409, "kill switch is active: deactivate it before resuming", { kill_switch: result.killSwitch });
      }
      log.info("trading resumed");
      return reply(200, result.resumed);
    }),
    get("/api/positions", async () => reply(200, { positions: await store.openPositions() })),
    post("/api/positions", async ({ body }) => {
      const result = await store.openPosition(await body(PositionOpenRequest));
      if ("paused" in result) throw new HttpError(409, `trading is paused: ${result.paused.reason ?? ""}`, result.paused);
      return reply(201, result.opened);
    }),
    post("/api/positions/close-all", async ({ body }) => {
      const { reason = DEFAULT_CLOSE_ALL_REASON } = await body(CloseAllRequest);
      const closed = await store.closeAllPositions(reason);
      log.warn("positions closed", { closed, reason });
      return reply(200, { closed });
    }),
  ];
}

/** I4: the model rollback's last step: put the older set in place, then reload. */
function modelRoutes({ log, model }: RouteDependencies): Route[] {
  return [
    get("/api/model", async () => {
      if (!model.status) throw new HttpError(503, "no model loaded");
      return reply(200, model.status);
    }),
    post("/api/model/reload", async ({ body }) => {
      await body(EmptyRequest);
      let status: ModelStatus;
      try {
        status = model.reload();
      } catch (error) {
        log.error("model reload failed; the previous model stays loaded", { error: error instanceof Error ? error.message : String(error) });
        throw new HttpError(503, `model reload failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      log.info("model reloaded", { version: status.version, files: status.files.length });
      return reply(200, status);
    }),
  ];
}

/**
 * I8 "daily loss 5 % stops trading": Alertmanager's kill-switch route posts here. Any firing alert
 * engages the switch (which alerts arrive is the route's choice); a repeat while it is active, and a
 * resolved notification, change nothing. The kill_switch_events row with the alert's name is the audit.
 */
function alertRoutes({ log, store }: RouteDependencies): Route[] {
  return [
    post("/api/alerts/kill-switch", async ({ body }) => {
      const webhook = await body(AlertmanagerWebhook);
      const firing = webhook.alerts.filter((alert) => alert.status === "firing");
      const names = [...new Set(firing.map((alert) => alert.labels.alertname ?? "unnamed"))];
      const answer = (action: AlertKillSwitchResult["action"]) => reply(200, { action, alerts: names } satisfies AlertKillSwitchResult);
      if (firing.length === 0) return answer("ignored");
      const summary = firing[0]!.annotations.summary ?? "";
      const result = await store.activateKillSwitch(`alert ${names.join(", ")}: ${summary}`.slice(0, 500));
      if ("alreadyActive" in result) return answer("already-active");
      log.warn("kill switch activated by an alert; trading paused", { alerts: names, receiver: webhook.receiver, activated_at: result.activated.activated_at });
      return answer("engaged");
    }),
  ];
}

/** The simulated market (sandbox/ops-api/simulation.ts); never slowed itself, so a test can always undo a delay. */
function simulationRoutes({ log, market }: RouteDependencies): Route[] {
  return [
    get("/api/simulation", async () => reply(200, market.current())),
    post("/api/simulation", async ({ body }) => {
      const state = market.update(await body(SimulationRequest));
      log.warn("simulated market changed", { ...state });
      return reply(200, state);
    }),
  ];
}

function slowedBy(market: SimulatedMarket, route: Route): Route {
  if (!route.path.startsWith("/api/")) return route;
  return {
    ...route,
    async handle(context) {
      const delay = market.current().response_delay_ms;
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      return route.handle(context);
    },
  };
}
