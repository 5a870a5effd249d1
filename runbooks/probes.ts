/**
 * One probe per component of the stack: each answers one line of what it found, or throws one line
 * of what is wrong. `health` runs them all; other runbooks run the one they depend on (backup
 * probes the repository before pgBackRest would retry it for a minute).
 */
import { NoAnswer, type CallOptions } from "../clients/deadline.ts";
import { httpRequest } from "../clients/http.ts";
import { opsApiRequest, parseAnswer } from "../clients/ops-api.ts";
import { S3_REQUEST_TIMEOUT_MS, s3Client } from "../clients/s3.ts";
import { ReadyReport } from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { onPg, onRedis } from "./connect.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { bytes } from "./format.ts";

/** The primary must accept writes; with synchronous replication it must also have its sync standby, or commits hang. */
export async function checkPrimary(outputs: StackOutputs, options?: CallOptions): Promise<string> {
  const { primary } = outputs.database;
  return onPg(
    outputs,
    primary,
    async (client) => {
      const { rows } = await client.query<{ in_recovery: boolean; sync_names: string; sync_standbys: number }>(
        `select pg_is_in_recovery() as in_recovery,
                current_setting('synchronous_standby_names') as sync_names,
                (select count(*)::int from pg_stat_replication where sync_state in ('sync', 'quorum')) as sync_standbys`,
      );
      const row = rows[0]!;
      if (row.in_recovery) throw new Error(`${primary.name} is in recovery: it is not a primary`);
      if (row.sync_names && row.sync_standbys === 0) {
        throw new Error(`${primary.name}: commits wait for a synchronous standby (${row.sync_names}) and none is connected`);
      }
      return `${primary.name} accepts writes${row.sync_names ? `; synchronous standby connected` : ""}`;
    },
    options,
  );
}

/** The primary answers and is not in recovery (what a backup needs; unlike `checkPrimary`, a missing sync standby is fine). */
export async function checkPrimaryAnswers(outputs: StackOutputs, options?: CallOptions): Promise<string> {
  const { primary } = outputs.database;
  const inRecovery = await onPg(outputs, primary, async (client) => (await client.query<{ r: boolean }>("select pg_is_in_recovery() as r")).rows[0]!.r, options);
  if (inRecovery) throw new Error(`${primary.name} is in recovery: it is not a primary`);
  return `${primary.name} answers as a primary`;
}

/** The standby must be in recovery, streaming, and within the lag limit failover accepts (I6). */
export async function checkStandby(outputs: StackOutputs, options?: CallOptions): Promise<string> {
  const { standby, primary, replication } = outputs.database;
  if (!standby) throw new Error("the stack has no standby");
  const state = await onPg(
    outputs,
    standby,
    async (client) => {
      const { rows } = await client.query<{ in_recovery: boolean; receiver: string | null }>(
        `select pg_is_in_recovery() as in_recovery, (select status from pg_stat_wal_receiver) as receiver`,
      );
      return rows[0]!;
    },
    options,
  );
  if (!state.in_recovery) throw new Error(`${standby.name} is not in recovery: it was promoted (split brain risk)`);
  if (state.receiver !== "streaming") throw new Error(`${standby.name} WAL receiver is ${state.receiver ?? "not running"}`);
  const lag = await onPg(
    outputs,
    primary,
    async (client) => {
      const { rows } = await client.query<{ lag_bytes: string | null; sync_state: string }>(
        `select pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint as lag_bytes, sync_state
           from pg_stat_replication where application_name = $1`,
        [standby.name],
      );
      return rows[0];
    },
    options,
  );
  if (!lag) throw new Error(`${primary.name} does not list ${standby.name} in pg_stat_replication`);
  const lagBytes = Number(lag.lag_bytes ?? 0);
  if (lagBytes > replication.maxLagBytes) {
    throw new Error(`${standby.name} replay lag ${bytes(lagBytes)} exceeds ${bytes(replication.maxLagBytes)}`);
  }
  return `${standby.name} streaming (${lag.sync_state}), replay lag ${bytes(lagBytes)}`;
}

/** The traffic endpoint must land on a writable server — the primary. */
export async function checkTraffic(outputs: StackOutputs, options?: CallOptions): Promise<string> {
  const { database } = outputs;
  return onPg(
    outputs,
    database.traffic,
    async (client) => {
      const { rows } = await client.query<{ in_recovery: boolean; port: number }>(
        `select pg_is_in_recovery() as in_recovery, inet_server_port() as port`,
      );
      const row = rows[0]!;
      const node = [database.primary, database.standby].find((n) => n?.port === row.port)?.name ?? `port ${row.port}`;
      if (row.in_recovery) throw new Error(`routes to ${node}, which is read-only (in recovery)`);
      return `routes to ${node} (writable)`;
    },
    options,
  );
}

export async function checkRedis(outputs: StackOutputs, options?: CallOptions): Promise<string> {
  return onRedis(
    outputs,
    async (redis) => {
      const pong = await redis.ping();
      if (pong !== "PONG") throw new Error(`PING answered ${pong}`);
      const info = parseRedisInfo(await redis.info("persistence"));
      if (info.rdb_last_bgsave_status !== "ok") throw new Error(`last RDB save failed (${info.rdb_last_bgsave_status})`);
      if (info.aof_enabled === "1" && info.aof_last_write_status !== "ok") throw new Error(`AOF writes failing (${info.aof_last_write_status})`);
      return `PONG; AOF ${info.aof_enabled === "1" ? "on" : "off"}, last RDB save ${info.rdb_last_bgsave_status}`;
    },
    options,
  );
}

/** `INFO` as key → value. */
export function parseRedisInfo(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((line) => line.includes(":") && !line.startsWith("#"))
      .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
  );
}

/** The repository answers: HeadBucket with the stack's credentials (also backup's first precondition). */
export async function checkBackupRepository(outputs: StackOutputs, options: CallOptions = {}): Promise<string> {
  const timeoutMs = options.timeoutMs ?? S3_REQUEST_TIMEOUT_MS;
  const s3 = await s3Client(outputs.backup, { requestTimeoutMs: timeoutMs });
  const { HeadBucketCommand } = await import("@aws-sdk/client-s3");
  try {
    await s3.send(new HeadBucketCommand({ Bucket: outputs.backup.bucket }), { abortSignal: options.signal });
    return `bucket ${outputs.backup.bucket} reachable`;
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    if ((error as Error).name === "TimeoutError") throw new NoAnswer(timeoutMs);
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    throw new Error(status ? `bucket ${outputs.backup.bucket}: HTTP ${status}` : oneLine(error));
  } finally {
    s3.destroy();
  }
}

/** The repository is probed this often while pgBackRest works against it… */
const REPOSITORY_WATCH_EVERY_MS = 2_000;
/** …and given up on after it failed to answer for this long. */
export const REPOSITORY_SILENT_LIMIT_MS = 15_000;

/**
 * Runs `work` (a pgBackRest command) while probing the repository; when it stops answering for
 * REPOSITORY_SILENT_LIMIT_MS, `work`'s signal aborts (pgBackRest is stopped) and the call rejects
 * saying so. Measured here: with the S3 store killed mid-backup, pgBackRest itself retried for 8 min
 * before it failed, and `check` waited its 60 s archive timeout.
 */
export async function whileRepositoryAnswers<T>(outputs: StackOutputs, signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let silentSince: number | undefined;
  let lastError = "";
  let gaveUp = false;
  const timer = setInterval(() => {
    void checkBackupRepository(outputs, { signal: stop.signal, timeoutMs: 3_000 }).then(
      () => (silentSince = undefined),
      (error: unknown) => {
        if (stop.signal.aborted) return;
        lastError = oneLine(error);
        silentSince ??= Date.now();
        if (Date.now() - silentSince >= REPOSITORY_SILENT_LIMIT_MS) {
          gaveUp = true;
          stop.abort(new Error("backup repository stopped answering"));
        }
      },
    );
  }, REPOSITORY_WATCH_EVERY_MS);
  try {
    return await work(stop.signal);
  } catch (error) {
    if (gaveUp && !signal.aborted) {
      throw new StepFailure(`the backup repository stopped answering for ${REPOSITORY_SILENT_LIMIT_MS / 1000} s (${lastError}): pgBackRest was stopped`, "bring the S3 store back (`tradeops health`), then re-run: an unfinished backup is never listed");
    }
    throw error;
  } finally {
    clearInterval(timer);
    signal.removeEventListener("abort", onAbort);
    if (!stop.signal.aborted) stop.abort();
  }
}

/** Z1: the bot's own readiness, parsed with the protocol the ops API speaks. */
export async function checkOpsApi(outputs: StackOutputs, options?: CallOptions): Promise<string> {
  const path = "/health/ready";
  const answer = await opsApiRequest(outputs.opsApi, path, options);
  const unhealthy = (report: ReadyReport) => Object.entries(report.components).filter(([, c]) => c.status !== "healthy").map(([name]) => name);
  if (answer.status !== 200) {
    const report = ReadyReport.safeParse(answer.body);
    const failing = report.success ? unhealthy(report.data) : [];
    throw new Error(`${path} answered ${answer.status}${failing.length ? `; bot reports ${failing.join(", ")} unhealthy` : ""}`);
  }
  const report = parseAnswer(path, answer, ReadyReport);
  return `ready; bot sees ${Object.keys(report.components).join(", ")} healthy`;
}

/** S5: the alerting side answers and has its rules loaded; a silent Prometheus pages nobody. */
export async function checkPrometheus(url: string, options?: CallOptions): Promise<string> {
  const ready = await httpRequest(new URL("/-/ready", url), options);
  if (ready.status !== 200) throw new Error(`/-/ready answered ${ready.status}`);
  const rules = await httpRequest(new URL("/api/v1/rules", url), options);
  const groups = (rules.body as { data?: { groups?: Array<{ rules?: unknown[] }> } }).data?.groups ?? [];
  const count = groups.reduce((sum, group) => sum + (group.rules?.length ?? 0), 0);
  if (count === 0) throw new Error("ready, but no alert rule is loaded: nothing would fire");
  // An exporter down is not an outage (nothing depends on it) but its alerts and panels are blind: say so.
  const targets = await httpRequest(new URL("/api/v1/targets?state=active", url), options).catch(() => undefined);
  const active = (targets?.body as { data?: { activeTargets?: Array<{ health: string; labels: { job?: string } }> } } | undefined)?.data?.activeTargets ?? [];
  const down = [...new Set(active.filter((target) => target.health === "down").map((target) => target.labels.job ?? "?"))];
  return `ready; ${count} alert rules loaded${down.length ? `; scrape targets down: ${down.join(", ")} (their alerts and panels are blind)` : ""}`;
}

export async function checkAlertmanager(url: string, options?: CallOptions): Promise<string> {
  const ready = await httpRequest(new URL("/-/ready", url), options);
  if (ready.status !== 200) throw new Error(`/-/ready answered ${ready.status}`);
  return "ready";
}

/**
 * One write through the traffic endpoint, as an application makes it: the proof a failover is over.
 * Returns the node (by port) that took it. The probe table is tradeops' own, one row per proof.
 */
export async function writeThroughTraffic(outputs: StackOutputs, by: string, options?: CallOptions): Promise<string> {
  const { database } = outputs;
  return onPg(
    outputs,
    database.traffic,
    async (client) => {
      await client.query("create table if not exists tradeops_write_probe (at timestamptz not null default now(), by text not null)");
      const { rows } = await client.query<{ port: number }>("insert into tradeops_write_probe (by) values ($1) returning inet_server_port() as port", [by]);
      const port = rows[0]?.port;
      return [database.primary, database.standby].find((node) => node?.port === port)?.name ?? `port ${port}`;
    },
    options,
  );
}
