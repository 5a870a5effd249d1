/**
 * `tradeops dr failback` — I6 ("verify primary, sync from DR, DNS back, DR to standby mode"): after
 * `dr activate`, bring the platform home without rebuilding it from scratch:
 *
 *   the home node follows the DR node (pg_rewind from it) and catches up → planned switch back:
 *   pause trading at the DR site, its app back to pilot light, the DR node stopped cleanly (its
 *   shutdown checkpoint streams home) and the home node checked to have everything → promote the
 *   home node → its traffic endpoint routes to it, a write proves it → the home site's app → users
 *   back to the home site → resume trading → the home site's standby rejoins (pg_rewind) → the DR
 *   node goes back to a standby fed from the repository, current again.
 *
 * Every step checks the live state first, so a re-run after a fix resumes where it stopped; with
 * the primary site already home it does nothing and says so. CloudNativePG's replica clusters have
 * no such path (#9273: "promotionToken is only allowed for primary clusters").
 */
import { z } from "zod";
import type { PgNode } from "../contract/outputs.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { onPg } from "./connect.ts";
import { Refusal, StepFailure } from "./engine/errors.ts";
import { defineRunbook, type Step, type StepContext } from "./engine/runbook.ts";
import { pauseReasonFlag } from "./flags.ts";
import { table } from "./format.ts";
import { drNodeState, drSiteOutputs, drTarget } from "./dr-state.ts";
import { drPlatformOf, drSiteOf, type DrPlatform } from "./platform/dr-site.ts";
import {
  currentLsn,
  inRecovery,
  lsnDiff,
  pauseTradingStep,
  promoteStep,
  receivedAll,
  recordPrimaryStep,
  rejoinStep,
  replicationOf,
  resumeTradingStep,
  RoleChange,
  routeTrafficStep,
  until,
} from "./role-change.ts";

/** The home node gets this long to catch up with the DR node before the switch back. */
const CATCH_UP_MS = 60_000;
/** The DR node gets this long to replay the home node's new timeline from the repository. */
const DR_CURRENT_MS = 60_000;

const reseededBy = (how: string) => (how === "rewound" ? "pg_rewind" : how === "no rewind required" ? "nothing to rewind" : how);

export const drFailback = defineRunbook({
  command: ["dr", "failback"],
  name: "dr-failback",
  summary: "after `dr activate`: re-seed the primary site from the DR site (pg_rewind), switch back, DR node back to a standby fed from the repository",
  features: ["I5", "I6", "I9"],
  mutates: true,
  target: drTarget,
  args: z.object({
    reason: pauseReasonFlag,
  }),
  steps: (args, { outputs }) => {
    const dr = drSiteOf(outputs);
    const drNode = dr.database;
    const nodes = [outputs.database.primary, outputs.database.standby].filter((node): node is PgNode => node !== undefined);
    const home = nodes.find((node) => node.name === (outputs.database.homePrimary ?? nodes[0]!.name)) ?? nodes[0]!;
    const other = nodes.find((node) => node !== home);
    const atDr = drSiteOutputs(outputs, dr);
    const reason = args.reason ?? `DR failback: ${drNode.name} → ${home.name}`;
    // At the DR site: the pause and the DR node's side of the switch; at home: promotion, endpoint, record.
    const leaving = new RoleChange(atDr, drNode, home, reason);
    const coming = new RoleChange(outputs, drNode, home, reason);
    let platform: Promise<DrPlatform> | undefined;
    const site = () => (platform ??= drPlatformOf(outputs));
    let alreadyHome = false;
    const homeIsPrimary = async (ctx: StepContext) => alreadyHome || (await inRecovery(outputs, home, ctx)) === false;
    let drLsn: string | undefined;
    let restoredHome = false;
    const steps: Step[] = [
      {
        name: `Find where writes go (home: ${home.name}, DR: ${drNode.name}) and check the primary site is back`,
        readOnly: true,
        action: async (ctx) => {
          ctx.record("startedAt", Date.now());
          const [drState, homeState] = await Promise.all([drNodeState(outputs, drNode, ctx.signal), inRecovery(outputs, home, ctx)]);
          if (homeState === false && drState.inRecovery !== false) {
            const [recorded, routed, standbyStreams] = await Promise.all([
              (await site()).recordedSite(),
              (await site()).routedSite().catch(() => undefined),
              other ? replicationOf(outputs, home, other, ctx).then(Boolean) : Promise.resolve(true),
            ]);
            // Home means the whole home topology: the DR node a standby again, and the home standby streaming.
            if (recorded !== "dr" && routed !== "dr" && drState.inRecovery === true && standbyStreams) {
              alreadyHome = true;
              ctx.record("alreadyHome", true);
              ctx.log(`${home.name} takes writes and the primary site is active: nothing to fail back`);
              return;
            }
            ctx.log(`${home.name} already takes writes: an earlier run switched back; the steps below finish what it left`);
            return;
          }
          if (homeState === false && drState.inRecovery === false) {
            throw new Refusal(`both ${home.name} and ${drNode.name} take writes: two primaries`, `fence one by hand (stop it), find which has the newer writes, then re-run`);
          }
          if (!drState.answers) throw new Refusal(`${drNode.name} does not answer (${drState.error}) and ${home.name} is not a primary: there is nothing to fail back from`, "bring the DR site's node back first");
          if (drState.inRecovery) throw new Refusal(`${drNode.name} is a standby: the DR site is not active`, "`tradeops dr status`; failback follows `tradeops dr activate`");
          // I6 "verify primary": the primary site must be back before anything moves.
          const problems = await (await site()).primarySiteProblems();
          if (problems.length) throw new Refusal(`the primary site is not back: ${problems.join("; ")}`, "bring it back first (`tradeops sandbox up` starts what the sandbox can), then re-run");
        },
      },
      {
        name: `Re-seed ${home.name} from ${drNode.name} and let it catch up`,
        plan: `pg_rewind of ${home.name} from ${drNode.name} (when it cannot work: a fresh backup of ${drNode.name} restored with --delta); it starts as ${drNode.name}'s standby; up to ${CATCH_UP_MS / 1000} s to catch up`,
        isDone: async (ctx) => (await homeIsPrimary(ctx)) || (await replicationOf(atDr, drNode, home, ctx))?.lagBytes === 0,
        action: async (ctx) => {
          const streaming = await replicationOf(atDr, drNode, home, ctx);
          if (!streaming) {
            const how = await (await site()).followDr(home, (line) => ctx.log(line));
            restoredHome = how === "restored from a fresh backup of pg-dr";
            ctx.record("homeRejoinedBy", reseededBy(how));
          }
          if (!(await until(async () => (await replicationOf(atDr, drNode, home, ctx))?.lagBytes === 0, CATCH_UP_MS, ctx.signal, 100))) {
            throw new StepFailure(`${home.name} streams from ${drNode.name} but has not caught up within ${CATCH_UP_MS / 1000} s`, "re-run once `tradeops dr status` shows the load at the DR site dropped");
          }
        },
      },
      { ...pauseTradingStep(leaving), isDone: homeIsPrimary },
      {
        name: "Put the DR site's app back to pilot light",
        plan: dr.app?.kind === "kubernetes" ? `scale ${dr.app.deployments.map((d) => d.name).join(", ")} to 0` : "stop the DR site's ops API",
        isDone: homeIsPrimary,
        action: async (ctx) => {
          await (await site()).stopDrApp((line) => ctx.log(line));
        },
      },
      {
        name: `Stop ${drNode.name} cleanly and check ${home.name} received everything it wrote`,
        plan: `pg_ctl stop -m fast (the shutdown checkpoint streams to ${home.name}); ${home.name}'s received WAL must reach ${drNode.name}'s last`,
        isDone: homeIsPrimary,
        action: async (ctx) => {
          drLsn = await currentLsn(outputs, drNode, ctx);
          ctx.record("fencedAt", Date.now());
          await (await site()).stopDrNode((line) => ctx.log(line));
        },
        verify: async (ctx) => {
          if (drLsn) await receivedAll(outputs, drNode, home, drLsn, ctx, `start ${drNode.name} again (\`tradeops sandbox up\`) and re-run`);
        },
      },
      promoteStep(coming),
      {
        name: "Start the primary site's traffic endpoint",
        plan: "HAProxy in front of the pair, when a whole-site loss took it too",
        action: async (ctx) => (await site()).startPrimaryEndpoint((line) => ctx.log(line)),
      },
      // Always run: it proves a write at home (the report's figures) even where starting the endpoint already routed it.
      { ...routeTrafficStep(coming), isDone: async () => false },
      recordPrimaryStep(coming),
      {
        name: "Start the primary site's app",
        plan: "its ops API, ready when it reaches the database and Redis",
        isDone: async (ctx) => (await opsApiRequest(outputs.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 2_000 }).catch(() => undefined))?.status === 200,
        action: async (ctx) => (await site()).startPrimaryApp((line) => ctx.log(line)),
      },
      {
        name: "Send users back to the primary site",
        plan: dr.dns ? `the site switch, and the PRIMARY half of ${dr.dns.recordName} → the primary load balancer (Route53 UPSERT)` : "the site switch routes users to the primary site's API",
        isDone: async () => (await (await site()).routedSite()) === "primary",
        action: async (ctx) => ctx.record("trafficTo", await (await site()).routeSite("primary")),
      },
      resumeTradingStep(leaving, { outputs, site: "primary site" }),
      {
        name: "Record the primary site as the active site",
        isDone: async () => alreadyHome || (await (await site()).recordedSite()) === "primary",
        action: async (ctx) => ctx.record("recordedIn", await (await site()).recordActiveSite("primary")),
      },
      // A home node restored from a backup has no WAL from before it: the other node is cloned, not rewound.
      ...(other ? [rejoinStep(outputs, other, home, () => coming.platform(), () => (restoredHome ? `${home.name} was restored from a backup: a rewind from it lacks older WAL` : undefined))] : []),
      {
        name: `Make ${drNode.name} a standby fed from the repository again, and current`,
        plan: `pg_rewind from ${home.name} if it went past the switch; standby.signal and archive-get; a WAL switch on ${home.name} it must replay within ${DR_CURRENT_MS / 1000} s`,
        isDone: async (ctx) => alreadyHome && (await drNodeState(outputs, drNode, ctx.signal)).inRecovery === true,
        action: async (ctx) => {
          const state = await drNodeState(outputs, drNode, ctx.signal);
          if (state.inRecovery !== true) ctx.record("drRejoinedBy", (await (await site()).drBackToStandby(home, (line) => ctx.log(line))) === "rewound" ? "pg_rewind" : "nothing to rewind");
          const switched = await onPg(outputs, home, async (client) => (await client.query<{ end: string }>("select pg_switch_wal()::text as end")).rows[0]!.end, { signal: ctx.signal, timeoutMs: 3_000 });
          const current = await until(async () => {
            const now = await drNodeState(outputs, drNode, ctx.signal);
            return now.inRecovery === true && now.lsn !== undefined && lsnDiff(now.lsn, switched) >= 0;
          }, DR_CURRENT_MS, ctx.signal, 250);
          if (!current) throw new StepFailure(`${drNode.name} did not replay ${home.name}'s WAL up to ${switched} within ${DR_CURRENT_MS / 1000} s`, `read ${drNode.name}'s log (archive-get, timeline); \`tradeops dr status\``);
          ctx.record("drCurrentAt", Date.now());
        },
      },
    ];
    return steps;
  },
  report: (facts) => {
    if (facts.alreadyHome) return { text: "the primary site is already home and active: nothing was done", json: { alreadyHome: true } };
    const seconds = facts.startedAt && facts.firstWriteAt ? ((facts.firstWriteAt as number) - (facts.startedAt as number)) / 1000 : null;
    const gap = facts.fencedAt && facts.firstWriteAt ? ((facts.firstWriteAt as number) - (facts.fencedAt as number)) / 1000 : null;
    const total = facts.startedAt && facts.drCurrentAt ? ((facts.drCurrentAt as number) - (facts.startedAt as number)) / 1000 : null;
    const rejoined = Object.entries(facts).filter(([key]) => key.endsWith(".rejoinedBy")).map(([key, how]) => [`${key.replace(".rejoinedBy", "")} rejoined by`, String(how)]);
    const rows = [
      ["failback (first step → first write at home)", seconds === null ? "-" : `${seconds.toFixed(3)} s`],
      ["write gap of the switch back", gap === null ? "-" : `${gap.toFixed(3)} s`],
      ["home node re-seeded by", String(facts.homeRejoinedBy ?? "-")],
      ...rejoined,
      ["DR node back to standby by", String(facts.drRejoinedBy ?? "-")],
      ["whole failback (until the DR node is current)", total === null ? "-" : `${total.toFixed(3)} s`],
      ["traffic", String(facts.trafficTo ?? "-")],
    ];
    return {
      text: table(["DR FAILBACK", "VALUE"], rows),
      json: { alreadyHome: false, failbackSeconds: seconds, writeGapSeconds: gap, totalSeconds: total, homeRejoinedBy: facts.homeRejoinedBy ?? null, drRejoinedBy: facts.drRejoinedBy ?? null, trafficTo: facts.trafficTo ?? null, tradingResumed: facts.tradingResumed ?? null },
    };
  },
});
