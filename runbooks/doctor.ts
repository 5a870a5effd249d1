/**
 * `tradeops doctor` — T1, T2, T3, S9, C6: every scenario of the troubleshooting seed recognised
 * from live signals, as one table: check → ok/warn/fail → what it saw → likely cause → the fix or
 * the `tradeops` command to run. `diagnose` shows views; the doctor says what is wrong.
 *
 * Every check runs at once, each under its own short deadline, and only reads. A signal that does
 * not exist on the platform is "n/a" with the reason, never a pass. Exit 1 when any check fails.
 */
import { z } from "zod";
import { NoAnswer } from "../clients/deadline.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { RunDocument } from "./engine/document.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { table } from "./format.ts";
import { hostSignals } from "./platform/host.ts";
import { logSource } from "./platform/logs.ts";
import { apiDependencies, apiLatency, apiStarts, authFailures, circuitBreaker, cors, exchange, memory, rateLimits, websocket } from "./doctor/api-checks.ts";
import { BACKUPS_CHECK_TIMEOUT_MS, type DoctorCheck, type Finding, fail, reachFor } from "./doctor/check.ts";
import { backupsFresh, cacheHits, dbConnections, orderRejections, replication, slowStatements, traffic } from "./doctor/db-checks.ts";
import { disk, resultFiles } from "./doctor/host-checks.ts";
import { type Metrics, scrapeMetrics } from "./doctor/metrics.ts";
import { redisMemory, redisReachable, worker } from "./doctor/redis-checks.ts";

/** In the order of the seed's scenarios: the API first, then what it depends on, then the machine. */
export const CHECKS: DoctorCheck[] = [
  apiStarts,
  apiDependencies,
  traffic,
  dbConnections,
  redisReachable,
  redisMemory,
  rateLimits,
  circuitBreaker,
  apiLatency,
  slowStatements,
  cacheHits,
  exchange,
  authFailures,
  websocket,
  disk,
  memory,
  cors,
  orderRejections,
  worker,
  resultFiles,
  backupsFresh,
  replication,
];

export const CHECK_NAMES = CHECKS.map((c) => c.name) as [string, ...string[]];

/** Each check's deadline: a hung component costs this, not the run (goal: the whole doctor ≤ 2 s). */
const CHECK_TIMEOUT_MS = 1500;

export const DoctorFinding = z.object({
  check: z.string(),
  status: z.enum(["ok", "warn", "fail", "n/a"]),
  saw: z.string(),
  cause: z.string().optional(),
  fix: z.string().optional(),
  features: z.array(z.string()),
  durationMs: z.number().nonnegative(),
});
export type DoctorFinding = z.infer<typeof DoctorFinding>;

export const DoctorReport = z.object({
  status: z.enum(["ok", "warn", "fail"]),
  checkedAt: z.iso.datetime(),
  findings: z.array(DoctorFinding),
});
export type DoctorReport = z.infer<typeof DoctorReport>;

/** What `tradeops doctor --json` prints. */
export const DoctorDocument = RunDocument.extend({ report: DoctorReport.nullable() });

const Only = z
  .string()
  .transform((text) => text.split(",").map((name) => name.trim()).filter(Boolean))
  .pipe(z.array(z.enum(CHECK_NAMES, { error: (issue) => `unknown check ${JSON.stringify(issue.input)}; checks: ${CHECK_NAMES.join(", ")}` })).min(1));

export const doctor = defineRunbook({
  command: ["doctor"],
  name: "doctor",
  summary: "every troubleshooting scenario checked from live signals: ok/warn/fail, cause and fix; exit 1 on a failure",
  features: ["T1", "T2", "T3", "S9", "C6"],
  mutates: false,
  args: z.object({
    only: flag(Only.optional(), { description: `only these checks, comma-separated (${CHECK_NAMES.join(", ")})`, placeholder: "names" }),
  }),
  steps: ({ only }, { outputs }) => {
    const chosen = only ? CHECKS.filter((c) => only.includes(c.name)) : CHECKS;
    let findings: DoctorFinding[] = [];
    return [
      {
        name: "Run every check in parallel",
        plan: `${chosen.map((c) => c.name).join(", ")} (each within ${CHECK_TIMEOUT_MS / 1000} s, backups ${BACKUPS_CHECK_TIMEOUT_MS / 1000} s; read-only)`,
        readOnly: true,
        action: async (ctx) => {
          findings = await runChecks(outputs, chosen, ctx.signal);
          ctx.record("doctor", { status: overall(findings), checkedAt: new Date().toISOString(), findings } satisfies DoctorReport);
        },
      },
      {
        name: "Confirm no check failed",
        readOnly: true,
        action: async () => {
          const failed = findings.filter((f) => f.status === "fail");
          if (failed.length) {
            throw new StepFailure(`${failed.length} check(s) failed: ${failed.map((f) => `${f.check} (${f.cause})`).join("; ")}`, failed[0]!.fix ?? "see the table");
          }
        },
      },
    ];
  },
  report: (facts) => {
    const report = facts.doctor as DoctorReport | undefined;
    if (!report) return { text: "no doctor report: the checks did not run", json: null };
    return { text: renderDoctor(report), json: report };
  },
});

/** The table, and the counts on top (what a person reads first at 3 a.m.). */
export function renderDoctor(report: DoctorReport): string {
  const count = (status: DoctorFinding["status"]) => report.findings.filter((f) => f.status === status).length;
  const headline = `${report.status}: ${count("fail")} failed, ${count("warn")} warnings, ${count("ok")} ok, ${count("n/a")} not available`;
  const fit = (text: string | undefined, width: number) => (!text ? "" : text.length > width ? `${text.slice(0, width - 1)}…` : text);
  const rows = report.findings.map((f) => [f.check, f.status, fit(f.saw, 90), fit(f.cause, 80), fit(f.fix, 100)]);
  return `${headline}\n${table(["CHECK", "STATUS", "SAW", "LIKELY CAUSE", "FIX"], rows)}`;
}

function overall(findings: DoctorFinding[]): DoctorReport["status"] {
  if (findings.some((f) => f.status === "fail")) return "fail";
  return findings.some((f) => f.status === "warn") ? "warn" : "ok";
}

export async function runChecks(outputs: StackOutputs, checks: DoctorCheck[], runSignal: AbortSignal): Promise<DoctorFinding[]> {
  let scrape: Promise<Metrics> | undefined;
  const shared = {
    // One scrape for every check that reads metrics.
    metrics: () => (scrape ??= scrapeMetrics(outputs.opsApi.url, { signal: runSignal, timeoutMs: CHECK_TIMEOUT_MS })),
    host: hostSignals(outputs),
    logs: logSource(outputs),
  };
  return Promise.all(
    checks.map(async (check) => {
      const startedAt = performance.now();
      const timeoutMs = check.timeoutMs ?? CHECK_TIMEOUT_MS;
      const deadline = AbortSignal.timeout(timeoutMs);
      const signal = AbortSignal.any([runSignal, deadline]);
      let finding: Finding;
      try {
        finding = await Promise.race([
          check.run(reachFor(outputs, signal, timeoutMs, shared)),
          new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(new NoAnswer(timeoutMs)), { once: true })),
        ]);
      } catch (error) {
        finding = fail(`the check did not finish: ${oneLine(error)}`, "a component it reads is hung", "`tradeops health` names the hung component");
      }
      return { check: check.name, features: check.features, durationMs: Math.round(performance.now() - startedAt), ...finding };
    }),
  );
}
