/**
 * `tradeops drill` (`npm run drill`) — I5, I6: prove the failover on the sandbox, the way the
 * seeds' quarterly DR verification (C8) should be done, with numbers.
 *
 * It brings the sandbox up, checks it is healthy, then runs N cycles of: a writer commits numbered
 * rows through the traffic endpoint → the primary is killed with SIGKILL → `tradeops failover` →
 * every acknowledged row is looked for on the new primary → the fenced old primary is restarted by
 * hand and must refuse a write → `tradeops failback`. The report (Markdown, JSON, a timeline plot)
 * gives RTO, the writes lost, failback times and each step's time per cycle, with min/median/max
 * next to the seed's targets.
 */
import { join } from "node:path";
import { z } from "zod";
import { tradeopsHome } from "../contract/home.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { openSandbox, type ComponentName, type PgNodeName } from "../sandbox/index.ts";
import { onPg } from "./connect.ts";
import type { RunResult } from "./engine/document.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { LentLock } from "./engine/lock.ts";
import { parseArgs, runRunbook } from "./engine/run.ts";
import { defineRunbook, type Runbook, type Step, type StepContext } from "./engine/runbook.ts";
import { failback } from "./failback.ts";
import { failover } from "./failover.ts";
import { drActivate } from "./dr-activate.ts";
import { drFailback } from "./dr-failback.ts";
import { drNodeState, drSiteOutputs } from "./dr-state.ts";
import { lsnDiff, until } from "./role-change.ts";
import { drSiteOf } from "./platform/dr-site.ts";
import { flag } from "./flags.ts";
import { health } from "./health.ts";
import { lockFor } from "./locks/index.ts";
import { DrillWriter, lostWrites } from "./drill/writer.ts";
import { spread, summaryText, timelineOf, writeDrillReport, type DrillCycle, type DrillSummary } from "./drill/report.ts";
import { SandboxUpArgs, sandboxTarget, sandboxUp } from "./sandbox.ts";
import { stateDirFor } from "./state.ts";

/** The writer runs this long before the kill (the baseline of the plot) and after the failover. */
const WRITES_AROUND_MS = 1_000;
/** Before a whole-site kill, the DR node gets this long to replay the primary's WAL (archive_timeout 10 s, archive-get every second). */
const DR_CURRENT_MS = 30_000;

export const DrillArgs = SandboxUpArgs.extend({
  cycles: flag(z.number().int().min(1).max(100).default(3), { description: "kill-failover-failback cycles", placeholder: "n" }),
  site: flag(z.boolean().optional(), {
    description: "the whole-site drill (I5): kill the primary site (primary, standby, app), `dr activate`, count the writes lost at the DR site, `dr failback` (adds the DR site: --with-dr)",
  }),
  report: flag(z.string().min(1).optional(), { description: "directory for drill.md, drill.json and the timeline plot", placeholder: "dir", defaultText: "$TRADEOPS_HOME/drills/<time>" }),
});

export const drill = defineRunbook({
  command: ["drill"],
  name: "drill",
  summary: "drill the failover on the sandbox: SIGKILL the primary (--site: the whole primary site) under load, fail over, count lost writes, fail back; report and plot",
  features: ["I5", "I6", "C8"],
  mutates: true,
  args: DrillArgs,
  target: (args) => sandboxTarget({ ...args, withDr: args.withDr || args.site }),
  steps(args, target) {
    const { sandbox } = target;
    const drillId = new Date().toISOString();
    const kind = args.site ? "site" : "node";
    const summary: DrillSummary = { kind, mode: target.outputs.database.replication.mode, cycles: [], startedAt: drillId };
    const reportDir = args.report ?? join(tradeopsHome(), "drills", drillId.replace(/[:.]/g, "-"));
    const fresh = async () => (await openSandbox({ dir: sandbox.dir })).outputs;
    const cycles: Step[] = Array.from({ length: args.cycles }, (_, i) => ({
      name: args.site
        ? `Cycle ${i + 1}: kill the primary site under load, activate the DR site, count lost writes, restart the fenced node, fail back`
        : `Cycle ${i + 1}: kill the primary under load, fail over, count lost writes, restart the fenced node, fail back`,
      action: async (ctx) => {
        const cycle = await (args.site ? runSiteCycle : runCycle)(await fresh(), drillId, i + 1, ctx);
        summary.cycles.push(cycle);
        ctx.record(`cycle${i + 1}`, { rtoSeconds: cycle.rtoSeconds, lost: cycle.lost.length, failbackSeconds: cycle.failbackSeconds });
        if (!cycle.fencedRefusedWrite) throw new StepFailure(`cycle ${i + 1}: the fenced old primary ${cycle.from} accepted a write: two writable nodes`, "do not fail over on this stack until the fencing is fixed");
        if (cycle.lost.length && summary.mode === "sync" && kind === "node") {
          throw new StepFailure(`cycle ${i + 1}: ${cycle.lost.length} acknowledged writes lost in synchronous mode`, "check synchronous_standby_names on the primary (`tradeops diagnose`)");
        }
      },
    }));
    return [
      ...sandboxUp.steps({ ...args, withDr: args.withDr || args.site }, target),
      {
        name: "Check every component is healthy before the first kill",
        readOnly: true,
        action: async (ctx) => {
          const outputs = await fresh();
          const result = await nested(health, {}, outputs, ctx);
          if (result.exitCode !== 0) throw new StepFailure(`the sandbox is not healthy: ${result.failure?.message}`, "`tradeops health`, then `tradeops sandbox up`");
          await DrillWriter.prepare(outputs);
        },
      },
      ...cycles,
      {
        name: "Write the drill report (Markdown, JSON, timeline plot)",
        action: async (ctx) => {
          const files = await writeDrillReport(summary, reportDir);
          ctx.record("drill", { mode: summary.mode, cycles: summary.cycles.length, files, summary: summaryOf(summary) });
          ctx.record("summaryText", summaryText(summary));
        },
      },
    ];
  },
  report: (facts) => {
    const drillFacts = facts.drill as { files: { markdown: string; png: string; svg: string; json: string } } | undefined;
    if (!drillFacts) return { text: "no drill report was written", json: null };
    return {
      text: `${facts.summaryText}\n\nreport: ${drillFacts.files.markdown}\nplot:   ${drillFacts.files.png} (and .svg)\ndata:   ${drillFacts.files.json}`,
      json: drillFacts,
    };
  },
});

async function runCycle(outputs: StackOutputs, drillId: string, cycle: number, ctx: StepContext): Promise<DrillCycle> {
  const sandbox = await openSandbox({ dir: platformDir(outputs) });
  const from = outputs.database.primary.name as PgNodeName;
  const writer = new DrillWriter(outputs, drillId, cycle);
  writer.start();
  await sleep(WRITES_AROUND_MS);
  const killAt = Date.now();
  const pid = sandbox.pid(from);
  if (pid === undefined) throw new StepFailure(`${from} has no running postmaster to kill`, "`tradeops sandbox up`");
  process.kill(pid, "SIGKILL");
  ctx.log(`cycle ${cycle}: SIGKILL to ${from} (pid ${pid}) under load`);
  const failed = await nested(failover, { reason: `drill cycle ${cycle}` }, outputs, ctx);
  await sleep(WRITES_AROUND_MS);
  await writer.stop();
  if (failed.exitCode !== 0) throw new StepFailure(`cycle ${cycle}: failover stopped at "${failed.failure?.step}": ${failed.failure?.message}`, failed.failure?.next);

  const after = (await openSandbox({ dir: platformDir(outputs) })).outputs;
  const lost = await lostWrites(after, drillId, cycle, writer.acknowledged);
  ctx.log(`cycle ${cycle}: ${writer.acknowledged.length} writes acknowledged, ${lost.length} lost; failover RTO ${(failed.report as { rtoSeconds?: number }).rtoSeconds ?? "?"} s`);
  const fencedRefusedWrite = await fencedOldPrimaryRefuses(sandbox, outputs, from, ctx);

  const backed = await nested(failback, { reason: `drill cycle ${cycle}` }, after, ctx);
  if (backed.exitCode !== 0) throw new StepFailure(`cycle ${cycle}: failback stopped at "${backed.failure?.step}": ${backed.failure?.message}`, backed.failure?.next);
  const failbackReport = backed.report as { failbackSeconds?: number | null; writeGapSeconds?: number | null; rejoinedBy?: Record<string, string> };

  const acks = writer.acknowledged.map((write) => write.at);
  const fact = (key: string) => failed.facts[key] as number | undefined;
  return {
    cycle,
    from,
    to: failed.facts.promotedAt ? outputs.database.standby!.name : "?",
    killAt,
    marks: { fenced: fact("fencedAt"), promoted: fact("promotedAt"), firstWrite: fact("firstWriteAt") },
    rtoSeconds: (failed.report as { rtoSeconds?: number | null }).rtoSeconds ?? null,
    outageSeconds: longestGap(acks),
    acknowledged: writer.acknowledged.length,
    lost,
    fencedRefusedWrite,
    failbackSeconds: failbackReport.failbackSeconds ?? null,
    failbackWriteGapSeconds: failbackReport.writeGapSeconds ?? null,
    rejoinedBy: failbackReport.rejoinedBy ?? {},
    steps: { failover: stepTimes(failed), failback: stepTimes(backed) },
    timeline: timelineOf(acks, killAt),
  };
}

/**
 * The whole-site cycle (I5): the writer commits through the primary site's endpoint; the primary
 * site — both database nodes and the app — is SIGKILLed; `dr activate`; the acknowledged rows are
 * counted at the DR site (loss bounded by archive_timeout: WAL reaches the DR site through the
 * repository); the fenced old primary must refuse a write; `dr failback`.
 */
async function runSiteCycle(outputs: StackOutputs, drillId: string, cycle: number, ctx: StepContext): Promise<DrillCycle> {
  const sandbox = await openSandbox({ dir: platformDir(outputs) });
  const dr = drSiteOf(outputs);
  const from = outputs.database.primary.name as PgNodeName;
  await drCurrent(outputs, dr, ctx);
  const writer = new DrillWriter(outputs, drillId, cycle);
  writer.start();
  // The kill lands anywhere in an archive_timeout cycle: between one and two of them after the last WAL switch.
  const archiveTimeout = await archiveTimeoutMs(outputs, ctx);
  await sleep(archiveTimeout + Math.random() * archiveTimeout);
  const killAt = Date.now();
  const site: ComponentName[] = ["ops-api", from, outputs.database.standby!.name as PgNodeName];
  for (const component of site) {
    const pid = sandbox.pid(component);
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  }
  ctx.log(`cycle ${cycle}: SIGKILL to the primary site (${site.join(", ")}) under load`);
  // Its writes fail from here on: it writes through the dead site's endpoint.
  await sleep(WRITES_AROUND_MS / 2);
  await writer.stop();
  const activated = await nested(drActivate, { reason: `drill cycle ${cycle}` }, outputs, ctx);
  if (activated.exitCode !== 0) throw new StepFailure(`cycle ${cycle}: dr activate stopped at "${activated.failure?.step}": ${activated.failure?.message}`, activated.failure?.next);

  const lost = await lostWrites(drSiteOutputs(outputs, dr), drillId, cycle, writer.acknowledged);
  // The RPO in time: from the last commit the DR site has (the activation's report) to the last acknowledged write.
  const dataUpTo = Date.parse((activated.report as { rpo?: { dataUpTo?: string | null } }).rpo?.dataUpTo ?? "");
  const lastAck = writer.acknowledged.at(-1)?.at;
  const lostSeconds = lost.length && lastAck !== undefined && Number.isFinite(dataUpTo) ? Math.max(0, lastAck - dataUpTo) / 1000 : 0;
  ctx.log(`cycle ${cycle}: ${writer.acknowledged.length} writes acknowledged, ${lost.length} lost (${lostSeconds.toFixed(3)} s); activation RTO ${(activated.report as { rtoSeconds?: number }).rtoSeconds ?? "?"} s`);
  const fencedRefusedWrite = await fencedOldPrimaryRefuses(sandbox, outputs, from, ctx);

  const backed = await nested(drFailback, { reason: `drill cycle ${cycle}` }, outputs, ctx);
  if (backed.exitCode !== 0) throw new StepFailure(`cycle ${cycle}: dr failback stopped at "${backed.failure?.step}": ${backed.failure?.message}`, backed.failure?.next);
  const failbackReport = backed.report as { failbackSeconds?: number | null; writeGapSeconds?: number | null; homeRejoinedBy?: string; drRejoinedBy?: string };
  const acks = writer.acknowledged.map((write) => write.at);
  const fact = (key: string) => activated.facts[key] as number | undefined;
  return {
    cycle,
    from: "primary site",
    to: dr.database.name,
    killAt,
    marks: { fenced: fact("fencedAt"), promoted: fact("promotedAt"), firstWrite: fact("firstWriteAt"), ...(Number.isFinite(dataUpTo) ? { dataUpTo } : {}) },
    rtoSeconds: (activated.report as { rtoSeconds?: number | null }).rtoSeconds ?? null,
    outageSeconds: null,
    acknowledged: writer.acknowledged.length,
    lost,
    lostSeconds,
    fencedRefusedWrite,
    failbackSeconds: failbackReport.failbackSeconds ?? null,
    failbackWriteGapSeconds: failbackReport.writeGapSeconds ?? null,
    rejoinedBy: { [from]: failbackReport.homeRejoinedBy ?? "-", [dr.database.name]: failbackReport.drRejoinedBy ?? "-" },
    steps: { failover: stepTimes(activated), failback: stepTimes(backed) },
    timeline: timelineOf(acks, killAt),
  };
}

/** The primary's archive_timeout (WAL reaches the DR site at least this often), 10 s when it has none. */
async function archiveTimeoutMs(outputs: StackOutputs, ctx: StepContext): Promise<number> {
  const seconds = await onPg(outputs, outputs.database.primary, async (client) => Number((await client.query<{ s: string }>("select setting as s from pg_settings where name = 'archive_timeout'")).rows[0]!.s), { signal: ctx.signal, timeoutMs: 3_000 });
  return (seconds > 0 ? seconds : 10) * 1000;
}

/** Before a kill the DR site has everything (the drill's table too): a WAL switch, replayed there. */
async function drCurrent(outputs: StackOutputs, dr: ReturnType<typeof drSiteOf>, ctx: StepContext): Promise<void> {
  const switched = await onPg(outputs, outputs.database.primary, async (client) => (await client.query<{ end: string }>("select pg_switch_wal()::text as end")).rows[0]!.end, { signal: ctx.signal, timeoutMs: 3_000 });
  const current = await until(async () => {
    const state = await drNodeState(outputs, dr.database, ctx.signal);
    return state.lsn !== undefined && lsnDiff(state.lsn, switched) >= 0;
  }, DR_CURRENT_MS, ctx.signal, 100);
  if (!current) throw new StepFailure(`${dr.database.name} did not replay the primary's WAL up to ${switched} within ${DR_CURRENT_MS / 1000} s: the DR site is not current`, "`tradeops dr status`");
}

/**
 * The old primary, fenced by the failover, restarted by hand (as a careless restart or a reboot
 * would): it must come back in recovery and refuse a write made to it directly.
 */
async function fencedOldPrimaryRefuses(sandbox: Awaited<ReturnType<typeof openSandbox>>, outputs: StackOutputs, node: PgNodeName, ctx: StepContext): Promise<boolean> {
  const old = outputs.database.primary;
  await sandbox.postgres.startProcess(node);
  try {
    await onPg(outputs, old, (client) => client.query("create table if not exists tradeops_split_brain_probe (at timestamptz default now()); insert into tradeops_split_brain_probe default values"), { signal: ctx.signal, timeoutMs: 10_000 });
    return false;
  } catch (error) {
    ctx.log(`the fenced ${node}, restarted by hand, refused a write: ${oneLine(error)}`);
    return true;
  }
}

/** A runbook inside the drill: the drill holds the stack lock, so it is lent, not taken again. */
function nested<Args>(runbook: Runbook<Args>, raw: Record<string, unknown>, outputs: StackOutputs, ctx: StepContext): Promise<RunResult> {
  return runRunbook(runbook, parseArgs(runbook, raw), {
    target: { outputs },
    stateDir: stateDirFor(outputs),
    lock: new LentLock(lockFor(outputs)),
    yes: true,
    quiet: true,
    signal: ctx.signal,
  });
}

/**
 * What a client saw: the longest time between two acknowledged writes (a write answered just after
 * the kill, from the socket buffer, must not hide the gap that follows).
 */
function longestGap(acks: number[]): number | null {
  if (acks.length < 2) return null;
  let longest = 0;
  for (let i = 1; i < acks.length; i++) longest = Math.max(longest, acks[i]! - acks[i - 1]!);
  return longest / 1000;
}

function stepTimes(result: RunResult): Array<{ name: string; ms: number }> {
  return result.steps.map((step) => ({ name: step.name, ms: step.durationMs }));
}

function platformDir(outputs: StackOutputs): string {
  if (outputs.platform.kind !== "sandbox") throw new StepFailure("the drill runs on the sandbox");
  return outputs.platform.dir;
}

function summaryOf(summary: DrillSummary) {
  return {
    rtoSeconds: spread(summary.cycles.map((c) => c.rtoSeconds)),
    outageSeconds: spread(summary.cycles.map((c) => c.outageSeconds)),
    lostWrites: spread(summary.cycles.map((c) => c.lost.length)),
    failbackSeconds: spread(summary.cycles.map((c) => c.failbackSeconds)),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
