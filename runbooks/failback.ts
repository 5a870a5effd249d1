/**
 * `tradeops failback` — I6 ("verify primary, sync from DR, DNS back, DR to standby", for the pair):
 * after a failover moved the primary away from its home node, bring the home node back as a
 * standby (pg_rewind, or a fresh clone when that cannot work — said so), let it catch up, then
 * switch back to it in a planned switchover. Neither Patroni nor CloudNativePG automates this.
 *
 * It converges: every step checks the live state first, so a second run (or a run after a step
 * failed and was fixed) skips what is done; in the home topology it does nothing and says so.
 */
import { z } from "zod";
import { Refusal } from "./engine/errors.ts";
import { defineRunbook, type Step } from "./engine/runbook.ts";
import { pauseReasonFlag } from "./flags.ts";
import { table } from "./format.ts";
import { appReconnectedStep, livePrimary, pauseTradingStep, rejoinStep, replicationOf, resumeTradingStep, RoleChange, switchSteps, tradingLine } from "./role-change.ts";

export const failback = defineRunbook({
  command: ["failback"],
  name: "failback",
  summary: "after a failover: rejoin the home node (pg_rewind or a fresh clone) and switch back to it",
  features: ["I5", "I6", "I9"],
  mutates: true,
  args: z.object({
    reason: pauseReasonFlag,
  }),
  steps: (args, { outputs }) => {
    const { primary: recorded, standby } = outputs.database;
    if (!standby) throw new Refusal("the stack has no second node to fail back to");
    const nodes = [recorded, standby];
    const home = nodes.find((node) => node.name === (outputs.database.homePrimary ?? nodes.map((n) => n.name).sort()[0]))!;
    const away = nodes.find((node) => node !== home)!;
    const change = new RoleChange(outputs, away, home, args.reason ?? `failback to ${home.name}`);
    let homeIsPrimary = false;
    let alreadyHome = false;
    const steps: Step[] = [
      {
        name: `Find which node takes writes (home: ${home.name})`,
        readOnly: true,
        action: async (ctx) => {
          ctx.record("startedAt", Date.now());
          const live = await livePrimary(outputs, ctx);
          if (!live.primary) {
            throw new Refusal(
              live.writable.length ? `both ${live.writable.join(" and ")} take writes: split brain` : `no node takes writes${live.silent.length ? `: ${live.silent.join("; ")}` : ""}`,
              live.writable.length ? "fence one of them first (`tradeops failover` decides which), then fail back" : "bring a primary back (`tradeops failover` or `tradeops restore`) before failing back",
            );
          }
          homeIsPrimary = live.primary.name === home.name;
          ctx.record("primaryAtStart", live.primary.name);
          const rejoined = await replicationOf(outputs, home, away, ctx);
          if (homeIsPrimary && rejoined) {
            alreadyHome = true;
            ctx.record("alreadyHome", true);
            ctx.log(`already in the home topology: ${home.name} primary, ${away.name} streaming (${rejoined.syncState}); nothing to do`);
          }
        },
      },
      // The home node, a fenced former primary, follows the away node first (skipped when it is the primary already).
      skipWhen(() => homeIsPrimary, rejoinStep(outputs, home, away, () => change.platform())),
    ];
    return [
      ...steps,
      skipWhen(() => homeIsPrimary, pauseTradingStep(change)),
      ...switchSteps(change),
      skipWhen(() => alreadyHome, appReconnectedStep(change)),
      skipWhen(() => alreadyHome, resumeTradingStep(change)),
    ];
  },
  report: (facts) => {
    if (facts.alreadyHome) return { text: "already in the home topology: nothing was done", json: { alreadyHome: true } };
    const rejoined = Object.entries(facts).filter(([key]) => key.endsWith(".rejoinedBy")).map(([key, how]) => [key.replace(".rejoinedBy", ""), String(how)]);
    const seconds = facts.startedAt && facts.firstWriteAt ? ((facts.firstWriteAt as number) - (facts.startedAt as number)) / 1000 : null;
    const gap = facts.fencedAt && facts.firstWriteAt ? ((facts.firstWriteAt as number) - (facts.fencedAt as number)) / 1000 : null;
    const rows = [
      ["failback (first step → first write on the home primary)", seconds === null ? "-" : `${seconds.toFixed(3)} s`],
      ["write gap of the switch back", gap === null ? "-" : `${gap.toFixed(3)} s`],
      ...rejoined.map(([node, how]) => [`${node} rejoined by`, how!]),
      ["trading", tradingLine(facts)],
    ];
    return { text: table(["FAILBACK", "VALUE"], rows), json: { alreadyHome: false, failbackSeconds: seconds, writeGapSeconds: gap, rejoinedBy: Object.fromEntries(rejoined) } };
  },
});

/** The step, skipped when `skip()` says its whole purpose is already served. */
function skipWhen(skip: () => boolean, step: Step): Step {
  return { ...step, isDone: async (ctx) => skip() || ((await step.isDone?.(ctx)) ?? false) };
}
