/**
 * `tradeops failover` — I5 (DB failure: promote the replica), I6, I9: the primary is lost or must
 * not take writes; the standby takes over. The seed's checklist, as steps:
 *
 *   check the standby can take over (answers, replays, lag within --max-lag) → pause trading →
 *   fence the old primary (out of the traffic endpoint first, stopped when it runs, and made to come
 *   back as a standby, never a second primary) → promote the standby → route traffic to it and
 *   prove a write goes through → record it as the stack's primary → the app follows → resume trading
 *
 * The report: RTO (first step → first write accepted through the traffic endpoint), each step's
 * time, and the RPO: the WAL the standby had not received when the old primary was fenced (0 in
 * synchronous mode; measured when the old primary still answered).
 */
import { z } from "zod";
import type { PgNode, StackOutputs } from "../contract/outputs.ts";
import { NoAnswer } from "../clients/deadline.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { onPg } from "./connect.ts";
import { operator } from "./engine/audit.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type Step, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { bytes, table } from "./format.ts";
import { topologyOf, type Topology } from "./platform/topology.ts";
import { writeThroughTraffic } from "./probes.ts";

/** A dead primary refuses at once; a hung one gets this long before it counts as unreachable. */
const OLD_PRIMARY_TIMEOUT_MS = 1_000;
/** I9: trading is paused when the ops API answers; the failover waits this long for it, no more. */
const PAUSE_WAIT_MS = 100;
/** A write through the endpoint is retried this long after the switch (HAProxy's health check, a reconnect). */
const FIRST_WRITE_WITHIN_MS = 10_000;

export const FailoverArgs = z.object({
  maxLag: flag(z.number().int().nonnegative().optional(), {
    description: "refuse when the standby's replay lag exceeds this many bytes",
    placeholder: "bytes",
    defaultText: "database.replication.maxLagBytes of the outputs (16 MiB)",
  }),
  force: flag(z.boolean().optional(), { description: "take over even beyond --max-lag (recorded with who and --reason)" }),
  reason: flag(z.string().trim().min(1).max(500).optional(), { description: "why: goes to the audit log and to the ops API's pause", placeholder: "text" }),
});
export type FailoverArgs = z.infer<typeof FailoverArgs>;

/** What the report reads from the recorded facts. */
export interface FailoverFacts {
  from: string;
  to: string;
  lagBytes: number | null;
  oldPrimaryAnswered: boolean;
  notReplicatedBytes: number | null;
  startedAt: number;
  firstWriteAt?: number;
}

export const failover = defineRunbook({
  command: ["failover"],
  name: "failover",
  summary: "promote the standby when the primary is lost or must not take writes: fenced, verified, measured",
  features: ["I5", "I6", "I9"],
  mutates: true,
  args: FailoverArgs,
  steps: (args, { outputs }) => {
    const { primary, standby } = outputs.database;
    if (!standby) throw new Refusal("the stack has no standby to fail over to");
    const maxLag = args.maxLag ?? outputs.database.replication.maxLagBytes;
    if (args.force && !args.reason) throw new Refusal("--force needs --reason: the audit log records who forced a failover, and why");
    let topology: Topology;
    const platform = async () => (topology ??= await topologyOf(outputs));
    const facts: Partial<FailoverFacts> = { from: primary.name, to: standby.name };
    /** The pause request: sent in step 2, collected before trading resumes. */
    let pausing: Promise<boolean> = Promise.resolve(false);

    const steps: Step[] = [
      {
        name: `Check that ${standby.name} can take over`,
        plan: `${standby.name} answers, is in recovery and replays; its lag is within ${bytes(maxLag)}${args.force ? " (or --force)" : ""}`,
        readOnly: true,
        action: async (ctx) => {
          facts.startedAt = Date.now();
          ctx.record("startedAt", facts.startedAt);
          const found = await takeoverState(outputs, standby, primary, ctx);
          facts.lagBytes = found.lagBytes;
          facts.oldPrimaryAnswered = found.primaryAnswered;
          ctx.record("lagBytes", found.lagBytes);
          ctx.record("oldPrimaryAnswered", found.primaryAnswered);
          ctx.log(`${standby.name} replay lag ${found.lagBytes === null ? "unknown" : bytes(found.lagBytes)}; ${primary.name} ${found.primaryAnswered ? "answers" : "does not answer"}`);
          if (found.lagBytes !== null && found.lagBytes > maxLag) {
            if (!args.force) {
              throw new Refusal(`${standby.name} replay lag ${bytes(found.lagBytes)} exceeds --max-lag ${bytes(maxLag)}: a failover now would lose that much`, "wait for it to catch up, or `tradeops failover --force --reason '…'`");
            }
            ctx.record("forced", { who: operator(), reason: args.reason, lagBytes: found.lagBytes, maxLagBytes: maxLag });
          }
        },
      },
      {
        name: "Pause trading through the ops API",
        plan: "POST /api/trading/pause (I9); the failover goes on after 0.1 s whether or not the API answered (it may be stuck on the dead primary)",
        action: async (ctx) => {
          pausing = pauseTrading(outputs, args.reason ?? `failover ${primary.name} → ${standby.name}`, ctx);
          const answered = await Promise.race([pausing.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), PAUSE_WAIT_MS))]);
          if (!answered) ctx.log("asked the ops API to pause trading; not waiting for its answer");
        },
        undo: { plan: "POST /api/trading/resume", run: async (ctx) => void (await resumeTrading(outputs, ctx)) },
      },
      {
        name: `Fence the old primary ${primary.name}`,
        plan: `take ${primary.name} out of the traffic endpoint (and cut its sessions), stop it when it runs, and make it come back as a standby of ${standby.name}`,
        // Resume: fenced means out of the endpoint, not running, and configured as a standby.
        isDone: async () => {
          const t = await platform();
          return (await t.routedTo()) !== primary.name && !(await t.running(primary)) && (await t.demoted(primary));
        },
        action: async (ctx) => {
          const t = await platform();
          await t.fenceTraffic(primary);
          // What the old primary wrote that the standby may not have: read before it stops.
          const oldLsn = facts.oldPrimaryAnswered ? await currentLsn(outputs, primary, ctx) : undefined;
          ctx.log(`${primary.name}: ${await t.stop(primary, (line) => ctx.log(line))}`);
          await t.demote(primary, standby);
          if (oldLsn) {
            const received = await receivedLsn(outputs, standby, ctx);
            facts.notReplicatedBytes = received ? Math.max(0, lsnDiff(oldLsn, received)) : null;
            ctx.record("notReplicatedBytes", facts.notReplicatedBytes);
          }
        },
      },
      {
        name: `Promote ${standby.name}`,
        plan: "select pg_promote(wait => true)",
        isDone: async (ctx) => (await inRecovery(outputs, standby, ctx)) === false,
        action: async (ctx) => {
          await onPg(outputs, standby, (client) => client.query("select pg_promote(true, 60)"), { signal: ctx.signal, timeoutMs: 65_000 });
        },
        verify: async (ctx) => {
          if ((await inRecovery(outputs, standby, ctx)) !== false) throw new StepFailure(`${standby.name} is still in recovery after pg_promote`, `read ${standby.name}'s log`);
        },
      },
      {
        name: `Route the traffic endpoint to ${standby.name} and prove a write goes through`,
        plan: `switch ${outputs.database.traffic.host}:${outputs.database.traffic.port} to ${standby.name}; one write through it`,
        action: async (ctx) => {
          const t = await platform();
          await t.routeTraffic(standby);
          const took = await firstWrite(outputs, `failover ${primary.name} → ${standby.name}`, ctx);
          facts.firstWriteAt = Date.now();
          ctx.record("firstWriteAt", facts.firstWriteAt);
          if (took !== standby.name) throw new StepFailure(`the write through the endpoint landed on ${took}, not ${standby.name}`, "check the traffic endpoint's configuration");
        },
      },
      {
        name: `Record ${standby.name} as the stack's primary`,
        plan: "so `sandbox up` / the next `pulumi up` keep the new topology instead of flipping traffic back",
        isDone: async () => (await (await platform()).recordedPrimary()) === standby.name,
        action: async (ctx) => {
          ctx.record("recordedIn", await (await platform()).recordPrimary(standby));
        },
      },
      {
        name: "Check that the app reconnected (restart it only when it did not)",
        plan: "GET /health/ready until the bot reaches the database through the endpoint; restart the app after 5 s",
        action: async (ctx) => {
          if (await appReady(outputs, 5_000, ctx)) return;
          ctx.log("the app did not reconnect within 5 s: restarting it");
          await (await platform()).restartApp((line) => ctx.log(line));
          if (!(await appReady(outputs, 15_000, ctx))) {
            throw new StepFailure("the app is not ready after a restart", "read the app's log; the database failover itself is complete");
          }
        },
      },
      {
        name: "Resume trading",
        plan: "POST /api/trading/resume — only after the verification above (I9), and only if this run paused it",
        action: async (ctx) => {
          if (await pausing) await resumeTrading(outputs, ctx);
        },
      },
    ];
    return steps;
  },
  report: (facts) => failoverReport(facts),
});

/** The standby's state, and its lag as the primary sees it when it answers (else as the standby sees it). */
async function takeoverState(outputs: StackOutputs, standby: PgNode, primary: PgNode, ctx: StepContext): Promise<{ lagBytes: number | null; primaryAnswered: boolean }> {
  const onStandby = await onPg(
    outputs,
    standby,
    async (client) =>
      (
        await client.query<{ in_recovery: boolean; receiver: string | null; receive_lag: string | null }>(
          `select pg_is_in_recovery() as in_recovery, (select status from pg_stat_wal_receiver) as receiver,
                  pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint as receive_lag`,
        )
      ).rows[0]!,
    { signal: ctx.signal, timeoutMs: 3_000 },
  ).catch((error) => {
    throw new Refusal(`${standby.name} does not answer (${oneLine(error)}): there is nothing to fail over to`, `bring ${standby.name} back first (\`tradeops sandbox up\` on the sandbox)`);
  });
  if (!onStandby.in_recovery) throw new Refusal(`${standby.name} is not in recovery: it is already a primary (split brain?)`, "run `tradeops health` and find out which node takes writes");
  const fromPrimary = await onPg(
    outputs,
    primary,
    async (client) =>
      (
        await client.query<{ lag: string | null }>(
          "select pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint as lag from pg_stat_replication where application_name = $1",
          [standby.name],
        )
      ).rows[0],
    { signal: ctx.signal, timeoutMs: OLD_PRIMARY_TIMEOUT_MS },
  ).then(
    (row) => ({ answered: true, lag: row?.lag ?? null }),
    () => ({ answered: false, lag: null }),
  );
  const lag = fromPrimary.lag ?? onStandby.receive_lag;
  return { lagBytes: lag === null ? null : Number(lag), primaryAnswered: fromPrimary.answered };
}

async function inRecovery(outputs: StackOutputs, node: PgNode, ctx: StepContext): Promise<boolean | undefined> {
  return onPg(outputs, node, async (client) => (await client.query<{ r: boolean }>("select pg_is_in_recovery() as r")).rows[0]!.r, { signal: ctx.signal, timeoutMs: 3_000 }).catch(() => undefined);
}

async function currentLsn(outputs: StackOutputs, node: PgNode, ctx: StepContext): Promise<string | undefined> {
  return onPg(outputs, node, async (client) => (await client.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn")).rows[0]!.lsn, { signal: ctx.signal, timeoutMs: OLD_PRIMARY_TIMEOUT_MS }).catch(() => undefined);
}

async function receivedLsn(outputs: StackOutputs, node: PgNode, ctx: StepContext): Promise<string | undefined> {
  return onPg(outputs, node, async (client) => (await client.query<{ lsn: string | null }>("select pg_last_wal_receive_lsn()::text as lsn")).rows[0]!.lsn ?? undefined, { signal: ctx.signal, timeoutMs: 3_000 }).catch(() => undefined);
}

/** Bytes between two LSNs ("0/3000060"). */
function lsnDiff(later: string, earlier: string): number {
  const value = (lsn: string) => {
    const [high, low] = lsn.split("/").map((part) => BigInt(`0x${part}`));
    return (high! << 32n) + low!;
  };
  return Number(value(later) - value(earlier));
}

/** The first write through the endpoint after the switch, retried while HAProxy and the new primary settle. */
async function firstWrite(outputs: StackOutputs, by: string, ctx: StepContext): Promise<string> {
  const deadline = Date.now() + FIRST_WRITE_WITHIN_MS;
  let last: unknown;
  while (Date.now() < deadline && !ctx.signal.aborted) {
    try {
      return await writeThroughTraffic(outputs, by, { signal: ctx.signal, timeoutMs: 2_000 });
    } catch (error) {
      last = error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  throw new StepFailure(`no write went through the traffic endpoint within ${FIRST_WRITE_WITHIN_MS / 1000} s (${oneLine(last)})`, "check the endpoint routes to the new primary (`tradeops health`)");
}

async function pauseTrading(outputs: StackOutputs, reason: string, ctx: StepContext): Promise<boolean> {
  try {
    const answer = await opsApiRequest(outputs.opsApi, "/api/trading/pause", { method: "POST", body: { reason }, signal: ctx.signal, timeoutMs: 3_000 });
    const paused = answer.status === 200;
    ctx.record("tradingPaused", paused);
    ctx.log(paused ? "trading paused" : `the ops API answered ${answer.status}: going on without it`);
    return paused;
  } catch (error) {
    ctx.record("tradingPaused", false);
    ctx.log(`the ops API ${error instanceof NoAnswer ? "does not answer" : `failed (${oneLine(error)})`}: going on without it`);
    return false;
  }
}

async function resumeTrading(outputs: StackOutputs, ctx: StepContext): Promise<boolean> {
  try {
    const answer = await opsApiRequest(outputs.opsApi, "/api/trading/resume", { method: "POST", body: {}, signal: ctx.signal, timeoutMs: 3_000 });
    ctx.record("tradingResumed", answer.status === 200);
    if (answer.status !== 200) ctx.log(`the ops API answered ${answer.status} to resume: trading stays paused`);
    return answer.status === 200;
  } catch (error) {
    ctx.record("tradingResumed", false);
    ctx.log(`the ops API does not answer (${oneLine(error)}): trading stays paused; resume it once the API is back`);
    return false;
  }
}

/** The bot's readiness (it reaches PostgreSQL through the endpoint and Redis), polled up to `withinMs`. */
async function appReady(outputs: StackOutputs, withinMs: number, ctx: StepContext): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline && !ctx.signal.aborted) {
    const answer = await opsApiRequest(outputs.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 1_000 }).catch(() => undefined);
    if (answer?.status === 200) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

function failoverReport(facts: Record<string, unknown>): { text: string; json: unknown } {
  const started = facts.startedAt as number | undefined;
  const firstWrite = facts.firstWriteAt as number | undefined;
  const rtoSeconds = started && firstWrite ? (firstWrite - started) / 1000 : null;
  const notReplicated = facts.notReplicatedBytes as number | null | undefined;
  const json = {
    rtoSeconds,
    rpo:
      notReplicated === undefined || notReplicated === null
        ? { measured: false, why: facts.oldPrimaryAnswered === false ? "the old primary did not answer" : "not measured" }
        : { measured: true, notReplicatedBytes: notReplicated },
    lagBytesAtStart: facts.lagBytes ?? null,
    forced: facts.forced ?? null,
    tradingPaused: facts.tradingPaused ?? null,
    tradingResumed: facts.tradingResumed ?? null,
    recordedIn: facts.recordedIn ?? null,
  };
  const rows = [
    ["RTO (first step → first write through the endpoint)", rtoSeconds === null ? "-" : `${rtoSeconds.toFixed(3)} s`],
    ["RPO (WAL the standby had not received)", json.rpo.measured ? bytes(json.rpo.notReplicatedBytes!) : `unknown: ${json.rpo.why}`],
    ["trading", facts.tradingPaused ? (facts.tradingResumed ? "paused, then resumed" : "paused, NOT resumed") : "not paused (the ops API did not answer)"],
  ];
  if (facts.forced) rows.push(["forced", JSON.stringify(facts.forced)]);
  return { text: table(["FAILOVER", "VALUE"], rows), json };
}
