/**
 * `tradeops rollback app|migration|model` — I4, the IFTB seed's rollback section, and T4's image
 * rollback. `kubectl rollout undo` alone swaps the pod template back and leaves the schema, the
 * model and the stack config as they were; here one command can do all of it, in the safe order:
 *
 *   rollback app --with-migrations --with-model
 *     pause trading → model set back (verified, reloaded) → app back to the previous release →
 *     migrations down to that release's schema version (logical backup first, one transaction) →
 *     health → stack config reconciled → resume trading (only if this run paused it)
 *
 * Each part also runs alone. Every step checks first whether its effect is in place, so a re-run
 * after a failure continues where it stopped.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { LivenessReport, TradingStatus } from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { migrateTo, migrationSet, missingSteps, schemaVersion, type MigrationFile } from "../clients/migrations.ts";
import { onPg } from "./connect.ts";
import { Refusal, StepFailure, UsageError, oneLine } from "./engine/errors.ts";
import { defineRunbook, type Step, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { health } from "./health.ts";
import { ModelVersion, modelRestoreSteps, modelSetReport } from "./model-sets.ts";
import { ApiUnavailable, callOpsApi } from "./ops-api.ts";
import { releasePlatformOf, type ReleaseChange } from "./platform/release.ts";
import { shellWord } from "./pulumi.ts";
import { until } from "./role-change.ts";
import { stateDirFor } from "./state.ts";
import { libpqEnv, pgTool } from "./table-dumps.ts";

/** A rolled-back app must answer healthy on its release within this long. */
const HEALTHY_WITHIN_MS = 60_000;
const ROLLBACK_REASON = "rollback in progress (tradeops rollback)";

// ---- the app ------------------------------------------------------------------------------------------

/** The release the API reports on /health and whether it is ready (it reaches PostgreSQL and Redis). */
export async function appOnRelease(outputs: StackOutputs, release: string, ctx: Pick<StepContext, "signal">): Promise<boolean> {
  const live = await opsApiRequest(outputs.opsApi, "/health", { signal: ctx.signal, timeoutMs: 1_000 });
  if (live.status !== 200 || LivenessReport.safeParse(live.body).data?.version !== release) return false;
  return (await opsApiRequest(outputs.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 1_000 })).status === 200;
}

/** Where a rollback or upgrade of the app keeps what it found, for the steps after it. */
export interface AppMove {
  from?: string;
  to?: string;
  change?: ReleaseChange;
}

/** The app back to `to` (a release or revision; default: the previous), healthy on it, the stack config reconciled. */
export function appRollbackSteps(outputs: StackOutputs, to: string | undefined, move: AppMove): Step[] {
  const platform = () => releasePlatformOf(outputs);
  return [
    {
      name: "Find the release to roll back to",
      plan: `the running release and ${to ? `release ${to}` : "the previous one"} (${outputs.platform.kind})`,
      readOnly: true,
      action: async (ctx) => {
        const { current, previous } = await (await platform()).releases();
        move.from ??= current;
        move.to = to ?? previous;
        if (!move.to) throw new Refusal(`no previous release is recorded (running: ${current})`, "name one: --to RELEASE");
        const known = await (await platform()).known();
        if (known && !/^\d+$/.test(move.to) && !known.includes(move.to)) throw new Refusal(`no release ${move.to} (known: ${known.join(", ")})`);
        ctx.record("release", { from: move.from, to: move.to });
        if (current === move.to) ctx.log(`already on ${current}`);
      },
    },
    {
      name: "Roll the app back",
      plan: { sandbox: "restart the reference API on the previous release", docker: "recreate the container from the previous image tag (the old one kept until the new one runs)", kubernetes: "rollout undo [--to-revision] of the Deployment through the API server, then wait for the rollout" }[outputs.platform.kind],
      isDone: async () => (await (await platform()).releases()).current === move.to,
      action: async (ctx) => {
        move.change = await (await platform()).rollBack(to ?? move.to, (line) => ctx.log(line));
        move.to = move.change.to;
        ctx.record("appChange", move.change);
      },
      undo: { plan: "roll forward to the release that ran before", run: async (ctx) => void (move.from && (await (await platform()).deploy(move.from, (line) => ctx.log(line)))) },
    },
    {
      name: "Wait until the app is healthy on that release",
      plan: `/health reports the release and /health/ready answers 200, within ${HEALTHY_WITHIN_MS / 1000} s`,
      readOnly: true,
      action: async (ctx) => {
        if (!(await until(() => appOnRelease(outputs, move.to!, ctx), HEALTHY_WITHIN_MS, ctx.signal, 100))) {
          throw new StepFailure(`the app is not healthy on ${move.to} within ${HEALTHY_WITHIN_MS / 1000} s`, "read the app's log; `tradeops health`");
        }
        ctx.record("appHealthyAt", Date.now());
      },
    },
    reconcileStep(outputs, () => move.to),
  ];
}

/** So the next `pulumi up` does not roll forward again. */
export function reconcileStep(outputs: StackOutputs, release: () => string | undefined): Step {
  return {
    name: "Record the release in the stack config",
    plan: outputs.platform.kind === "sandbox" ? "the sandbox's release.json" : `pulumi config set ${outputs.app?.imageConfigKey ?? "tradeops:apiImage"} <image>:<release> --stack ${shellWord(outputs.stack)} (printed when the Pulumi CLI is not here)`,
    action: async (ctx) => ctx.record("reconciled", await (await releasePlatformOf(outputs)).reconcile(release()!, ctx.signal)),
  };
}

// ---- migrations ---------------------------------------------------------------------------------------

export type MigrationTarget = { steps: number } | { to: number };

export interface MigrationMove {
  from?: number;
  to?: number;
  files?: MigrationFile[];
}

const migrationsOf = (outputs: StackOutputs) => {
  const migrations = outputs.app?.migrations;
  if (!migrations) throw new UsageError("the outputs name no migrations (app.migrations.dir): nothing to roll back");
  return migrations;
};

/** Tables a down migration drops, alters or truncates: what the logical backup keeps. */
export function tablesTouched(sql: string): string[] {
  const names = [...sql.matchAll(/\b(?:DROP|ALTER|TRUNCATE)\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?("?[\w.]+"?)/gi)].map((m) => m[1]!.replaceAll('"', ""));
  return [...new Set(names)];
}

/**
 * Down to `target()` in one transaction, after a `pg_dump -Fc` of every table the down migrations
 * touch; refused (exit 3) before anything when a step has no down migration.
 */
export function migrationRollbackSteps(outputs: StackOutputs, target: () => Promise<MigrationTarget>, move: MigrationMove): Step[] {
  const { dir, table } = migrationsOf(outputs);
  const traffic = outputs.database.traffic;
  const onDb = <T>(use: Parameters<typeof onPg<T>>[2], ctx: StepContext, timeoutMs = 10_000) => onPg(outputs, traffic, use, { signal: ctx.signal, timeoutMs });
  const atTarget = async (ctx: StepContext) => move.to !== undefined && (await onDb(async (c) => schemaVersion(await migrationSet(c, dir, table)), ctx)) <= move.to;
  return [
    {
      name: "Read the schema version and the down migrations",
      plan: `the version in table ${table}; every version down to the target needs its NNN.undo.*.sql in ${dir} (refused otherwise)`,
      readOnly: true,
      action: async (ctx) => {
        const wanted = await target();
        await onDb(async (client) => {
          const set = await migrationSet(client, dir, table);
          move.from = await schemaVersion(set);
          move.to = "to" in wanted ? wanted.to : Math.max(0, move.from - wanted.steps);
          const missing = missingSteps(set, move.from, move.to);
          if (move.to < move.from && missing.length) {
            throw new Refusal(`no down migration for version ${missing.join(", ")} in ${dir}: the schema cannot go from ${move.from} to ${move.to}`, `write ${missing.map((v) => `${String(v).padStart(3, "0")}.undo.<name>.sql`).join(", ")} (and test it), or restore the database instead (tradeops restore --to-time)`);
          }
          move.files = set.files.filter((f) => f.action === "undo" && f.version > move.to! && f.version <= move.from!).sort((a, b) => b.version - a.version);
        }, ctx);
        ctx.record("schema", { from: move.from, to: move.to, files: move.files!.map((f) => f.filename.split("/").at(-1)) });
        if (move.to! >= move.from!) ctx.log(`schema version ${move.from}: nothing to roll back to ${move.to}`);
      },
    },
    {
      name: "Take a logical backup of the tables the down migrations touch",
      plan: "pg_dump -Fc of each table they drop or alter, into the stack's state dir (restore a table with pg_restore -t)",
      isDone: atTarget,
      action: async (ctx) => {
        const { readFileSync } = await import("node:fs");
        const named = [...new Set(move.files!.flatMap((f) => tablesTouched(readFileSync(f.filename, "utf8"))))];
        const present = await onDb(async (c) => (await c.query<{ name: string }>("select table_name as name from information_schema.tables where table_schema = current_schema() and table_name = any($1)", [named])).rows.map((r) => r.name), ctx);
        if (!present.length) return ctx.log("the down migrations touch no existing table");
        const backupDir = join(stateDirFor(outputs), "migration-backups");
        mkdirSync(backupDir, { recursive: true, mode: 0o700 });
        const file = join(backupDir, `${new Date().toISOString().replace(/[:.]/g, "-")}-schema-${move.from}-to-${move.to}.dump`);
        await pgDump(outputs, present, file, ctx.signal);
        ctx.record("tableBackup", { file, tables: present });
      },
    },
    {
      name: "Run the down migrations in one transaction",
      plan: "postgrator on one connection inside BEGIN … COMMIT: a failing step leaves the schema exactly as it was",
      isDone: atTarget,
      action: async (ctx) => {
        const applied = await onDb(async (client) => migrateTo(client, await migrationSet(client, dir, table), move.to!), ctx, 120_000);
        ctx.log(`ran ${applied.map((f) => f.filename.split("/").at(-1)).join(", ") || "nothing"}`);
      },
      verify: async (ctx) => {
        const now = await onDb(async (c) => schemaVersion(await migrationSet(c, dir, table)), ctx);
        ctx.record("schemaVersion", now);
        if (now !== move.to) throw new StepFailure(`the schema is at version ${now}, not ${move.to}`, `look at table ${table}`);
      },
    },
  ];
}

async function pgDump(outputs: StackOutputs, tables: string[], file: string, signal: AbortSignal): Promise<void> {
  const { $ } = await import("zx");
  const args = ["-Fc", "-f", file, ...tables.flatMap((t) => ["-t", t])];
  // Connection and password through libpq's environment, never the argv `ps` shows.
  const run = await $({ quiet: true, nothrow: true, signal, env: libpqEnv(outputs, outputs.database.traffic), timeout: "600s" })`${pgTool(outputs, "pg_dump")} ${args}`;
  if (run.exitCode !== 0) throw new StepFailure(`pg_dump failed: ${oneLine(run.stderr || `exit ${run.exitCode}`)}`, "nothing was rolled back; fix the cause and re-run");
}

// ---- trading around the combined rollback -------------------------------------------------------------

export function pauseStep(outputs: StackOutputs, paused: { byUs: boolean }, reason: string): Step {
  return {
    name: "Pause trading",
    plan: "POST /api/trading/pause (I9): no order while the model, the app and the schema change",
    action: async (ctx) => {
      const before = (await callOpsApi(outputs, "/api/trading/status", { 200: TradingStatus }, ctx)).body;
      await callOpsApi(outputs, "/api/trading/pause", { 200: TradingStatus }, ctx, { reason });
      paused.byUs = !before.paused;
    },
  };
}

export function resumeStep(outputs: StackOutputs, paused: { byUs: boolean }): Step {
  return {
    name: "Resume trading (only if this run paused it)",
    plan: "POST /api/trading/resume, after health is green",
    action: async (ctx) => {
      if (!paused.byUs) return ctx.log("trading was paused before this run: it stays paused");
      try {
        await callOpsApi(outputs, "/api/trading/resume", { 200: TradingStatus }, ctx, {});
        ctx.record("tradingResumed", true);
      } catch (error) {
        if (!(error instanceof ApiUnavailable)) throw error;
        ctx.log(`${oneLine(error)}: trading stays paused`);
      }
    },
  };
}

// ---- the commands -------------------------------------------------------------------------------------

const releaseFlag = flag(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/, "a release (image tag) or a revision number").optional(), {
  description: "the release (image tag), or a Kubernetes revision number (default: the previous release)",
  placeholder: "release|revision",
});

const RollbackAppArgs = z.object({
  to: releaseFlag,
  withMigrations: flag(z.boolean().optional(), { description: "also run the migrations down to that release's schema version (after the app)" }),
  schemaVersion: flag(z.number().int().nonnegative().optional(), { description: "with --with-migrations: the schema version to go down to (default: the release's, where the platform knows it)", placeholder: "n" }),
  withModel: flag(z.union([z.literal(true), ModelVersion]).optional(), { description: "also restore a model set first (default: the one backed up before the live one)", placeholder: "version", optionalValue: true }),
});

export const rollbackApp = defineRunbook({
  command: ["rollback", "app"],
  name: "rollback-app",
  summary: "roll the app back to the previous release (and, with the flags, the model and the migrations, in the safe order); verified, config reconciled",
  features: ["I4", "T4", "Z7"],
  mutates: true,
  args: RollbackAppArgs,
  steps: (args, target) => {
    const { outputs } = target;
    const move: AppMove = {};
    const app = appRollbackSteps(outputs, args.to, move);
    if (!args.withMigrations && !args.withModel) return app;
    const paused = { byUs: false };
    const model = args.withModel ? modelRestoreSteps(outputs, args.withModel === true ? undefined : args.withModel) : [];
    const schemaTarget = async (): Promise<MigrationTarget> => {
      if (args.schemaVersion !== undefined) return { to: args.schemaVersion };
      const known = await (await releasePlatformOf(outputs)).schemaVersionOf(move.to!);
      if (known === undefined) throw new Refusal(`the platform does not know release ${move.to}'s schema version`, "name it: --schema-version N");
      return { to: known };
    };
    const migrations = args.withMigrations ? migrationRollbackSteps(outputs, schemaTarget, {}) : [];
    const [find, roll, wait, reconcile] = app;
    // Safe order (issue 10): pause; model; app; migrations down to the release's schema; health; resume.
    return [pauseStep(outputs, paused, ROLLBACK_REASON), find!, ...model, roll!, wait!, ...migrations, ...health.steps({}, target), reconcile!, resumeStep(outputs, paused)];
  },
  report: (facts) => {
    const release = facts.release as { from: string; to: string } | undefined;
    const change = facts.appChange as ReleaseChange | undefined;
    const schema = facts.schema as { from: number; to: number } | undefined;
    const lines = [
      change ? `app: ${change.from} → ${change.to} (${change.how})` : release ? `app: already on ${release.to}` : "app: not rolled back",
      ...(facts.modelSet ? [modelSetReport(facts).text] : []),
      ...(schema ? [`schema: version ${schema.from} → ${facts.schemaVersion ?? schema.from}${facts.tableBackup ? ` (tables kept in ${(facts.tableBackup as { file: string }).file})` : ""}`] : []),
      ...(facts.reconciled ? [`stack config: ${String(facts.reconciled)}`] : []),
    ];
    return { text: lines.join("\n"), json: { release: release ?? null, appChange: change ?? null, schema: schema ? { ...schema, now: facts.schemaVersion ?? null } : null, tableBackup: facts.tableBackup ?? null, model: facts.modelVersion ?? null, reconciled: facts.reconciled ?? null } };
  },
});

export const rollbackMigration = defineRunbook({
  command: ["rollback", "migration"],
  name: "rollback-migration",
  summary: "run the app's down migrations (N steps or to a version) in one transaction, after a logical backup of the tables they touch",
  features: ["I4"],
  mutates: true,
  args: z
    .object({
      steps: flag(z.number().int().min(1).optional(), { description: "how many versions to go down", placeholder: "n" }),
      to: flag(z.number().int().nonnegative().optional(), { description: "the schema version to go down to", placeholder: "version" }),
    })
    .superRefine((args, issues) => {
      if ((args.steps === undefined) === (args.to === undefined)) issues.addIssue({ code: "custom", path: ["steps"], message: "name one: --steps N or --to VERSION" });
    }),
  steps: (args, { outputs }) => migrationRollbackSteps(outputs, async () => (args.steps !== undefined ? { steps: args.steps } : { to: args.to! }), {}),
  report: (facts) => {
    const schema = facts.schema as { from: number; to: number; files: string[] } | undefined;
    if (!schema) return { text: "nothing was rolled back", json: null };
    const backup = facts.tableBackup as { file: string; tables: string[] } | undefined;
    const text = schema.to >= schema.from
      ? `schema version ${schema.from}: nothing to roll back`
      : `schema version ${schema.from} → ${facts.schemaVersion ?? schema.from} (${schema.files.join(", ")})${backup ? `\ntables ${backup.tables.join(", ")} kept in ${backup.file}` : ""}`;
    return { text, json: { ...schema, now: facts.schemaVersion ?? null, tableBackup: backup ?? null } };
  },
});

export const rollbackModel = defineRunbook({
  command: ["rollback", "model"],
  name: "rollback-model",
  summary: "put an older model set back from the backup bucket: checksums verified, reloaded through the API, version confirmed",
  features: ["I4"],
  mutates: true,
  args: z.object({ to: flag(ModelVersion.optional(), { description: "the model version (default: the set backed up before the live one)", placeholder: "version" }) }),
  steps: (args, { outputs }) => modelRestoreSteps(outputs, args.to),
  report: (facts) => (facts.modelSet ? modelSetReport(facts) : { text: "no model set was restored", json: null }),
});
