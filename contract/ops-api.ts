/**
 * The ops API protocol: every request and response body the reference ops API speaks, as zod
 * schemas. The server validates requests with them; runbooks import them as the client-side
 * contract and parse responses with them.
 *
 * Conventions:
 * - JSON everywhere. Request bodies are parsed as JSON whatever the Content-Type, because the
 *   seed's commands are `curl -d '{...}'` without a JSON header (I1, I3). An empty body is `{}`.
 * - `/api/*` needs `Authorization: Bearer <OPS_API_TOKEN>` (401 otherwise); `/health*` and
 *   `/metrics` are open so probes and Prometheus need no secret.
 * - Errors are `{ error }` (ErrorBody): 400 bad body, 401 no/wrong token, 403 wrong code or key,
 *   404 unknown route, 405 wrong method, 409 state conflict, 413 body too big, 503 a dependency
 *   (PostgreSQL or Redis) is unavailable or the server is shutting down.
 * - Timestamps are ISO 8601 UTC strings.
 *
 * Endpoints (request schema → answer schema, status codes):
 *   GET  /health                             → LivenessReport 200
 *   GET  /health/ready                       → ReadyReport 200 | 503
 *   GET  /metrics                            → Prometheus text 200
 *   POST /api/kill-switch                    KillSwitchActivateRequest → KillSwitchActivated 201 | KillSwitchConflict 409
 *   GET  /api/kill-switch/status             → KillSwitchStatus 200
 *   POST /api/kill-switch/deactivate         KillSwitchDeactivateRequest → KillSwitchDeactivated 200 | 403 | 409 not active
 *   POST /api/kill-switch/force-deactivate   KillSwitchForceDeactivateRequest → KillSwitchDeactivated 200 | 403 | 409 not active
 *   GET  /api/circuit-breaker/status         → CircuitBreakerStatus 200
 *   POST /api/circuit-breaker/trip           CircuitBreakerTripRequest → CircuitBreakerStatus 200 | 409 already open
 *   POST /api/circuit-breaker/reset          EmptyRequest → CircuitBreakerStatus 200
 *   GET  /api/trading/status                 → TradingStatus 200
 *   POST /api/trading/pause                  TradingPauseRequest → TradingStatus 200
 *   POST /api/trading/resume                 EmptyRequest → TradingStatus 200 | TradingResumeConflict 409
 *   GET  /api/positions                      → PositionList 200
 *   POST /api/positions                      PositionOpenRequest → Position 201 | PositionOpenConflict 409
 *   POST /api/positions/close-all            CloseAllRequest → CloseAllResult 200
 *   GET  /api/model                          → ModelStatus 200 | 503 no model loaded
 *   POST /api/model/reload                   EmptyRequest → ModelStatus 200 | 503 the model dir cannot be read
 *   POST /api/alerts/kill-switch             AlertmanagerWebhook → AlertKillSwitchResult 200 (Alertmanager's I8 route)
 *   GET  /api/simulation                     → SimulationState 200
 *   POST /api/simulation                     SimulationRequest → SimulationState 200 (the simulated market, to drive alerts)
 */
import { z } from "zod";

const timestamp = z.iso.datetime();
const reason = z.string().trim().min(1, "must not be empty").max(500);

export const ErrorBody = z.object({ error: z.string() });
export type ErrorBody = z.infer<typeof ErrorBody>;

/** The body of actions that take no input (trading resume, circuit-breaker reset): nothing, or `{}`. */
export const EmptyRequest = z.strictObject({});

// ---- Health (Z1, C1) -------------------------------------------------------------------------

/** `GET /health`: liveness only; 200 as long as the process serves HTTP. */
export const LivenessReport = z.object({
  status: z.literal("ok"),
  timestamp,
  version: z.string(),
  uptime_s: z.number().nonnegative(),
  /** I4: the model set the bot trades with (the VERSION file of its model dir); absent when none is loaded. */
  model_version: z.string().optional(),
});
export type LivenessReport = z.infer<typeof LivenessReport>;

export const ComponentStatus = z.enum(["healthy", "unhealthy"]);

/** One probed dependency; `error` says why it is unhealthy (e.g. "read-only: server is in recovery"). */
export const ProbedComponent = z.object({
  status: ComponentStatus,
  latency_ms: z.number().nonnegative(),
  error: z.string().optional(),
});
export type ProbedComponent = z.infer<typeof ProbedComponent>;

/** `GET /health/ready`: 200 when every component is healthy, 503 otherwise (Z1). */
export const ReadyReport = z.object({
  status: ComponentStatus,
  timestamp,
  components: z.object({
    database: ProbedComponent,
    redis: ProbedComponent,
    /** The sandbox bot trades against a simulated exchange, so this component is always healthy. */
    exchange: z.object({ status: z.literal("healthy"), mode: z.literal("simulated") }),
  }),
});
export type ReadyReport = z.infer<typeof ReadyReport>;

// ---- Kill switch (I1) ------------------------------------------------------------------------

/** `POST /api/kill-switch`. */
export const KillSwitchActivateRequest = z.strictObject({ reason });
export type KillSwitchActivateRequest = z.infer<typeof KillSwitchActivateRequest>;

/** Six characters [A-Z0-9]; comparison ignores case and surrounding spaces. */
export const ConfirmationCode = z.string().regex(/^[A-Z0-9]{6}$/);

/** 201 answer to an activation: the only place the confirmation code is ever shown. */
export const KillSwitchActivated = z.object({
  active: z.literal(true),
  activated_at: timestamp,
  reason: z.string(),
  confirmation_code: ConfirmationCode,
});
export type KillSwitchActivated = z.infer<typeof KillSwitchActivated>;

/**
 * `GET /api/kill-switch/status`; also the body of the 409 to a second activation (with `error`).
 * Never carries the confirmation code.
 */
export const KillSwitchStatus = z.object({
  active: z.boolean(),
  activated_at: timestamp.optional(),
  reason: z.string().optional(),
  /** False when the active row was inserted without a code (seed method 3: psql): only force-deactivate lifts it. */
  has_confirmation_code: z.boolean().optional(),
});
export type KillSwitchStatus = z.infer<typeof KillSwitchStatus>;

export const KillSwitchConflict = KillSwitchStatus.extend({ error: z.string() });

/** `POST /api/kill-switch/deactivate`: 200 when the code matches the active kill switch, 403 otherwise. */
export const KillSwitchDeactivateRequest = z.strictObject({
  confirmation_code: z.string().trim().min(1).max(64),
});
export type KillSwitchDeactivateRequest = z.infer<typeof KillSwitchDeactivateRequest>;

/** `POST /api/kill-switch/force-deactivate`: 200 when the key is KILL_SWITCH_ADMIN_KEY, 403 otherwise. */
export const KillSwitchForceDeactivateRequest = z.strictObject({
  admin_key: z.string().min(1).max(512),
});
export type KillSwitchForceDeactivateRequest = z.infer<typeof KillSwitchForceDeactivateRequest>;

/** 200 answer to either deactivation. Trading stays paused: resuming is a separate, explicit step (I9). */
export const KillSwitchDeactivated = z.object({
  active: z.literal(false),
  deactivated_at: timestamp,
  deactivated_by: z.enum(["confirmation_code", "admin_key"]),
});
export type KillSwitchDeactivated = z.infer<typeof KillSwitchDeactivated>;

// ---- Circuit breaker (I2, T2) ----------------------------------------------------------------

export const CircuitBreakerState = z.enum(["CLOSED", "OPEN", "HALF_OPEN"]);
export type CircuitBreakerState = z.infer<typeof CircuitBreakerState>;

/** Seconds after which an OPEN breaker reads as HALF_OPEN (T2: 30 s reset). */
export const CIRCUIT_BREAKER_RESET_TIMEOUT_S = 30;

/**
 * `GET /api/circuit-breaker/status`; also the answer to reset and trip, and (with `error`) the
 * 409 to tripping a breaker that is already OPEN.
 */
export const CircuitBreakerStatus = z.object({
  state: CircuitBreakerState,
  /** Trips since the last reset. */
  failures: z.number().int().nonnegative(),
  opened_at: timestamp.optional(),
  reason: z.string().optional(),
  reset_timeout_s: z.literal(CIRCUIT_BREAKER_RESET_TIMEOUT_S),
});
export type CircuitBreakerStatus = z.infer<typeof CircuitBreakerStatus>;

/** `POST /api/circuit-breaker/trip`: opens the breaker (drills). */
export const CircuitBreakerTripRequest = z.strictObject({ reason });
export type CircuitBreakerTripRequest = z.infer<typeof CircuitBreakerTripRequest>;

// ---- Trading (I9) ----------------------------------------------------------------------------

/** `GET /api/trading/status`; also the answer to pause and resume. */
export const TradingStatus = z.object({
  /** True when paused explicitly or while the kill switch is active. */
  paused: z.boolean(),
  reason: z.string().optional(),
  since: timestamp.optional(),
  kill_switch_active: z.boolean(),
});
export type TradingStatus = z.infer<typeof TradingStatus>;

/**
 * `POST /api/trading/pause`. The reason is optional because the seed's orderly stop (I9 step 1)
 * posts no body; it defaults to `DEFAULT_PAUSE_REASON`. Pausing while paused keeps the first reason.
 */
export const TradingPauseRequest = z.strictObject({ reason: reason.optional() });
export type TradingPauseRequest = z.infer<typeof TradingPauseRequest>;
export const DEFAULT_PAUSE_REASON = "paused by operator";


/** 409 answer to a resume while the kill switch is active. */
export const TradingResumeConflict = ErrorBody.extend({ kill_switch: KillSwitchStatus });

// ---- Positions (I3) --------------------------------------------------------------------------

export const PositionSide = z.enum(["long", "short"]);

/** `POST /api/positions`: opens a position (drills); 409 while trading is paused. */
export const PositionOpenRequest = z.strictObject({
  symbol: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]{0,31}$/, "a symbol such as BTCUSDT or BTC/USDT"),
  side: PositionSide,
  quantity: z.number().positive().finite(),
  entry_price: z.number().positive().finite(),
});
export type PositionOpenRequest = z.infer<typeof PositionOpenRequest>;

/** 409 answer to opening a position while trading is paused. */
export const PositionOpenConflict = TradingStatus.extend({ error: z.string() });

export const Position = z.object({
  id: z.number().int().positive(),
  symbol: z.string(),
  side: PositionSide,
  quantity: z.number(),
  entry_price: z.number(),
  opened_at: timestamp,
});
export type Position = z.infer<typeof Position>;

/** `GET /api/positions`: the open positions, oldest first. */
export const PositionList = z.object({ positions: z.array(Position) });
export type PositionList = z.infer<typeof PositionList>;

/**
 * `POST /api/positions/close-all`. The reason is optional because the seed's orderly stop (I9 step 3)
 * posts no body; it defaults to `DEFAULT_CLOSE_ALL_REASON`.
 */
export const CloseAllRequest = z.strictObject({ reason: reason.optional() });
export type CloseAllRequest = z.infer<typeof CloseAllRequest>;
export const DEFAULT_CLOSE_ALL_REASON = "closed by operator";

export const CloseAllResult = z.object({ closed: z.number().int().nonnegative() });
export type CloseAllResult = z.infer<typeof CloseAllResult>;

// ---- Model (I4) -----------------------------------------------------------------------------

/**
 * `GET /api/model`; also the answer to a reload. A model set is a directory of files with a
 * `VERSION` file (one line); the bot reads it at start and on `POST /api/model/reload` (I4: a model
 * rollback puts the older set in place, then reloads).
 */
export const ModelStatus = z.object({
  version: z.string(),
  loaded_at: timestamp,
  files: z.array(z.string()),
});
export type ModelStatus = z.infer<typeof ModelStatus>;
export const MODEL_VERSION_FILE = "VERSION";

// ---- Metrics (S4, S7) ------------------------------------------------------------------------

/** The S7 work queues; their length is `LLEN queue:<name>`, exported as `tradeops_queue_length{queue}`. */
export const WORK_QUEUES = ["data-collection", "data-analysis", "trade-execution", "notification"] as const;

// ---- Alerts that act (I8) and the simulated market --------------------------------------------

/** One alert of Alertmanager's webhook payload (version 4); only what the kill-switch route reads. */
export const WebhookAlert = z.object({
  status: z.enum(["firing", "resolved"]),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()).default({}),
  fingerprint: z.string().optional(),
});

/** Alertmanager's `webhook_configs` body: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config */
export const AlertmanagerWebhook = z.object({
  version: z.literal("4"),
  status: z.enum(["firing", "resolved"]),
  receiver: z.string(),
  alerts: z.array(WebhookAlert),
});
export type AlertmanagerWebhook = z.infer<typeof AlertmanagerWebhook>;

/**
 * What the kill-switch route did: `engaged` when this call activated it, `already-active` when it
 * was (Alertmanager repeats a firing alert; every repeat must stay a no-op), `ignored` for a
 * resolved-only notification (a resolved loss alert never deactivates the switch: a person does).
 */
export const AlertKillSwitchResult = z.object({
  action: z.enum(["engaged", "already-active", "ignored"]),
  alerts: z.array(z.string()),
});
export type AlertKillSwitchResult = z.infer<typeof AlertKillSwitchResult>;

const ratio = z.number().min(0).max(1);

/**
 * The sandbox bot trades a simulated market: these set what its metrics report (I8 gauges) and how
 * slowly `/api/*` answers (S4/S5 latency), so alerts can be driven end to end. Unset keys keep their value.
 */
export const SimulationRequest = z.strictObject({
  daily_loss_ratio: ratio.optional(),
  drawdown_ratio: ratio.optional(),
  decision_latency_seconds: z.number().nonnegative().max(60).optional(),
  /** Added to every `/api/*` answer except this one. */
  response_delay_ms: z.number().int().nonnegative().max(10_000).optional(),
});
export const SimulationState = z.object({
  daily_loss_ratio: ratio,
  drawdown_ratio: ratio,
  decision_latency_seconds: z.number().nonnegative(),
  response_delay_ms: z.number().int().nonnegative(),
});
export type SimulationState = z.infer<typeof SimulationState>;
