/**
 * `tradeops dr activate` — I5 ("whole site down: activate the DR site"), I6's DR checklist as steps:
 *
 *   verify DB sync (refuse beyond the lag limit unless forced) → pause trading → fence the primary
 *   site (its API stopped, its nodes out of the traffic endpoint and stopped when they answer —
 *   after a WAL switch the repository receives, so a planned move loses nothing — and made to come
 *   back as standbys) → replay the repository's last WAL on the DR node → promote it → start the DR
 *   app from pilot light → prove a write and the API's readiness at the DR site → send users there
 *   (the site switch; the Route53 pair) → resume trading there → record the DR site active
 *
 * The report: RTO (first step → first write accepted at the DR site) and the RPO — measured exactly
 * when the primary answered at the fence (its last WAL position against the DR node's end of
 * recovery), else the time up to which the DR site has every commit (the last one it replayed).
 */
import { z } from "zod";
import type { PgNode, StackOutputs } from "../contract/outputs.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { onPg } from "./connect.ts";
import { operator } from "./engine/audit.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";
import { flag, pauseReasonFlag } from "./flags.ts";
import { bytes, table } from "./format.ts";
import { drNodeState, drSiteOutputs, drTarget, measureDrLag, primaryWalState, replayedPast, repositoryLastWal } from "./dr-state.ts";
import { drPlatformOf, drSiteOf, type DrPlatform } from "./platform/dr-site.ts";
import { lsnDiff, pauseTradingStep, promoteStep, resumeTradingStep, RoleChange, tradingLine, until } from "./role-change.ts";
import { writeThroughTraffic } from "./probes.ts";

/** After a WAL switch, the primary's archiver gets this long to put the segment in the repository. */
const ARCHIVE_SWITCH_MS = 15_000;
/** The DR node gets this long to replay the repository's last segment (archive-get polls every second). */
const REPLAY_WITHIN_MS = 30_000;
/** The DR app gets this long to answer /health/ready once started. */
const APP_READY_MS = 30_000;

export const DrActivateArgs = z.object({
  maxLagSeconds: flag(z.number().int().nonnegative().optional(), {
    description: "refuse when the DR node lacks more than this many seconds of commits",
    placeholder: "seconds",
    defaultText: "dr.maxLagSeconds of the outputs (300)",
  }),
  force: flag(z.boolean().optional(), { description: "activate even beyond --max-lag-seconds (recorded with who and --reason)" }),
  reason: pauseReasonFlag,
});

export const drActivate = defineRunbook({
  command: ["dr", "activate"],
  name: "dr-activate",
  summary: "move the platform to the DR site: fence the primary site, promote the DR node, start the DR app, switch users; RTO and RPO measured",
  features: ["I5", "I6", "I9"],
  mutates: true,
  target: drTarget,
  args: DrActivateArgs,
  steps: (args, { outputs }) => {
    const dr = drSiteOf(outputs);
    if (args.force && !args.reason) throw new Refusal("--force needs --reason: the audit log records who forced a DR activation, and why");
    const maxLag = args.maxLagSeconds ?? dr.maxLagSeconds;
    const { primary, standby } = outputs.database;
    const drNode = dr.database;
    const atDr = drSiteOutputs(outputs, dr);
    const change = new RoleChange(outputs, primary, drNode, args.reason ?? `DR activation: ${outputs.database.primary.name} → ${drNode.name}`);
    let platform: Promise<DrPlatform> | undefined;
    const site = () => (platform ??= drPlatformOf(outputs));
    const drIsPrimary = async (ctx: StepContext) => (await drNodeState(outputs, drNode, ctx.signal)).inRecovery === false;
    /** Where the primary's WAL ended when it answered the fence: what the DR node must replay. */
    let primaryEnd: string | undefined;
    /** The primary answered but its last segment did not reach the repository: the DR site gets what the repository has, and the report counts the rest as lost. */
    let primaryAnswered = false;
    return [
      {
        name: `Check that ${drNode.name} can take over`,
        plan: `${drNode.name} answers and replays from the repository; it lacks at most ${maxLag} s of commits${args.force ? " (or --force)" : ""}`,
        readOnly: true,
        action: async (ctx) => {
          ctx.record("startedAt", Date.now());
          const lag = await measureDrLag(outputs, dr, ctx.signal);
          if (!lag.node.answers) throw new Refusal(`${drNode.name} does not answer (${lag.node.error}): there is no DR site to activate`, "bring the DR node back first (`tradeops sandbox up` on the sandbox)");
          ctx.record("primaryAnswered", lag.primary.answers);
          ctx.record("lagAtStart", { seconds: lag.lagSeconds, bytes: lag.behindBytes, caughtUpWithArchive: lag.caughtUpWithArchive });
          if (lag.node.inRecovery === false) {
            ctx.log(`${drNode.name} already takes writes: an earlier activation promoted it; the steps below finish what it left`);
            return;
          }
          ctx.log(`${drNode.name} lacks ${lag.lagSeconds === null ? "an unknown amount" : `${lag.lagSeconds.toFixed(1)} s`} of commits; ${outputs.database.primary.name} ${lag.primary.answers ? "answers" : "does not answer"}`);
          const beyond = lag.lagSeconds === null || lag.lagSeconds > maxLag;
          if (beyond && !args.force) {
            throw new Refusal(
              `${drNode.name} lacks ${lag.lagSeconds === null ? "an unknown amount of" : `${lag.lagSeconds.toFixed(1)} s of`} commits, beyond --max-lag-seconds ${maxLag}: activating now would lose them`,
              "`tradeops dr status` shows why (archiving? archive-get?); wait for it to catch up, or `tradeops dr activate --force --reason '…'`",
            );
          }
          if (args.force) ctx.record("forced", { who: operator(), reason: args.reason, lagSeconds: lag.lagSeconds, maxLagSeconds: maxLag, neededForce: beyond });
        },
      },
      { ...pauseTradingStep(change), isDone: drIsPrimary },
      {
        name: "Fence the primary site",
        plan:
          `stop its app; take ${primary.name} out of its traffic endpoint; when it answers, switch its WAL and let the repository receive it, then stop it; ` +
          `stop ${standby ? `${standby.name} too` : "its standby"}; both come back as standbys, never as a primary`,
        isDone: drIsPrimary,
        action: async (ctx) => {
          const topology = await change.platform();
          ctx.log(`the primary site's app: ${await (await site()).stopPrimaryApp((line) => ctx.log(line))}`);
          await topology.fenceTraffic(primary).catch((error: unknown) => ctx.log(`its traffic endpoint does not answer (${oneLine(error)}): nothing reaches ${primary.name} through it`));
          const end = await switchAndArchive(outputs, primary, ctx);
          primaryAnswered = end !== undefined;
          primaryEnd = end?.archived ? end.lsn : undefined;
          if (end) ctx.record("primaryEndLsn", end.lsn);
          for (const node of [primary, standby].filter((n): n is PgNode => n !== undefined)) {
            try {
              ctx.log(`${node.name}: ${await topology.stop(node, (line) => ctx.log(line))}`);
              if (node === primary && standby) await topology.demote(primary, standby);
            } catch (error) {
              // A node that answered must be stopped: it could take writes beside the DR site.
              if (node === primary && primaryAnswered) throw new StepFailure(`${primary.name} answers but could not be stopped (${oneLine(error)}): activating now would make two primaries`, `stop ${primary.name} by hand, then re-run`);
              ctx.log(`${node.name} is not reachable (${oneLine(error)}): fence it before its site comes back (docs/deploy.md)`);
            }
          }
          ctx.record("fencedAt", Date.now());
        },
      },
      {
        name: `Replay the repository's last WAL on ${drNode.name}`,
        plan: `up to the primary's last WAL position when it answered the fence, else past the repository's last segment; replay resumed if it was paused; up to ${REPLAY_WITHIN_MS / 1000} s`,
        isDone: drIsPrimary,
        action: async (ctx) => {
          await onPg(outputs, drNode, (client) => client.query("select pg_wal_replay_resume() where pg_get_wal_replay_pause_state() <> 'not paused'"), { signal: ctx.signal, timeoutMs: 3_000 });
          const target = primaryEnd ? undefined : await repositoryLastWal(outputs, ctx.signal);
          const replayed = await until(
            async () => {
              const state = await drNodeState(outputs, drNode, ctx.signal);
              if (!state.lsn) return false;
              return primaryEnd ? lsnDiff(state.lsn, primaryEnd) >= 0 : target ? replayedPast(state.lsn, target) : true;
            },
            REPLAY_WITHIN_MS,
            ctx.signal,
            100,
          );
          const state = await drNodeState(outputs, drNode, ctx.signal);
          ctx.record("drEndLsn", state.lsn ?? null);
          ctx.record("dataUpTo", state.lastReplayAt?.toISOString() ?? null);
          if (!replayed) {
            throw new StepFailure(
              `${drNode.name} did not replay ${primaryEnd ? `up to ${primaryEnd}` : `past ${target}`} within ${REPLAY_WITHIN_MS / 1000} s (at ${state.lsn ?? "?"})`,
              `read ${drNode.name}'s log (archive-get); re-run to wait again`,
            );
          }
          ctx.log(`${drNode.name} replayed to ${state.lsn}${target ? ` (past the repository's last segment ${target})` : ""}; last commit ${state.lastReplayAt?.toISOString() ?? "none"}`);
        },
      },
      promoteStep(change),
      {
        name: "Start the DR site's app from pilot light",
        plan: dr.app?.kind === "kubernetes" ? `scale ${dr.app.deployments.map((d) => `${d.name} to ${d.replicas}`).join(", ")}` : "start the DR site's ops API",
        action: async (ctx) => {
          await (await site()).startDrApp((line) => ctx.log(line));
        },
        undo: { plan: "back to pilot light", run: async (ctx) => (await site()).stopDrApp((line) => ctx.log(line)) },
      },
      {
        name: "Prove the DR site takes writes and its app is ready",
        plan: `one write through ${atDr.database.traffic.host}:${atDr.database.traffic.port}; GET /health/ready on the DR site's API within ${APP_READY_MS / 1000} s`,
        action: async (ctx) => {
          await writeThroughTraffic(atDr, `dr activate: ${change.reason}`, { signal: ctx.signal, timeoutMs: 5_000 }).catch((error: unknown) => {
            throw new StepFailure(`no write went through at the DR site (${oneLine(error)})`, `check ${drNode.name} left recovery (\`tradeops dr status\`)`);
          });
          ctx.record("firstWriteAt", Date.now());
          const ready = await until(async () => (await opsApiRequest(atDr.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 1_000 })).status === 200, APP_READY_MS, ctx.signal, 100);
          if (!ready) throw new StepFailure("the DR site's API is not ready", "read the DR app's log; the database has moved: trading stays paused until it is ready");
        },
      },
      {
        name: "Send users to the DR site",
        plan: dr.dns ? `the site switch, and the PRIMARY half of ${dr.dns.recordName} → the DR load balancer (Route53 UPSERT)` : "the site switch routes users to the DR site's API",
        isDone: async () => (await (await site()).routedSite()) === "dr",
        action: async (ctx) => {
          ctx.record("trafficTo", await (await site()).routeSite("dr"));
        },
      },
      resumeTradingStep(change, { outputs: atDr, site: "DR site" }),
      {
        name: "Record the DR site as the active site",
        plan: "so `sandbox up` brings up the DR site, and `dr failback` knows where to come back from",
        isDone: async () => (await (await site()).recordedSite()) === "dr",
        action: async (ctx) => {
          ctx.record("recordedIn", await (await site()).recordActiveSite("dr"));
        },
      },
    ];
  },
  report: (facts) => {
    const started = facts.startedAt as number | undefined;
    const firstWrite = facts.firstWriteAt as number | undefined;
    const rtoSeconds = started && firstWrite ? (firstWrite - started) / 1000 : null;
    const rpo = rpoOf(facts);
    const fenced = facts.fencedAt !== undefined;
    const rows = [
      ["RTO (first step → first write at the DR site)", rtoSeconds === null ? "-" : `${rtoSeconds.toFixed(3)} s`],
      [
        "RPO",
        !fenced ? "- (the primary site was not fenced)" : rpo.measured ? `${bytes(rpo.lostBytes)} of WAL lost${rpo.lostBytes === 0 ? " (nothing)" : ""}` : `unknown: the primary did not answer; the DR site has every commit up to ${rpo.dataUpTo ?? "?"}`,
      ],
      ["DR node replayed to", String(facts.drEndLsn ?? "-")],
      ["traffic", String(facts.trafficTo ?? "-")],
      ["trading", "tradingPaused" in facts ? tradingLine(facts) : "untouched"],
    ];
    if (facts.forced) rows.push(["forced", JSON.stringify(facts.forced)]);
    return {
      text: table(["DR ACTIVATION", "VALUE"], rows),
      json: { rtoSeconds, rpo, lagAtStart: facts.lagAtStart ?? null, drEndLsn: facts.drEndLsn ?? null, trafficTo: facts.trafficTo ?? null, forced: facts.forced ?? null, tradingPaused: facts.tradingPaused ?? null, tradingResumed: facts.tradingResumed ?? null, recordedIn: facts.recordedIn ?? null },
    };
  },
});

type Rpo = { measured: true; lostBytes: number; dataUpTo: string | null } | { measured: false; dataUpTo: string | null };

function rpoOf(facts: Record<string, unknown>): Rpo {
  const dataUpTo = (facts.dataUpTo as string | null | undefined) ?? null;
  const primaryEnd = facts.primaryEndLsn as string | undefined;
  const drEnd = facts.drEndLsn as string | undefined;
  if (primaryEnd && drEnd) return { measured: true, lostBytes: Math.max(0, lsnDiff(primaryEnd, drEnd)), dataUpTo };
  return { measured: false, dataUpTo };
}

/**
 * With the primary fenced from its endpoint but answering: switch to a new WAL segment and wait
 * until the archiver has put the old one in the repository, so the DR node can replay every commit.
 * Returns where the primary's WAL ended and whether the repository has it; undefined when it does not answer.
 */
async function switchAndArchive(outputs: StackOutputs, primary: PgNode, ctx: StepContext): Promise<{ lsn: string; archived: boolean } | undefined> {
  const before = await primaryWalState(outputs, primary, ctx.signal);
  if (!before.answers) {
    ctx.log(`${primary.name} does not answer: the DR site gets what the repository has`);
    return undefined;
  }
  // pg_switch_wal() returns the end of the last record of the segment it closes: the last commit there is.
  const { end, switched } = await onPg(
    outputs,
    primary,
    async (client) => (await client.query<{ end: string; switched: string }>("select lsn::text as end, pg_walfile_name(lsn) as switched from pg_switch_wal() as lsn")).rows[0]!,
    { signal: ctx.signal, timeoutMs: 3_000 },
  );
  const archived = await until(async () => {
    const state = await primaryWalState(outputs, primary, ctx.signal);
    return state.lastArchivedWal !== undefined && state.lastArchivedWal >= switched;
  }, ARCHIVE_SWITCH_MS, ctx.signal, 100);
  if (!archived) {
    ctx.log(`${switched} did not reach the repository within ${ARCHIVE_SWITCH_MS / 1000} s: the DR site gets what the repository has (the report counts the rest as lost)`);
    return { lsn: end, archived: false };
  }
  ctx.log(`${primary.name}: WAL switched at ${end}; ${switched} is in the repository`);
  return { lsn: end, archived: true };
}
