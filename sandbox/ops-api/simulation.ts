/**
 * The simulated market the sandbox bot trades (the exchange is simulated, see ReadyReport): what it
 * reports as today's loss, drawdown and decision latency, and how slowly `/api/*` answers. Set by
 * `POST /api/simulation` so tests and drills can push the bot past the I8 and S5 thresholds.
 * In memory: a restart is a calm market.
 */
import type { SimulationState } from "../../contract/ops-api.ts";

export class SimulatedMarket {
  private state: SimulationState = { daily_loss_ratio: 0, drawdown_ratio: 0, decision_latency_seconds: 0.05, response_delay_ms: 0 };

  current(): SimulationState {
    return { ...this.state };
  }

  update(change: Partial<SimulationState>): SimulationState {
    const defined = Object.fromEntries(Object.entries(change).filter(([, value]) => value !== undefined));
    this.state = { ...this.state, ...defined };
    return this.current();
  }
}
