/**
 * `tradeops switchover` — a planned change of primary with both nodes up (I5, I9): maintenance on
 * the primary's host, a rehearsal of the DR procedure. The primary stops cleanly, so nothing is
 * lost and it rejoins without a rewind:
 *
 *   check both nodes → pause trading → let WAL archiving catch up (so the stop is quick) → take the
 *   primary out of the traffic endpoint (the write gap starts) → stop it cleanly, check the standby
 *   received everything → promote → route and prove a write (the gap ends) → record → rejoin the old
 *   primary as the new standby → the app follows → resume trading
 */
import { z } from "zod";
import { Refusal } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { pauseReasonFlag } from "./flags.ts";
import { table } from "./format.ts";
import {
  appReconnectedStep,
  lagLine,
  pauseTradingStep,
  recoveryState,
  replicationOf,
  resumeTradingStep,
  RoleChange,
  switchSteps,
  tradingLine,
} from "./role-change.ts";

export const switchover = defineRunbook({
  command: ["switchover"],
  name: "switchover",
  summary: "planned change of primary, both nodes up: clean stop, no loss, the old primary rejoins as standby",
  features: ["I5", "I9"],
  mutates: true,
  args: z.object({
    reason: pauseReasonFlag,
  }),
  steps: (args, { outputs }) => {
    const { primary, standby } = outputs.database;
    if (!standby) throw new Refusal("the stack has no standby to switch over to");
    const change = new RoleChange(outputs, primary, standby, args.reason ?? `switchover ${primary.name} → ${standby.name}`);
    return [
      {
        name: `Check that ${primary.name} takes writes and ${standby.name} streams from it`,
        readOnly: true,
        action: async (ctx) => {
          ctx.record("startedAt", Date.now());
          const [primaryState, standbyState] = await Promise.all([recoveryState(outputs, primary, ctx), recoveryState(outputs, standby, ctx)]);
          if (typeof primaryState === "object") {
            throw new Refusal(`${primary.name} does not answer (${primaryState.noAnswer}): a switchover needs both nodes`, `if ${primary.name} is lost, this is a failover: \`tradeops failover\``);
          }
          if (primaryState) {
            throw new Refusal(`${primary.name} does not take writes: this is a failover, not a switchover`, "`tradeops failover` (or `tradeops failback` to go back to the home primary)");
          }
          // The primary's view of the stream is not enough: a standby whose walreceiver streams but
          // which takes no connection would be found out only after the primary was stopped.
          if (typeof standbyState === "object") {
            throw new Refusal(`${standby.name} does not answer (${standbyState.noAnswer}): a switchover needs a standby it can promote`, `find out why (\`tradeops health\`), then switch over`);
          }
          const replication = await replicationOf(outputs, primary, standby, ctx);
          if (!replication) throw new Refusal(`${standby.name} does not stream from ${primary.name}: a switchover needs a standby that has everything`, "bring it back (`tradeops sandbox up`, or `tradeops failback`), then switch over");
          ctx.log(`${standby.name} streams (${replication.syncState}), replay lag ${lagLine(replication.lagBytes)}`);
        },
      },
      pauseTradingStep(change),
      ...switchSteps(change),
      appReconnectedStep(change),
      resumeTradingStep(change),
    ];
  },
  report: (facts) => {
    const gap = facts.fencedAt && facts.firstWriteAt ? ((facts.firstWriteAt as number) - (facts.fencedAt as number)) / 1000 : null;
    const total = facts.startedAt && facts.firstWriteAt ? ((facts.firstWriteAt as number) - (facts.startedAt as number)) / 1000 : null;
    const rows = [
      ["write gap (out of the endpoint → first write on the new primary)", gap === null ? "-" : `${gap.toFixed(3)} s`],
      ["first step → first write", total === null ? "-" : `${total.toFixed(3)} s`],
      ["trading", tradingLine(facts)],
    ];
    return { text: table(["SWITCHOVER", "VALUE"], rows), json: { writeGapSeconds: gap, secondsToFirstWrite: total, tradingPaused: facts.tradingPaused ?? null, tradingResumed: facts.tradingResumed ?? null } };
  },
});
