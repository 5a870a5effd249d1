/**
 * Prometheus metrics (S4, S7, I8) on a registry of its own, so two APIs in one process (a restart
 * in a test, a DR pair) do not collide.
 *
 * State gauges are refreshed from PostgreSQL and Redis on every scrape. A source that cannot be
 * read sets its gauges to NaN: 0 would claim, say, an inactive kill switch, and a stale value would
 * hide the outage.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { type CircuitBreakerState, type SimulationState, WORK_QUEUES } from "../../contract/ops-api.ts";
import type { StateGauges } from "./state.ts";

export interface MetricSources {
  queueLengths(): Promise<Map<string, number>>;
  stateGauges(): Promise<StateGauges>;
  circuitBreakerState(): Promise<CircuitBreakerState>;
  /** I4: the release and model version, as `tradeops_app_info{version, model_version} 1`. */
  appInfo?(): { version: string; modelVersion: string };
  /** I8 trading gauges of the simulated market. @default unset (gauges stay 0) */
  market?(): SimulationState;
}

const CIRCUIT_BREAKER_VALUE: Record<CircuitBreakerState, number> = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };

export class OpsMetrics {
  private readonly registry = new Registry();
  private readonly requestDuration = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request duration by method, route and status (S4: p95 < 500 ms).",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  private readonly queueLength = this.gauge("tradeops_queue_length", "Jobs waiting in queue:<name> (S7).", ["queue"]);
  private readonly tradingPaused = this.gauge("trading_paused", "1 while trading is paused or the kill switch is active (I9).");
  private readonly killSwitchActive = this.gauge("kill_switch_active", "1 while the kill switch is active (I1).");
  private readonly circuitBreakerState = this.gauge("circuit_breaker_state", "0 closed, 1 half-open, 2 open (I2).");
  private readonly openPositions = this.gauge("open_positions", "Open positions (I3).");
  private readonly appInfo = this.gauge("tradeops_app_info", "1, labelled with the running release and model version (I4).", ["version", "model_version"]);
  // I8 alert inputs (infra/config-files/alert-rules.ts); the exchange and websocket counters stay at 0
  // against the simulated exchange, but exist so the rules and dashboards name real series.
  // No labels, so the series exists (at 0) before the first error: the error rate reads 0 %, not "no data".
  private readonly requestErrors = new Counter({ name: "http_request_errors_total", help: "Answers with a 5xx status (I8 API error rate; the histogram has the route).", registers: [this.registry] });
  private readonly dailyLoss = this.gauge("trading_daily_loss_ratio", "Today's loss as a fraction of the day's starting equity (I8: 3 % warn, 5 % stop).");
  private readonly drawdown = this.gauge("trading_drawdown_ratio", "Drawdown from the equity peak, 0-1 (I8: 10 % / 15 %).");
  private readonly decisionLatency = this.gauge("trading_decision_latency_seconds", "Latency of the last trading decision (I8: 500 ms / 1 s).");
  private readonly exchangeErrors = new Counter({ name: "exchange_errors_total", help: "Failed exchange calls (T2).", labelNames: ["exchange"] as const, registers: [this.registry] });
  private readonly exchangeRateLimited = new Counter({ name: "exchange_rate_limited_total", help: "Exchange answers 429 (T2).", labelNames: ["exchange"] as const, registers: [this.registry] });
  private readonly websocketDisconnects = new Counter({ name: "websocket_disconnects_total", help: "Market-data websocket drops (T2).", labelNames: ["stream"] as const, registers: [this.registry] });

  readonly contentType = this.registry.contentType;

  private readonly sources: MetricSources;

  constructor(sources: MetricSources) {
    this.sources = sources;
    collectDefaultMetrics({ register: this.registry });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requestDuration.observe({ method, route, status: String(status) }, seconds);
    if (status >= 500) this.requestErrors.inc();
  }

  /** Refreshes the state gauges from their sources, then renders the exposition text. */
  async scrape(): Promise<string> {
    await Promise.all([this.refreshQueues(), this.refreshState(), this.refreshCircuitBreaker()]);
    const info = this.sources.appInfo?.();
    // One series: a model reload must not leave the old version's series behind.
    this.appInfo.reset();
    if (info) this.appInfo.set({ version: info.version, model_version: info.modelVersion }, 1);
    this.refreshMarket();
    return this.registry.metrics();
  }

  private async refreshQueues(): Promise<void> {
    const lengths = await this.sources.queueLengths().catch(() => undefined);
    for (const queue of WORK_QUEUES) this.queueLength.set({ queue }, lengths?.get(queue) ?? NaN);
  }

  private async refreshState(): Promise<void> {
    const state = await this.sources.stateGauges().catch(() => undefined);
    this.tradingPaused.set(state ? Number(state.tradingPaused) : NaN);
    this.killSwitchActive.set(state ? Number(state.killSwitchActive) : NaN);
    this.openPositions.set(state ? state.openPositions : NaN);
  }

  private async refreshCircuitBreaker(): Promise<void> {
    const state = await this.sources.circuitBreakerState().catch(() => undefined);
    this.circuitBreakerState.set(state ? CIRCUIT_BREAKER_VALUE[state] : NaN);
  }

  private refreshMarket(): void {
    const market = this.sources.market?.();
    if (!market) return;
    this.dailyLoss.set(market.daily_loss_ratio);
    this.drawdown.set(market.drawdown_ratio);
    this.decisionLatency.set(market.decision_latency_seconds);
    // Zero-valued children, so `rate()` has a series before the first error.
    this.exchangeErrors.inc({ exchange: "simulated" }, 0);
    this.exchangeRateLimited.inc({ exchange: "simulated" }, 0);
    this.websocketDisconnects.inc({ stream: "market-data" }, 0);
  }

  private gauge<Label extends string = never>(name: string, help: string, labelNames: readonly Label[] = []): Gauge<Label> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}
