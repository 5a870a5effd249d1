/**
 * Prometheus metrics (S4, S7, I8) on a registry of its own, so two APIs in one process (a restart
 * in a test, a DR pair) do not collide.
 *
 * State gauges are refreshed from PostgreSQL and Redis on every scrape. A source that cannot be
 * read sets its gauges to NaN: 0 would claim, say, an inactive kill switch, and a stale value would
 * hide the outage.
 */
import { collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { type CircuitBreakerState, WORK_QUEUES } from "../../contract/ops-api.ts";
import type { StateGauges } from "./state.ts";

export interface MetricSources {
  queueLengths(): Promise<Map<string, number>>;
  stateGauges(): Promise<StateGauges>;
  circuitBreakerState(): Promise<CircuitBreakerState>;
  /** I4: the release and model version, as `tradeops_app_info{version, model_version} 1`. */
  appInfo?(): { version: string; modelVersion: string };
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

  readonly contentType = this.registry.contentType;

  private readonly sources: MetricSources;

  constructor(sources: MetricSources) {
    this.sources = sources;
    collectDefaultMetrics({ register: this.registry });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requestDuration.observe({ method, route, status: String(status) }, seconds);
  }

  /** Refreshes the state gauges from their sources, then renders the exposition text. */
  async scrape(): Promise<string> {
    await Promise.all([this.refreshQueues(), this.refreshState(), this.refreshCircuitBreaker()]);
    const info = this.sources.appInfo?.();
    // One series: a model reload must not leave the old version's series behind.
    this.appInfo.reset();
    if (info) this.appInfo.set({ version: info.version, model_version: info.modelVersion }, 1);
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

  private gauge<Label extends string = never>(name: string, help: string, labelNames: readonly Label[] = []): Gauge<Label> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}
