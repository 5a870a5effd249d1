/**
 * `tradeops stop` / `tradeops start` — Z4 and I9, the seeds' orderly sequences:
 *
 *   stop   pause trading → show the open positions (close them only with --close-positions) →
 *          stop the app gracefully (SIGTERM: it refuses new requests and drains in-flight ones,
 *          30 s cap; the report says how the drain ended) → stop the worker, Redis and the
 *          database, keeping every byte of data (Z4: "stop keeping data", never `down -v`)
 *   start  the infrastructure first (database primary, then standby, then Redis) and wait until
 *          it answers → the app → `health`, every component green
 *
 * Trading stays paused after `start`: resuming is an explicit decision (`tradeops trading resume`).
 */
import { z } from "zod";
import { TradingStatus, type Position } from "../contract/ops-api.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { health } from "./health.ts";
import { ApiUnavailable, callOpsApi } from "./ops-api.ts";
import { appPlatformOf, DRAIN_CAP_S, type AppStop } from "./platform/app.ts";
import { checkPrimary, checkRedis } from "./probes.ts";
import { until } from "./role-change.ts";
import { closeAllPositions, positionsTable, readPositions } from "./trading.ts";

const STOP_REASON = "orderly stop (tradeops stop)";

export const stop = defineRunbook({
  command: ["stop"],
  name: "stop",
  summary: "orderly stop: pause trading, show (or close) positions, drain and stop the app, then the infrastructure, keeping data",
  features: ["Z4", "I9", "S3"],
  mutates: true,
  args: z.object({
    closePositions: flag(z.boolean().optional(), { description: "close the open positions first (destructive: needs the confirmation)" }),
  }),
  steps: ({ closePositions }, { outputs }) => {
    let apiAnswers = true;
    const platform = () => appPlatformOf(outputs);
    return [
      {
        name: "Pause trading",
        plan: "POST /api/trading/pause (I9 step 1); an app that does not answer places no order either: noted, and the stop goes on",
        action: async (ctx) => {
          try {
            ctx.record("trading", (await callOpsApi(outputs, "/api/trading/pause", { 200: TradingStatus }, ctx, { reason: STOP_REASON })).body);
          } catch (error) {
            if (!(error instanceof ApiUnavailable)) throw error;
            apiAnswers = false;
            ctx.record("trading", null);
            ctx.log(`${oneLine(error)}: going on`);
          }
        },
      },
      {
        name: "Show the open positions",
        plan: "GET /api/positions (I9 step 2); they stay open unless --close-positions",
        readOnly: true,
        action: async (ctx) => {
          if (!apiAnswers) return ctx.log("the API does not answer: open positions unknown");
          const open = await readPositions(outputs, ctx);
          ctx.record("openPositions", open);
          ctx.log(positionsTable(open));
          if (open.length && !closePositions) ctx.log(`${open.length} position(s) stay open (pass --close-positions to close them first)`);
        },
      },
      ...(closePositions
        ? [
            {
              name: "Close the open positions",
              plan: "POST /api/positions/close-all (I9 step 3); then none may be open",
              destructive: true,
              action: async (ctx: Parameters<typeof closeAllPositions>[2]) => {
                if (!apiAnswers) throw new StepFailure("the API does not answer: positions cannot be closed through it", "close them at the exchange, or start the app and re-run");
                ctx.record("closedPositions", await closeAllPositions(outputs, STOP_REASON, ctx));
              },
            },
          ]
        : []),
      {
        name: "Stop the app gracefully",
        plan: `SIGTERM: the app refuses new requests, finishes in-flight ones and closes its connections, within ${DRAIN_CAP_S} s (Z4); the report says whether it drained`,
        isDone: async () => !(await (await platform()).appRunning()),
        action: async (ctx) => {
          const stopped = await (await platform()).stopApp((line) => ctx.log(line));
          ctx.record("appStop", stopped);
          ctx.log(`app: ${stopped.outcome}${stopped.drain ? `, ${stopped.drain}` : ""}`);
        },
        undo: { plan: "start the app", run: async (ctx) => (await platform()).startApp((line) => ctx.log(line)) },
      },
      {
        name: "Stop the worker, Redis and the database, keeping their data",
        plan: "the worker, Redis, the traffic endpoint, the primary (its shutdown checkpoint streams to the standby), then the standby; no data dir or volume is touched",
        action: async (ctx) => ctx.record("infraStopped", await (await platform()).stopInfra((line) => ctx.log(line))),
        undo: { plan: "tradeops start", run: async (ctx) => void (await (await platform()).startInfra((line) => ctx.log(line))) },
      },
    ];
  },
  report: (facts) => {
    const appStop = facts.appStop as AppStop | undefined;
    const open = (facts.openPositions as Position[] | undefined) ?? [];
    const lines = [
      `trading: ${facts.trading ? "paused" : "not paused (the API did not answer)"}`,
      `open positions: ${facts.closedPositions !== undefined ? `${facts.closedPositions} closed` : `${open.length} left open`}`,
      `app: ${appStop ? `${appStop.outcome}${appStop.drain ? ` (${appStop.drain})` : ""}` : "not stopped"}`,
      `infrastructure stopped: ${((facts.infraStopped as string[] | undefined) ?? []).join(", ") || "-"} (data kept)`,
      "start again with `tradeops start`; trading stays paused until `tradeops trading resume`",
    ];
    return { text: lines.join("\n"), json: { appStop: appStop ?? null, drainedCleanly: appStop?.drain === "drained cleanly", openPositions: open, closedPositions: facts.closedPositions ?? null, infraStopped: facts.infraStopped ?? [] } };
  },
});

export const start = defineRunbook({
  command: ["start"],
  name: "start",
  summary: "orderly start: database and Redis first (waits until they answer), then the app, then health",
  features: ["Z4", "I9", "S3"],
  mutates: true,
  args: z.object({}),
  steps: (_args, target) => {
    const { outputs } = target;
    const platform = () => appPlatformOf(outputs);
    return [
      {
        name: "Start the database and Redis, and wait until they answer",
        plan: "the primary, then the standby (until it streams), the traffic endpoint, Redis (Z4: infrastructure first)",
        action: async (ctx) => ctx.record("infraStarted", await (await platform()).startInfra((line) => ctx.log(line))),
        verify: async (ctx) => {
          const ready = await until(async () => Boolean((await checkPrimary(outputs, { signal: ctx.signal, timeoutMs: 2_000 })) && (await checkRedis(outputs, { signal: ctx.signal, timeoutMs: 2_000 }))), 60_000, ctx.signal, 250);
          if (!ready) throw new StepFailure("the database or Redis does not answer 60 s after its start", "read their logs (`tradeops sandbox status` names them)");
        },
      },
      {
        name: "Start the app and wait until it is ready",
        plan: "start it; GET /health/ready must answer 200 (it reaches the database and Redis)",
        isDone: async (ctx) => (await opsApiRequest(outputs.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 1_000 }).catch(() => undefined))?.status === 200,
        action: async (ctx) => {
          await (await platform()).startApp((line) => ctx.log(line));
          const ready = await until(async () => (await opsApiRequest(outputs.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 1_000 })).status === 200, 30_000, ctx.signal, 250);
          if (!ready) throw new StepFailure("the app is not ready 30 s after its start", "read the app's log");
        },
      },
      ...health.steps({}, target),
    ];
  },
  report: (facts) => {
    const started = (facts.infraStarted as string[] | undefined) ?? [];
    const checked = facts.health as { status: string } | undefined;
    const text = [`started: ${started.length ? started.join(", ") : "nothing (the infrastructure was running)"}, then the app`, `health: ${checked?.status ?? "not checked"}`, "trading stays paused until `tradeops trading resume`"].join("\n");
    return { text, json: { infraStarted: started, health: facts.health ?? null } };
  },
});
