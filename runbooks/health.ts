/**
 * `tradeops health` — Z1, S3, C1: is every component up, and how fast does it answer?
 *
 * Replaces the seeds' `curl /health/ready`, `pg_isready`, `redis-cli ping` and `docker compose ps`
 * with one parallel probe of every component named in the stack outputs. Exit 1 when anything is
 * unhealthy, naming it.
 */
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { NoAnswer, type CallOptions } from "../clients/deadline.ts";
import { RunDocument } from "./engine/document.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { table } from "./format.ts";
import { checkAlertmanager, checkBackupRepository, checkOpsApi, checkPrimary, checkPrometheus, checkRedis, checkStandby, checkTraffic } from "./probes.ts";

export const ComponentName = z.enum(["primary", "standby", "traffic", "redis", "backup-repository", "ops-api", "prometheus", "alertmanager"]);

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

type Probe = { component: z.infer<typeof ComponentName>; target: string; check: (options: CallOptions) => Promise<string> };

export const health = defineRunbook({
  command: ["health"],
  name: "health",
  summary: "probe every component in parallel; exit 1 naming anything unhealthy",
  features: ["Z1", "S3", "C1"],
  mutates: false,
  args: z.object({}),
  steps: (_args, { outputs }) => {
    let components: ComponentHealth[] = [];
    return [
      {
        name: "Probe every component in parallel",
        plan: probes(outputs)
          .map((p) => `${p.component} (${p.target})`)
          .join(", "),
        action: async (ctx) => {
          components = await Promise.all(probes(outputs).map((probe) => runProbe(probe, ctx.signal)));
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

/** One probe under one deadline for all its calls; a hung component is reported, not waited for. */
async function runProbe(probe: Probe, runSignal: AbortSignal): Promise<ComponentHealth> {
  const startedAt = performance.now();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new NoAnswer(PROBE_TIMEOUT_MS)), PROBE_TIMEOUT_MS);
  const signal = AbortSignal.any([runSignal, deadline.signal]);
  const { component, target } = probe;
  try {
    const detail = await probe.check({ signal, timeoutMs: PROBE_TIMEOUT_MS });
    return { component, target, status: "healthy", latencyMs: elapsed(startedAt), detail };
  } catch (error) {
    return { component, target, status: "unhealthy", latencyMs: elapsed(startedAt), detail: oneLine(error) };
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
    { component: "primary", target: hostPort(database.primary), check: (options) => checkPrimary(outputs, options) },
    { component: "traffic", target: hostPort(database.traffic), check: (options) => checkTraffic(outputs, options) },
    { component: "redis", target: hostPort(redis), check: (options) => checkRedis(outputs, options) },
    {
      component: "backup-repository",
      target: `s3://${backup.bucket}${backup.prefix} at ${backup.endpoint}:${backup.port}`,
      check: (options) => checkBackupRepository(outputs, options),
    },
    { component: "ops-api", target: new URL("/health/ready", outputs.opsApi.url).href, check: (options) => checkOpsApi(outputs, options) },
  ];
  if (database.standby) list.splice(1, 0, { component: "standby", target: hostPort(database.standby), check: (options) => checkStandby(outputs, options) });
  const { monitoring } = outputs;
  if (monitoring) list.push({ component: "prometheus", target: monitoring.prometheusUrl, check: (options) => checkPrometheus(monitoring.prometheusUrl, options) });
  if (monitoring?.alertmanagerUrl) {
    const url = monitoring.alertmanagerUrl;
    list.push({ component: "alertmanager", target: url, check: (options) => checkAlertmanager(url, options) });
  }
  return list;
}

function hostPort(endpoint: { host: string; port: number }): string {
  return `${endpoint.host}:${endpoint.port}`;
}
