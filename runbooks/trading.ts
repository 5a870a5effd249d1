/**
 * The controls an operator reaches for first, through the bot's ops API: pause and resume trading
 * (I9), list and close positions (I3), the circuit breaker (I2, T2). Each is the seed's `curl`
 * made safe: the bearer token from the outputs (masked), a deadline, the answer checked against
 * the protocol, and an audit line.
 */
import { z } from "zod";
import {
  CircuitBreakerStatus,
  CloseAllResult,
  PositionList,
  TradingStatus,
  type Position,
} from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { StepFailure } from "./engine/errors.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { table } from "./format.ts";
import { apiReadingRunbook, callOpsApi } from "./ops-api.ts";

const reasonText = z.string().trim().min(1).max(500);

export const readTradingStatus = async (outputs: StackOutputs, ctx: Pick<StepContext, "signal">) =>
  (await callOpsApi(outputs, "/api/trading/status", { 200: TradingStatus }, ctx)).body;

export const readPositions = async (outputs: StackOutputs, ctx: Pick<StepContext, "signal">) =>
  (await callOpsApi(outputs, "/api/positions", { 200: PositionList }, ctx)).body.positions;

/** POST /api/positions/close-all; returns how many the API closed. */
export async function closeAllPositions(outputs: StackOutputs, why: string, ctx: StepContext): Promise<number> {
  const { closed } = (await callOpsApi(outputs, "/api/positions/close-all", { 200: CloseAllResult }, ctx, { reason: why })).body;
  const left = await readPositions(outputs, ctx);
  if (left.length) throw new StepFailure(`${left.length} position(s) still open after close-all`, "run `tradeops positions list` and close them at the exchange");
  return closed;
}

export function tradingStatusLine(status: TradingStatus): string {
  if (!status.paused) return "trading: running";
  return `trading: PAUSED${status.kill_switch_active ? " (kill switch active)" : ""}${status.reason ? ` — ${status.reason}` : ""}${status.since ? ` since ${status.since}` : ""}`;
}

export function positionsTable(positions: Position[]): string {
  if (!positions.length) return "no open positions";
  return table(
    ["ID", "SYMBOL", "SIDE", "QUANTITY", "ENTRY PRICE", "OPENED"],
    positions.map((p) => [p.id, p.symbol, p.side, p.quantity, p.entry_price, p.opened_at]),
  );
}

const statusReport = (facts: Record<string, unknown>) => {
  const status = facts.trading as TradingStatus | undefined;
  return { text: status ? tradingStatusLine(status) : "trading status unknown", json: status ?? null };
};

export const tradingPause = defineRunbook({
  command: ["trading", "pause"],
  name: "trading-pause",
  summary: "pause trading through the ops API: no new orders until resumed",
  features: ["I9"],
  mutates: true,
  args: z.object({ reason: flag(reasonText.default("paused by operator"), { description: "why: goes to the API and the audit log", placeholder: "text" }) }),
  steps: ({ reason: why }, { outputs }) => [
    {
      name: "Pause trading through the ops API",
      plan: `POST /api/trading/pause {reason: ${JSON.stringify(why)}}`,
      action: async (ctx) => ctx.record("trading", (await callOpsApi(outputs, "/api/trading/pause", { 200: TradingStatus }, ctx, { reason: why })).body),
      verify: async (ctx) => {
        if (!(await readTradingStatus(outputs, ctx)).paused) throw new StepFailure("the API still reports trading running", "read the app's log");
      },
      undo: { plan: "tradeops trading resume", run: async (ctx) => void (await callOpsApi(outputs, "/api/trading/resume", { 200: TradingStatus }, ctx, {})) },
    },
  ],
  report: statusReport,
});

export const tradingResume = defineRunbook({
  command: ["trading", "resume"],
  name: "trading-resume",
  summary: "resume trading through the ops API (refused while the kill switch is active)",
  features: ["I9"],
  mutates: true,
  args: z.object({}),
  steps: (_args, { outputs }) => [
    {
      name: "Resume trading through the ops API",
      plan: "POST /api/trading/resume; the API refuses (409) while the kill switch is active",
      action: async (ctx) => ctx.record("trading", (await callOpsApi(outputs, "/api/trading/resume", { 200: TradingStatus }, ctx, {})).body),
    },
  ],
  report: statusReport,
});

export const tradingStatus = apiReadingRunbook({
  command: ["trading", "status"],
  summary: "is trading paused, why and since when, and is the kill switch active",
  features: ["I9", "I1"],
  step: "Read the trading status",
  path: "/api/trading/status",
  schema: TradingStatus,
  fact: "trading",
  report: (status) => ({ text: tradingStatusLine(status) }),
});

export const positionsList = apiReadingRunbook({
  command: ["positions", "list"],
  summary: "the open positions, oldest first",
  features: ["I3", "I9"],
  step: "Read the open positions",
  path: "/api/positions",
  schema: PositionList,
  fact: "positions",
  report: ({ positions }) => ({ text: positionsTable(positions) }),
});

export const positionsCloseAll = defineRunbook({
  command: ["positions", "close-all"],
  name: "positions-close-all",
  summary: "close every open position (destructive: --yes), printing what was closed",
  features: ["I3"],
  mutates: true,
  args: z.object({ reason: flag(reasonText, { description: "why: goes to each closed position and the audit log", placeholder: "text" }) }),
  steps: ({ reason: why }, { outputs }) => [
    {
      name: "List the open positions",
      plan: "GET /api/positions: what is about to be closed",
      readOnly: true,
      action: async (ctx) => ctx.record("open", await readPositions(outputs, ctx)),
    },
    {
      name: "Close all positions",
      plan: `POST /api/positions/close-all {reason: ${JSON.stringify(why)}}; then no position may be open`,
      destructive: true,
      action: async (ctx) => ctx.record("closed", await closeAllPositions(outputs, why, ctx)),
    },
  ],
  report: (facts) => {
    const open = (facts.open as Position[] | undefined) ?? [];
    const closed = facts.closed as number | undefined;
    const text = closed === undefined ? `nothing closed; open positions:\n${positionsTable(open)}` : `closed ${closed} position(s):\n${positionsTable(open)}`;
    return { text, json: { closed: closed ?? 0, positions: open } };
  },
});

const breakerReport = (facts: Record<string, unknown>) => {
  const status = facts.circuitBreaker as CircuitBreakerStatus | undefined;
  if (!status) return { text: "circuit breaker state unknown", json: null };
  const opened = status.opened_at ? ` since ${status.opened_at}${status.reason ? ` (${status.reason})` : ""}` : "";
  return { text: `circuit breaker: ${status.state}${opened}; ${status.failures} trip(s) since the last reset; resets itself to HALF_OPEN after ${status.reset_timeout_s} s`, json: status };
};

export const circuitBreakerStatus = apiReadingRunbook({
  command: ["circuit-breaker", "status"],
  summary: "the circuit breaker's state (CLOSED, OPEN, HALF_OPEN) and trips",
  features: ["I2", "T2"],
  step: "Read the circuit breaker",
  path: "/api/circuit-breaker/status",
  schema: CircuitBreakerStatus,
  fact: "circuitBreaker",
  report: (status) => breakerReport({ circuitBreaker: status }),
});

export const circuitBreakerReset = defineRunbook({
  command: ["circuit-breaker", "reset"],
  name: "circuit-breaker-reset",
  summary: "reset the circuit breaker to CLOSED (after the cause is fixed)",
  features: ["I2", "T2"],
  mutates: true,
  args: z.object({}),
  steps: (_args, { outputs }) => [
    {
      name: "Reset the circuit breaker",
      plan: "POST /api/circuit-breaker/reset; the state must read CLOSED",
      isDone: async (ctx) => (await callOpsApi(outputs, "/api/circuit-breaker/status", { 200: CircuitBreakerStatus }, ctx)).body.state === "CLOSED",
      action: async (ctx) => ctx.record("circuitBreaker", (await callOpsApi(outputs, "/api/circuit-breaker/reset", { 200: CircuitBreakerStatus }, ctx, {})).body),
      verify: async (ctx) => {
        const status = (await callOpsApi(outputs, "/api/circuit-breaker/status", { 200: CircuitBreakerStatus }, ctx)).body;
        ctx.record("circuitBreaker", status);
        if (status.state !== "CLOSED") throw new StepFailure(`the breaker reads ${status.state} after the reset`, "read the app's log");
      },
    },
  ],
  report: breakerReport,
});
