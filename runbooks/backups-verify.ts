/**
 * `tradeops backups verify [--restore-test]` — `pgbackrest verify` (every backup file and WAL
 * segment in the repository against its checksum), and with `--restore-test` the seed's monthly
 * backup-restore test (C8), automated: the newest backup restored into a scratch PostgreSQL on a
 * free port, started, its rows counted per table and the newest time of each time-series table
 * read, then stopped and deleted; a report (JSON + text) is kept under the stack's state dir.
 *
 * The stack's own nodes are never touched, and it takes no stack lock: a failover must not wait
 * for a restore test. A scratch cluster is removed by the step that fails, too.
 */
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { withPg } from "../clients/pg.ts";
import { readRepository, utc, type PgBackupSet } from "./backup-sets.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { table } from "./format.ts";
import { repositoryAnswers } from "./bucket-sets.ts";
import { pgbackrest } from "./platform/db-node.ts";
import { scratchPostgresOf, type ScratchPostgres } from "./platform/scratch-postgres.ts";
import { stateDirFor } from "./state.ts";
import { tableCensus, type TableCensus } from "./table-census.ts";

export const BackupsVerifyArgs = z.object({
  restoreTest: flag(z.boolean().optional(), { description: "also restore the newest backup into a scratch PostgreSQL, count its rows, then delete it (C8)" }),
});

/** Recovery to the backup's consistency point replays the WAL written during the backup; a big one takes a while. */
const PROMOTION_TIMEOUT_MS = 300_000;

export interface RestoreTestReport {
  stack: string;
  result: "passed" | "failed";
  /** Why it failed. */
  failure?: string;
  backup: { label: string; type: string; stoppedAt: string };
  scratch: { dir: string; port: number };
  startedAt: string;
  finishedAt: string;
  tables: TableCensus[];
}

export const backupsVerify = defineRunbook({
  command: ["backups", "verify"],
  name: "backups-verify",
  summary: "pgbackrest verify of the repository; --restore-test restores the newest backup into a scratch PostgreSQL and counts its rows (C8)",
  features: ["C8", "I6", "S8"],
  mutates: false,
  args: BackupsVerifyArgs,
  steps: (args, { outputs }) => {
    const verify = {
      name: "Verify the repository with pgBackRest",
      plan: `pgbackrest verify of stanza ${outputs.backup.stanza}: every backup file and WAL segment against its checksum`,
      readOnly: true,
      precondition: (ctx: StepContext) => repositoryAnswers(outputs, ctx.signal),
      action: async (ctx: StepContext) => {
        const text = await pgbackrest(outputs)("verify", ["--output=text", "--verbose"], ctx.signal);
        const status = /status:\s*(\S+)/.exec(text)?.[1] ?? "unknown";
        // pgBackRest logs to the console too; the summary is what its --output=text adds at the end.
        ctx.record("verify", { status, summary: text.slice(text.lastIndexOf("\nstanza:") + 1).split("\n").filter((line) => !/^\S+ \S+ P\d+ /.test(line)).join("\n").trim() });
        if (status !== "ok") throw new StepFailure(`pgbackrest verify: status ${status}: ${oneLine(text.slice(text.indexOf("status:")))}`, "`tradeops backups list`; take a new full backup (`tradeops backup --type full`)");
      },
    };
    if (!args.restoreTest) return [verify];

    const startedAt = new Date();
    const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
    let set: PgBackupSet | undefined;
    let scratch: ScratchPostgres | undefined;
    let census: TableCensus[] | undefined;
    /** The C8 record, kept under the state dir as JSON and text, failed tests too. */
    const writeReport = (ctx: StepContext, error?: unknown) => {
      const report: RestoreTestReport = {
        stack: outputs.stack,
        result: error ? "failed" : "passed",
        ...(error ? { failure: oneLine(error) } : {}),
        backup: { label: set!.label, type: set!.type, stoppedAt: set!.stoppedAt.toISOString() },
        scratch: { dir: scratch!.dir, port: scratch!.port },
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        tables: census ?? [],
      };
      const dir = join(stateDirFor(outputs), "restore-tests", stamp);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, "report.json"), `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
      writeFileSync(join(dir, "report.txt"), `${restoreTestText(report)}\n`, { mode: 0o600 });
      ctx.record("report", { ...report, files: [join(dir, "report.json"), join(dir, "report.txt")] });
    };
    /** A failed step takes the scratch cluster with it (nothing is left behind) and leaves a failed report. */
    const orRemove = async (ctx: StepContext, work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        await scratch!.remove((line) => ctx.log(line)).catch((cleanup: unknown) => ctx.log(`could not remove the scratch cluster: ${oneLine(cleanup)}`));
        writeReport(ctx, error);
        throw error;
      }
    };
    const session = <T>(use: (client: import("pg").Client) => Promise<T>, timeoutMs = 10_000) => {
      const { user, password, name } = outputs.database;
      return withPg({ host: scratch!.host, port: scratch!.port, user, password, database: name }, use, { timeoutMs, statementTimeoutMs: 0 });
    };
    return [
      verify,
      {
        name: "Pick the newest backup and a scratch PostgreSQL",
        plan: "the newest set in `pgbackrest info`; an empty dir beside the stack's data (the sandbox dir) and a free port on 127.0.0.1",
        readOnly: true,
        action: async (ctx) => {
          set = (await readRepository(outputs, ctx.signal)).sets.at(-1);
          if (!set) throw new Refusal("there is no backup to restore", "take one: `tradeops backup`");
          scratch = await scratchPostgresOf(outputs, stamp);
          ctx.record("restoreTest", { backup: set.label, dir: scratch.dir, port: scratch.port });
        },
      },
      {
        name: "Restore the newest backup into the scratch directory",
        plan: "pgbackrest restore --pg1-path=<scratch dir> --set=<newest> --type=immediate --target-action=promote --archive-mode=off",
        undo: { plan: "delete the scratch dir", run: async (ctx) => scratch?.remove((line) => ctx.log(line)) },
        action: (ctx) =>
          orRemove(ctx, async () => {
            await scratch!.create();
            ctx.log(`restoring ${set!.label} into ${scratch!.dir}`);
            await scratch!.restore(set!.label, ctx.signal);
          }),
      },
      {
        name: "Start the restored PostgreSQL and wait for its recovery to end",
        plan: "pg_ctl start on the free port (its own socket dir, archiving off, no synchronous standby); it must answer and leave recovery",
        action: (ctx) =>
          orRemove(ctx, async () => {
            await scratch!.start(ctx.signal);
            const deadline = Date.now() + PROMOTION_TIMEOUT_MS;
            while ((await session(async (c) => (await c.query<{ r: boolean }>("select pg_is_in_recovery() as r")).rows[0]!.r)) === true) {
              if (Date.now() > deadline) throw new StepFailure(`the restored cluster was still in recovery after ${PROMOTION_TIMEOUT_MS / 1000} s`);
              await sleep(100, undefined, { signal: ctx.signal });
            }
          }),
      },
      {
        name: "Count the rows of every table and the newest time of each time-series table",
        readOnly: true,
        action: (ctx) =>
          orRemove(ctx, async () => {
            census = await session(tableCensus, 600_000);
            ctx.record("tables", census);
          }),
      },
      {
        name: "Stop the scratch PostgreSQL and delete its directory",
        action: async (ctx) => scratch!.remove((line) => ctx.log(line)),
        verify: async () => {
          if (scratch!.running() || existsSync(scratch!.dir)) throw new StepFailure(`the scratch cluster is still there: ${scratch!.dir}`);
        },
      },
      {
        name: "Write the restore-test report",
        plan: `report.json and report.txt under ${join(stateDirFor(outputs), "restore-tests")}/<time>/`,
        action: async (ctx) => writeReport(ctx),
      },
    ];
  },
  report: (facts) => {
    const verify = facts.verify as { status: string } | undefined;
    const report = facts.report as (RestoreTestReport & { files: string[] }) | undefined;
    const lines = [`pgbackrest verify: ${verify?.status ?? "not run"}`];
    if (report) lines.push("", restoreTestText(report), "", `report: ${report.files.join(", ")}`);
    return { text: lines.join("\n"), json: { verify: verify?.status ?? null, restoreTest: report ?? null } };
  },
});

function restoreTestText(report: RestoreTestReport): string {
  const rows = report.tables.map((t) => [t.table, t.rows, t.timeColumn ?? "-", t.newest ?? "-"]);
  return [
    `restore test of ${report.backup.label} (${report.backup.type}, stopped ${utc(new Date(report.backup.stoppedAt))}) on stack ${report.stack}: ${report.result}`,
    report.failure ? `failed: ${report.failure}; the scratch cluster in ${report.scratch.dir} was removed` : `restored into ${report.scratch.dir} on port ${report.scratch.port}, started, checked, stopped and deleted`,
    rows.length ? table(["TABLE", "ROWS", "TIME COLUMN", "NEWEST"], rows) : report.failure ? "no table was counted" : "no table in the database",
  ].join("\n");
}
