/**
 * `tradeops failover` — I5 (DB failure: promote the replica), I6, I9: the primary is lost or must
 * not take writes; the standby takes over. The seed's checklist, as steps:
 *
 *   check the standby can take over (answers, replays, lag within --max-lag) → pause trading →
 *   fence the old primary (out of the traffic endpoint first, stopped when it runs, and made to come
 *   back as a standby, never a second primary) → promote the standby → route traffic to it and
 *   prove a write goes through → record it as the stack's primary → the app follows → resume trading
 *
 * The report: RTO (first step → first write accepted through the traffic endpoint), and the RPO:
 * the WAL the standby had not received when the old primary was fenced (0 in synchronous mode;
 * measured when the old primary still answered).
 */
import { z } from "zod";
import type { PgNode, StackOutputs } from "../contract/outputs.ts";
import { onPg } from "./connect.ts";
import { operator } from "./engine/audit.ts";
import { Refusal, oneLine } from "./engine/errors.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";
import { flag, pauseReasonFlag } from "./flags.ts";
import { bytes, table } from "./format.ts";
import {
  appReconnectedStep,
  currentLsn,
  lagLine,
  lsnDiff,
  pauseTradingStep,
  promoteStep,
  receivedLsn,
  recordPrimaryStep,
  resumeTradingStep,
  RoleChange,
  routeTrafficStep,
  tradingLine,
} from "./role-change.ts";

/** A dead primary refuses at once; a hung one gets this long before it counts as unreachable. */
const OLD_PRIMARY_TIMEOUT_MS = 1_000;

export const FailoverArgs = z.object({
  maxLag: flag(z.number().int().nonnegative().optional(), {
    description: "refuse when the standby's replay lag exceeds this many bytes",
    placeholder: "bytes",
    defaultText: "database.replication.maxLagBytes of the outputs (16 MiB)",
  }),
  force: flag(z.boolean().optional(), { description: "take over even beyond --max-lag (recorded with who and --reason)" }),
  reason: pauseReasonFlag,
});

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
    if (args.force && !args.reason) throw new Refusal("--force needs --reason: the audit log records who forced a failover, and why");
    const maxLag = args.maxLag ?? outputs.database.replication.maxLagBytes;
    const change = new RoleChange(outputs, primary, standby, args.reason ?? `failover ${primary.name} → ${standby.name}`);
    let primaryAnswered = false;
    return [
      {
        name: `Check that ${standby.name} can take over`,
        plan: `${standby.name} answers, is in recovery and replays; its lag is within ${bytes(maxLag)}${args.force ? " (or --force)" : ""}`,
        readOnly: true,
        action: async (ctx) => {
          ctx.record("startedAt", Date.now());
          const found = await takeoverState(outputs, standby, primary, ctx);
          primaryAnswered = found.primaryAnswered;
          ctx.record("lagBytes", found.lagBytes);
          ctx.record("oldPrimaryAnswered", found.primaryAnswered);
          ctx.record("replication", { mode: outputs.database.replication.mode, oldPrimary: primary.name });
          ctx.log(`${standby.name} replay lag ${lagLine(found.lagBytes)}; ${primary.name} ${found.primaryAnswered ? "answers" : "does not answer"}`);
          const beyond = found.lagBytes !== null && found.lagBytes > maxLag;
          if (beyond && !args.force) {
            throw new Refusal(`${standby.name} replay lag ${bytes(found.lagBytes!)} exceeds --max-lag ${bytes(maxLag)}: a failover now would lose that much`, "wait for it to catch up, or `tradeops failover --force --reason '…'`");
          }
          // On the record whenever it was asked for: who forced, why, and whether it was needed.
          if (args.force) ctx.record("forced", { who: operator(), reason: args.reason, lagBytes: found.lagBytes, maxLagBytes: maxLag, neededForce: beyond });
        },
      },
      pauseTradingStep(change),
      {
        name: `Fence the old primary ${primary.name}`,
        plan: `take ${primary.name} out of the traffic endpoint (and cut its sessions), stop it when it runs, and make it come back as a standby of ${standby.name}`,
        // Resume: fenced means out of the endpoint, not running, and configured as a standby.
        isDone: async () => {
          const t = await change.platform();
          return (await t.routedTo()) !== primary.name && !(await t.running(primary)) && (await t.demoted(primary));
        },
        action: async (ctx) => {
          const t = await change.platform();
          await t.fenceTraffic(primary);
          // What the old primary wrote that the standby may not have: read before it stops.
          const oldLsn = primaryAnswered ? await currentLsn(outputs, primary, ctx, OLD_PRIMARY_TIMEOUT_MS) : undefined;
          ctx.log(`${primary.name}: ${await t.stop(primary, (line) => ctx.log(line))}`);
          await t.demote(primary, standby);
          ctx.record("fencedAt", Date.now());
          if (oldLsn) {
            const received = await receivedLsn(outputs, standby, ctx);
            ctx.record("notReplicatedBytes", received ? Math.max(0, lsnDiff(oldLsn, received)) : null);
          }
        },
      },
      promoteStep(change),
      routeTrafficStep(change),
      recordPrimaryStep(change),
      appReconnectedStep(change),
      resumeTradingStep(change),
    ];
  },
  report: (facts) => {
    const started = facts.startedAt as number | undefined;
    const firstWrite = facts.firstWriteAt as number | undefined;
    const rtoSeconds = started && firstWrite ? (firstWrite - started) / 1000 : null;
    const notReplicated = facts.notReplicatedBytes as number | null | undefined;
    const rpo =
      notReplicated === undefined || notReplicated === null
        ? { measured: false as const, why: facts.oldPrimaryAnswered === false ? "the old primary did not answer" : "not measured" }
        : { measured: true as const, notReplicatedBytes: notReplicated };
    const rows = [
      ["RTO (first step → first write through the endpoint)", rtoSeconds === null ? "-" : `${rtoSeconds.toFixed(3)} s`],
      ["RPO (WAL the standby had not received)", rpo.measured ? bytes(rpo.notReplicatedBytes) : `unknown: ${rpo.why}`],
      ["trading", tradingLine(facts)],
    ];
    // The promoted node has no standby until the old primary rejoins: say what that costs.
    const replication = facts.replication as { mode: string; oldPrimary: string } | undefined;
    const standbyLine = replication && firstWrite ? `none until \`tradeops failback\` rejoins ${replication.oldPrimary}${replication.mode === "sync" ? ": commits are not synchronous meanwhile (RPO 0 suspended)" : ""}` : undefined;
    if (standbyLine) rows.push(["standby", standbyLine]);
    if (facts.forced) rows.push(["forced", JSON.stringify(facts.forced)]);
    return {
      text: table(["FAILOVER", "VALUE"], rows),
      json: { rtoSeconds, rpo, standby: standbyLine ?? null, lagBytesAtStart: facts.lagBytes ?? null, forced: facts.forced ?? null, tradingPaused: facts.tradingPaused ?? null, tradingResumed: facts.tradingResumed ?? null, recordedIn: facts.recordedIn ?? null },
    };
  },
});

/** The standby's state, and its lag as the primary sees it when it answers (else as the standby sees it). */
async function takeoverState(outputs: StackOutputs, standby: PgNode, primary: PgNode, ctx: StepContext): Promise<{ lagBytes: number | null; primaryAnswered: boolean }> {
  const onStandby = await onPg(
    outputs,
    standby,
    async (client) =>
      (
        await client.query<{ in_recovery: boolean; receive_lag: string | null }>(
          "select pg_is_in_recovery() as in_recovery, pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint as receive_lag",
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
      (await client.query<{ lag: string | null }>("select pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint as lag from pg_stat_replication where application_name = $1", [standby.name])).rows[0],
    { signal: ctx.signal, timeoutMs: OLD_PRIMARY_TIMEOUT_MS },
  ).then(
    (row) => ({ answered: true, lag: row?.lag ?? null }),
    () => ({ answered: false, lag: null }),
  );
  const lag = fromPrimary.lag ?? onStandby.receive_lag;
  return { lagBytes: lag === null ? null : Number(lag), primaryAnswered: fromPrimary.answered };
}
