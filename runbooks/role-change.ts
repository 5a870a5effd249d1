/**
 * What `failover`, `switchover` and `failback` share: a change of which PostgreSQL node takes
 * writes, as steps — pause trading (I9), promote, route the traffic endpoint and prove a write goes
 * through, record the new primary in the stack, check the app followed, resume trading — and the
 * few PostgreSQL questions they ask (in recovery? which LSN? streaming in which mode?).
 */
import type { PgNode, StackOutputs } from "../contract/outputs.ts";
import { NoAnswer } from "../clients/deadline.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { onPg } from "./connect.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import type { Step, StepContext } from "./engine/runbook.ts";
import { bytes } from "./format.ts";
import { topologyOf, type Topology } from "./platform/topology.ts";
import { writeThroughTraffic } from "./probes.ts";

/** I9: trading is paused when the ops API answers; a role change waits this long for it, no more (it may be stuck on a dead primary). */
const PAUSE_WAIT_MS = 100;
/** Segments still waiting for archive-push are archived by a clean stop: a planned switch lets them go first, up to this long. */
const ARCHIVE_CATCH_UP_MS = 30_000;
/** A write through the endpoint is retried this long after the switch (a reconnect, HAProxy settling). */
const FIRST_WRITE_WITHIN_MS = 10_000;

/** One role change in progress: which node gives up the primary role, which takes it, and what it found. */
export class RoleChange {
  readonly outputs: StackOutputs;
  /** The primary now (or the one that was lost). */
  readonly from: PgNode;
  /** The node that becomes primary. */
  readonly to: PgNode;
  /** Why: goes to the ops API's pause and the audit log. */
  readonly reason: string;
  /** The pause request of `pauseTradingStep`, collected by `resumeTradingStep`. */
  pausing: Promise<boolean> = Promise.resolve(false);
  private topology?: Promise<Topology>;

  constructor(outputs: StackOutputs, from: PgNode, to: PgNode, reason: string) {
    this.outputs = outputs;
    this.from = from;
    this.to = to;
    this.reason = reason;
  }

  platform(): Promise<Topology> {
    this.topology ??= topologyOf(this.outputs);
    return this.topology;
  }
}

// ---- the shared steps ---------------------------------------------------------------------------

export function pauseTradingStep(change: RoleChange): Step {
  return {
    name: "Pause trading through the ops API",
    plan: "POST /api/trading/pause (I9); the change goes on after 0.1 s whether or not the API answered",
    action: async (ctx) => {
      change.pausing = pauseTrading(change.outputs, change.reason, ctx);
      const answered = await Promise.race([change.pausing.then(() => true), sleep(PAUSE_WAIT_MS).then(() => false)]);
      if (!answered) ctx.log("asked the ops API to pause trading; not waiting for its answer");
    },
    undo: { plan: "POST /api/trading/resume", run: async (ctx) => void (await resumeTrading(change.outputs, ctx)) },
  };
}

export function promoteStep(change: RoleChange): Step {
  const { outputs, to } = change;
  return {
    name: `Promote ${to.name}`,
    plan: "select pg_promote(wait => true)",
    isDone: async (ctx) => (await inRecovery(outputs, to, ctx)) === false,
    action: async (ctx) => {
      // pg_promote(wait => true) checks every 100 ms; asking ourselves every 10 ms saves most of that.
      await onPg(outputs, to, (client) => client.query("select pg_promote(false)"), { signal: ctx.signal, timeoutMs: 5_000 });
      if (!(await until(async () => (await inRecovery(outputs, to, ctx)) === false, 60_000, ctx.signal, 10))) {
        throw new StepFailure(`${to.name} did not leave recovery within 60 s of pg_promote`, `read ${to.name}'s log`);
      }
      ctx.record("promotedAt", Date.now());
    },
    verify: async (ctx) => {
      if ((await inRecovery(outputs, to, ctx)) !== false) throw new StepFailure(`${to.name} is still in recovery after pg_promote`, `read ${to.name}'s log`);
    },
  };
}

/** Records `firstWriteAt`: the end of the write gap (switchover) or of the RTO (failover). */
export function routeTrafficStep(change: RoleChange): Step {
  const { outputs, from, to } = change;
  return {
    name: `Route the traffic endpoint to ${to.name} and prove a write goes through`,
    plan: `switch ${outputs.database.traffic.host}:${outputs.database.traffic.port} to ${to.name}; one write through it`,
    isDone: async (ctx) => (await (await change.platform()).routedTo()) === to.name && (await inRecovery(outputs, to, ctx)) === false && (await inRecovery(outputs, from, ctx)) !== false,
    action: async (ctx) => {
      await (await change.platform()).routeTraffic(to);
      const took = await firstWrite(outputs, `${from.name} → ${to.name}: ${change.reason}`, ctx);
      ctx.record("firstWriteAt", Date.now());
      if (took !== to.name) throw new StepFailure(`the write through the endpoint landed on ${took}, not ${to.name}`, "check the traffic endpoint's configuration");
    },
  };
}

export function recordPrimaryStep(change: RoleChange): Step {
  const { to } = change;
  return {
    name: `Record ${to.name} as the stack's primary`,
    plan: "so `sandbox up` / the next `pulumi up` keep the new topology instead of flipping traffic back",
    isDone: async () => (await (await change.platform()).recordedPrimary()) === to.name,
    action: async (ctx) => {
      ctx.record("recordedIn", await (await change.platform()).recordPrimary(to));
    },
  };
}

export function appReconnectedStep(change: RoleChange): Step {
  return {
    name: "Check that the app reconnected (restart it only when it did not)",
    plan: "GET /health/ready until the bot reaches the database through the endpoint; restart the app after 5 s",
    action: async (ctx) => {
      if (await appReady(change.outputs, 5_000, ctx)) return;
      ctx.log("the app did not reconnect within 5 s: restarting it");
      await (await change.platform()).restartApp((line) => ctx.log(line));
      if (!(await appReady(change.outputs, 15_000, ctx))) {
        throw new StepFailure("the app is not ready after a restart", "read the app's log; the database change itself is complete");
      }
    },
  };
}

/** `at`: the site whose API resumes (a DR move pauses at one site and resumes at the other). @default the change's own */
export function resumeTradingStep(change: RoleChange, at?: { outputs: StackOutputs; site: string }): Step {
  return {
    name: at ? `Resume trading at the ${at.site}` : "Resume trading",
    plan: `POST /api/trading/resume${at ? ` on the ${at.site}'s API` : ""} — only after the verification above (I9), and only if this run paused it`,
    action: async (ctx) => {
      if (await change.pausing) await resumeTrading(at?.outputs ?? change.outputs, ctx);
    },
  };
}

// ---- PostgreSQL questions -------------------------------------------------------------------------

export async function inRecovery(outputs: StackOutputs, node: PgNode, ctx: StepContext): Promise<boolean | undefined> {
  const state = await recoveryState(outputs, node, ctx);
  return typeof state === "boolean" ? state : undefined;
}

/** `node`'s pg_is_in_recovery(), or why it did not answer ("no answer within 3 s"), for refusals that name it. */
export async function recoveryState(outputs: StackOutputs, node: PgNode, ctx: StepContext): Promise<boolean | { noAnswer: string }> {
  return onPg(outputs, node, async (client) => (await client.query<{ r: boolean }>("select pg_is_in_recovery() as r")).rows[0]!.r, { signal: ctx.signal, timeoutMs: 3_000 }).catch(
    (error) => ({ noAnswer: oneLine(error) }),
  );
}

export async function currentLsn(outputs: StackOutputs, node: PgNode, ctx: StepContext, timeoutMs = 3_000): Promise<string | undefined> {
  return onPg(outputs, node, async (client) => (await client.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn")).rows[0]!.lsn, { signal: ctx.signal, timeoutMs }).catch(() => undefined);
}

export async function receivedLsn(outputs: StackOutputs, node: PgNode, ctx: StepContext): Promise<string | undefined> {
  return onPg(outputs, node, async (client) => (await client.query<{ lsn: string | null }>("select pg_last_wal_receive_lsn()::text as lsn")).rows[0]!.lsn ?? undefined, { signal: ctx.signal, timeoutMs: 3_000 }).catch(() => undefined);
}

/** How `standby` replicates from `primary` as the primary sees it; undefined when it does not stream. */
export async function replicationOf(outputs: StackOutputs, primary: PgNode, standby: PgNode, ctx: StepContext): Promise<{ syncState: string; lagBytes: number } | undefined> {
  const row = await onPg(
    outputs,
    primary,
    async (client) =>
      (
        await client.query<{ state: string; sync_state: string; lag: string | null }>(
          "select state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint as lag from pg_stat_replication where application_name = $1",
          [standby.name],
        )
      ).rows[0],
    { signal: ctx.signal, timeoutMs: 3_000 },
  ).catch(() => undefined);
  return row?.state === "streaming" ? { syncState: row.sync_state, lagBytes: Number(row.lag ?? 0) } : undefined;
}

/**
 * After `from` stopped cleanly, `to` must have received its WAL up to `lsn` (within 5 s: its
 * shutdown checkpoint streams); otherwise promoting `to` would lose writes — a step failure.
 */
export async function receivedAll(outputs: StackOutputs, from: PgNode, to: PgNode, lsn: string, ctx: StepContext, next: string): Promise<void> {
  const caughtUp = await until(async () => {
    const received = await receivedLsn(outputs, to, ctx);
    return received !== undefined && lsnDiff(received, lsn) >= 0;
  }, 5_000, ctx.signal);
  if (!caughtUp) throw new StepFailure(`${to.name} did not receive all of ${from.name}'s WAL (up to ${lsn}): promoting it would lose writes`, next);
}

/** Bytes between two LSNs ("0/3000060"). */
export function lsnDiff(later: string, earlier: string): number {
  const value = (lsn: string) => {
    const [high, low] = lsn.split("/").map((part) => BigInt(`0x${part}`));
    return (high! << 32n) + low!;
  };
  return Number(value(later) - value(earlier));
}

/** Polls `check` every `everyMs` until it is true or `withinMs` passed. */
export async function until(check: () => Promise<boolean>, withinMs: number, signal: AbortSignal, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (!signal.aborted) {
    if (await check().catch(() => false)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return false;
}

// ---- the app --------------------------------------------------------------------------------------

async function firstWrite(outputs: StackOutputs, by: string, ctx: StepContext): Promise<string> {
  const deadline = Date.now() + FIRST_WRITE_WITHIN_MS;
  let last: unknown;
  while (Date.now() < deadline && !ctx.signal.aborted) {
    try {
      return await writeThroughTraffic(outputs, by, { signal: ctx.signal, timeoutMs: 2_000 });
    } catch (error) {
      last = error;
      await sleep(10);
    }
  }
  throw new StepFailure(`no write went through the traffic endpoint within ${FIRST_WRITE_WITHIN_MS / 1000} s (${oneLine(last)})`, "check the endpoint routes to the new primary (`tradeops health`)");
}

async function pauseTrading(outputs: StackOutputs, reason: string, ctx: StepContext): Promise<boolean> {
  try {
    const answer = await opsApiRequest(outputs.opsApi, "/api/trading/pause", { method: "POST", body: { reason }, signal: ctx.signal, timeoutMs: 3_000 });
    ctx.record("tradingPaused", answer.status === 200);
    if (answer.status !== 200) ctx.log(`the ops API answered ${answer.status} to pause: going on without it`);
    return answer.status === 200;
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

/** The bot's readiness (it reaches PostgreSQL through the endpoint, and Redis), polled up to `withinMs`. */
async function appReady(outputs: StackOutputs, withinMs: number, ctx: StepContext): Promise<boolean> {
  return until(async () => (await opsApiRequest(outputs.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 1_000 })).status === 200, withinMs, ctx.signal);
}

/** "trading paused, then resumed" for the reports. */
export function tradingLine(facts: Record<string, unknown>): string {
  if (!facts.tradingPaused) return "not paused (the ops API did not answer)";
  return facts.tradingResumed ? "paused, then resumed" : "paused, NOT resumed: resume it once the API answers";
}

export function lagLine(lagBytes: number | null | undefined): string {
  return lagBytes === null || lagBytes === undefined ? "unknown" : bytes(lagBytes);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The node that takes writes now, asked of both (each answers in recovery or not); undefined: none
 * or both. `silent` names the nodes that did not answer, and why.
 */
export async function livePrimary(outputs: StackOutputs, ctx: StepContext): Promise<{ primary?: PgNode; writable: string[]; silent: string[] }> {
  const nodes = [outputs.database.primary, outputs.database.standby].filter((node): node is PgNode => node !== undefined);
  const states = await Promise.all(nodes.map((node) => recoveryState(outputs, node, ctx)));
  const writable = nodes.filter((_, i) => states[i] === false);
  const silent = nodes.flatMap((node, i) => {
    const state = states[i]!;
    return typeof state === "object" ? [`${node.name} does not answer (${state.noAnswer})`] : [];
  });
  return { primary: writable.length === 1 ? writable[0] : undefined, writable: writable.map((node) => node.name), silent };
}

/**
 * The middle of a planned change of primary, shared by `switchover` and `failback`: fence `from`
 * at the endpoint, stop it cleanly (its shutdown checkpoint streams to `to`) and check `to`
 * received everything, promote `to`, route and prove a write, record it, and rejoin `from` as its
 * standby. Every step checks first whether its effect is in place, so a re-run converges.
 */
export function switchSteps(change: RoleChange): Step[] {
  const { outputs, from, to } = change;
  const toIsPrimary = async (ctx: StepContext) => (await inRecovery(outputs, to, ctx)) === false;
  let fromLsn: string | undefined;
  return [
    {
      name: `Let WAL archiving on ${from.name} catch up`,
      plan: `segments waiting for archive-push go to the repository before the stop, which would wait for them inside the write gap; up to ${ARCHIVE_CATCH_UP_MS / 1000} s`,
      readOnly: true,
      isDone: toIsPrimary,
      action: async (ctx) => {
        const waiting = () =>
          onPg(outputs, from, async (client) => Number((await client.query<{ n: string }>("select count(*) as n from pg_ls_archive_statusdir() where name like '%.ready'")).rows[0]!.n), { signal: ctx.signal, timeoutMs: 3_000 });
        if (!(await until(async () => (await waiting()) === 0, ARCHIVE_CATCH_UP_MS, ctx.signal))) ctx.log(`${await waiting().catch(() => "?")} segment(s) still waiting for archiving: the stop will push them`);
      },
    },
    {
      name: `Stop writes: take ${from.name} out of the traffic endpoint`,
      plan: `${from.name} gets no new session and its sessions through the endpoint are cut; the write gap starts`,
      isDone: toIsPrimary,
      action: async (ctx) => {
        await (await change.platform()).fenceTraffic(from);
        ctx.record("fencedAt", Date.now());
      },
    },
    {
      name: `Stop ${from.name} cleanly and check ${to.name} received everything it wrote`,
      plan: `pg_ctl stop -m fast (the shutdown checkpoint streams to ${to.name}); ${to.name}'s received LSN must reach ${from.name}'s last`,
      isDone: toIsPrimary,
      action: async (ctx) => {
        fromLsn = await currentLsn(outputs, from, ctx);
        const t = await change.platform();
        ctx.log(`${from.name}: ${await t.stop(from, (line) => ctx.log(line))}`);
        await t.demote(from, to);
      },
      verify: async (ctx) => {
        if (fromLsn) await receivedAll(outputs, from, to, fromLsn, ctx, `start ${from.name} again (it was made a standby: remove standby.signal first) and find out why ${to.name} lags`);
      },
    },
    promoteStep(change),
    routeTrafficStep(change),
    recordPrimaryStep(change),
    rejoinStep(outputs, from, to, () => change.platform()),
  ];
}

/**
 * `node` streams from `primary` as its standby: stopped when it runs without streaming, rewound
 * (pg_rewind; "no rewind required" after a clean stop) — or cloned fresh when it cannot be, or when
 * the rewound node cannot start (it needs WAL its source no longer has: a source restored from a
 * backup has none from before it) — started, and caught up. `fresh`: clone it without trying.
 */
export function rejoinStep(outputs: StackOutputs, node: PgNode, primary: PgNode, platform: () => Promise<Topology>, fresh?: () => string | undefined): Step {
  const streams = async (ctx: StepContext) => (await replicationOf(outputs, primary, node, ctx)) !== undefined;
  return {
    name: `Rejoin ${node.name} as a standby of ${primary.name}`,
    plan: `stop it if it runs without streaming; pg_rewind from ${primary.name} (a fresh clone when that fails); start it; wait until it has caught up`,
    isDone: streams,
    action: async (ctx) => {
      const t = await platform();
      if (await t.running(node)) ctx.log(`${node.name}: ${await t.stop(node, (line) => ctx.log(line))}`);
      const clone = async (why: string) => {
        ctx.log(`${why}: cloning ${node.name} fresh from ${primary.name}`);
        ctx.record(`${node.name}.rejoinedBy`, `fresh clone (${why})`);
        if (await t.running(node)) await t.stop(node, (line) => ctx.log(line));
        await t.discard(node);
        await t.start(node, (line) => ctx.log(line));
      };
      const cloneWhy = fresh?.();
      if (cloneWhy) {
        await clone(cloneWhy);
      } else {
        let rewound = false;
        try {
          const result = await t.rewind(node, primary, (line) => ctx.log(line));
          ctx.record(`${node.name}.rejoinedBy`, result === "rewound" ? "pg_rewind" : "nothing to rewind (its WAL had not diverged)");
          rewound = true;
        } catch (error) {
          await clone(`pg_rewind failed: ${oneLine(error)}`);
        }
        if (rewound) await t.start(node, (line) => ctx.log(line)).catch((error: unknown) => clone(`it did not start after pg_rewind: ${oneLine(error)}`));
      }
      const caughtUp = await until(async () => (await replicationOf(outputs, primary, node, ctx))?.lagBytes === 0, 60_000, ctx.signal);
      if (!caughtUp) ctx.log(`${node.name} streams but has not caught up yet`);
    },
    verify: async (ctx) => {
      const replication = await replicationOf(outputs, primary, node, ctx);
      if (!replication) throw new StepFailure(`${node.name} does not stream from ${primary.name}`, `read ${node.name}'s log`);
      ctx.record(`${node.name}.replication`, replication.syncState);
    },
  };
}
