/**
 * `tradeops health` — Z1, S3, C1: is every component up, and how fast does it answer?
 *
 * Replaces the seeds' `curl /health/ready`, `pg_isready`, `redis-cli ping` and `docker compose ps`
 * with one parallel probe of every component named in the stack outputs. Exit 1 when anything is
 * unhealthy, naming it.
 */
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { RunDocument } from "./engine/document.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { opsApi, s3Client, withPg, withRedis } from "./clients.ts";
import { bytes, table } from "./format.ts";

export const ComponentName = z.enum(["primary", "standby", "traffic", "redis", "backup-repository", "ops-api"]);

export const ComponentHealth = z.object({
  component: ComponentName,
  /** host:port or URL probed; never carries credentials. */
  target: z.string(),
  status: z.enum(["healthy", "unhealthy"]),
  latencyMs: z.number().nonnegative(),
  detail: z.string(),
});
export type ComponentHealth = z.infer<typeof ComponentHealth>;

/** The `report` of `tradeops health --json`. */
export const HealthReport = z.object({
  status: z.enum(["healthy", "unhealthy"]),
  checkedAt: z.iso.datetime(),
  components: z.array(ComponentHealth),
});
export type HealthReport = z.infer<typeof HealthReport>;

/** What `tradeops health --json` prints. */
export const HealthDocument = RunDocument.extend({ report: HealthReport.nullable() });

/** A probe gives up after this long; a hung component is reported, not waited for. */
const PROBE_TIMEOUT_MS = 5000;

type Probe = { component: z.infer<typeof ComponentName>; target: string; check: () => Promise<string> };

export const health = defineRunbook({
  name: "health",
  summary: "Probe every component in parallel and report status and latency (exit 1 when unhealthy)",
  features: ["Z1", "S3", "C1"],
  mutates: false,
  args: z.object({}),
  steps: (_args, outputs) => {
    let components: ComponentHealth[] = [];
    return [
      {
        name: "Probe every component in parallel",
        plan: probes(outputs)
          .map((p) => `${p.component} (${p.target})`)
          .join(", "),
        action: async (ctx) => {
          components = await Promise.all(probes(outputs).map(runProbe));
          const report: HealthReport = {
            status: components.every((c) => c.status === "healthy") ? "healthy" : "unhealthy",
            checkedAt: new Date().toISOString(),
            components,
          };
          ctx.record("health", report);
        },
      },
      {
        name: "Confirm every component is healthy",
        action: async () => {
          const unhealthy = components.filter((c) => c.status === "unhealthy");
          if (unhealthy.length) {
            throw new StepFailure(
              `unhealthy: ${unhealthy.map((c) => `${c.component} (${c.detail})`).join("; ")}`,
              "run `tradeops diagnose` for the detailed views, then the runbook for the failed component",
            );
          }
        },
      },
    ];
  },
  report: (facts) => {
    const report = facts.health as HealthReport | undefined;
    if (!report) return { text: "no health report: the probes did not run", json: null };
    const rows = report.components.map((c) => [c.component, c.status, `${c.latencyMs.toFixed(1)} ms`, c.target, c.detail]);
    const unhealthy = report.components.filter((c) => c.status === "unhealthy").length;
    const headline = unhealthy
      ? `${report.status}: ${unhealthy} of ${report.components.length} components unhealthy`
      : `${report.status}: all ${report.components.length} components healthy`;
    return { text: `${headline}\n${table(["COMPONENT", "STATUS", "LATENCY", "TARGET", "DETAIL"], rows)}`, json: report };
  },
});

async function runProbe(probe: Probe): Promise<ComponentHealth> {
  const startedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS);
  });
  try {
    const detail = await Promise.race([probe.check(), timeout]);
    return { component: probe.component, target: probe.target, status: "healthy", latencyMs: elapsed(startedAt), detail };
  } catch (error) {
    return {
      component: probe.component,
      target: probe.target,
      status: "unhealthy",
      latencyMs: elapsed(startedAt),
      detail: oneLine(error),
    };
  } finally {
    clearTimeout(timer);
  }
}

function elapsed(startedAt: number): number {
  return Math.round((performance.now() - startedAt) * 10) / 10;
}

function probes(outputs: StackOutputs): Probe[] {
  const { database, redis, backup } = outputs;
  const list: Probe[] = [
    { component: "primary", target: hostPort(database.primary), check: () => checkPrimary(outputs) },
    { component: "traffic", target: hostPort(database.traffic), check: () => checkTraffic(outputs) },
    { component: "redis", target: hostPort(redis), check: () => checkRedis(outputs) },
    {
      component: "backup-repository",
      target: `s3://${backup.bucket}${backup.prefix} at ${backup.endpoint}:${backup.port}`,
      check: () => checkBackupRepository(outputs),
    },
    { component: "ops-api", target: new URL("/health/ready", outputs.opsApi.url).href, check: () => checkOpsApi(outputs) },
  ];
  if (database.standby) list.splice(1, 0, { component: "standby", target: hostPort(database.standby), check: () => checkStandby(outputs) });
  return list;
}

function hostPort(endpoint: { host: string; port: number }): string {
  return `${endpoint.host}:${endpoint.port}`;
}

/** The primary must accept writes; with synchronous replication it must also have its sync standby, or commits hang. */
async function checkPrimary(outputs: StackOutputs): Promise<string> {
  const { primary } = outputs.database;
  return withPg(outputs, primary, async (client) => {
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
  });
}

/** The standby must be in recovery, streaming, and within the lag limit failover accepts (I6). */
async function checkStandby(outputs: StackOutputs): Promise<string> {
  const { standby, primary, replication } = outputs.database;
  const state = await withPg(outputs, standby!, async (client) => {
    const { rows } = await client.query<{ in_recovery: boolean; receiver: string | null }>(
      `select pg_is_in_recovery() as in_recovery, (select status from pg_stat_wal_receiver) as receiver`,
    );
    return rows[0]!;
  });
  if (!state.in_recovery) throw new Error(`${standby!.name} is not in recovery: it was promoted (split brain risk)`);
  if (state.receiver !== "streaming") throw new Error(`${standby!.name} WAL receiver is ${state.receiver ?? "not running"}`);
  const lag = await withPg(outputs, primary, async (client) => {
    const { rows } = await client.query<{ lag_bytes: string | null; sync_state: string }>(
      `select pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint as lag_bytes, sync_state
         from pg_stat_replication where application_name = $1`,
      [standby!.name],
    );
    return rows[0];
  });
  if (!lag) throw new Error(`${primary.name} does not list ${standby!.name} in pg_stat_replication`);
  const lagBytes = Number(lag.lag_bytes ?? 0);
  if (lagBytes > replication.maxLagBytes) {
    throw new Error(`${standby!.name} replay lag ${bytes(lagBytes)} exceeds ${bytes(replication.maxLagBytes)}`);
  }
  return `${standby!.name} streaming (${lag.sync_state}), replay lag ${bytes(lagBytes)}`;
}

/** The traffic endpoint must land on a writable server — the primary. */
async function checkTraffic(outputs: StackOutputs): Promise<string> {
  const { database } = outputs;
  return withPg(outputs, database.traffic, async (client) => {
    const { rows } = await client.query<{ in_recovery: boolean; port: number }>(
      `select pg_is_in_recovery() as in_recovery, inet_server_port() as port`,
    );
    const row = rows[0]!;
    const node = [database.primary, database.standby].find((n) => n?.port === row.port)?.name ?? `port ${row.port}`;
    if (row.in_recovery) throw new Error(`routes to ${node}, which is read-only (in recovery)`);
    return `routes to ${node} (writable)`;
  });
}

async function checkRedis(outputs: StackOutputs): Promise<string> {
  return withRedis(outputs, async (redis) => {
    const pong = await redis.ping();
    if (pong !== "PONG") throw new Error(`PING answered ${pong}`);
    const info = parseInfo(await redis.info("persistence"));
    if (info.rdb_last_bgsave_status !== "ok") throw new Error(`last RDB save failed (${info.rdb_last_bgsave_status})`);
    if (info.aof_enabled === "1" && info.aof_last_write_status !== "ok") throw new Error(`AOF writes failing (${info.aof_last_write_status})`);
    return `PONG; AOF ${info.aof_enabled === "1" ? "on" : "off"}, last RDB save ${info.rdb_last_bgsave_status}`;
  });
}

export function parseInfo(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((line) => line.includes(":") && !line.startsWith("#"))
      .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
  );
}

/** The repository answers: HeadBucket with the stack's credentials (also backup's first precondition). */
export async function checkBackupRepository(outputs: StackOutputs): Promise<string> {
  const s3 = s3Client(outputs.backup);
  try {
    await s3.send(new HeadBucketCommand({ Bucket: outputs.backup.bucket }));
    return `bucket ${outputs.backup.bucket} reachable`;
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    throw new Error(status ? `bucket ${outputs.backup.bucket}: HTTP ${status}` : oneLine(error));
  } finally {
    s3.destroy();
  }
}

async function checkOpsApi(outputs: StackOutputs): Promise<string> {
  const { status, body } = await opsApi(outputs, "/health/ready");
  const report = body as { status?: string; components?: Record<string, { status?: string }> };
  const failing = Object.entries(report.components ?? {})
    .filter(([, c]) => c.status !== "healthy")
    .map(([name]) => name);
  if (status !== 200) throw new Error(`/health/ready answered ${status}${failing.length ? `; bot reports ${failing.join(", ")} unhealthy` : ""}`);
  return `ready; bot sees ${Object.keys(report.components ?? {}).join(", ") || "no components"} healthy`;
}
