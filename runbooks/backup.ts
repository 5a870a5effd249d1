/**
 * `tradeops backup` — Z6, S8, I7: a physical backup of the primary into the stack's S3 repository
 * with pgBackRest, verified by reading the repository back. Interrupted, it says whether the
 * backup completed anyway (the repository is read again). Replaces the seeds' `pg_dump | gzip`
 * cron lines; retention (I7: full 30 d) is pgBackRest's `repo1-retention-full`, applied after each backup.
 */
import { z } from "zod";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type Interruption, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { bytes } from "./format.ts";
import { pgbackrest } from "./platform/db-node.ts";
import { checkBackupRepository, checkPrimaryAnswers } from "./probes.ts";

/** The part of `pgbackrest info --output=json` the runbooks read. */
export const PgbackrestInfo = z.array(
  z.object({
    name: z.string(),
    status: z.object({ code: z.number(), message: z.string() }),
    backup: z
      .array(
        z.object({
          label: z.string(),
          type: z.enum(["full", "diff", "incr"]),
          timestamp: z.object({ start: z.number(), stop: z.number() }),
          info: z.object({ size: z.number(), repository: z.object({ delta: z.number() }) }),
          archive: z.object({ start: z.string().nullable(), stop: z.string().nullable() }),
        }),
      )
      .default([]),
  }),
);
export type BackupSet = z.infer<typeof PgbackrestInfo>[number]["backup"][number];

/** The repository and the primary answer within this, or the backup is refused before pgBackRest starts. */
const PRECHECK_TIMEOUT_MS = 3_000;

const BACKUP_TYPE_NAMES = { full: "a full", diff: "a differential", incr: "an incremental" } as const;

export const backup = defineRunbook({
  command: ["backup"],
  name: "backup",
  summary: "pgBackRest backup of the primary into the S3 repository, verified",
  features: ["Z6", "S8", "I7"],
  mutates: true,
  args: z.object({ type: flag(z.enum(["full", "diff", "incr"]).default("full"), { description: "backup type" }) }),
  steps: ({ type }, { outputs }) => {
    const pgbackrestOn = pgbackrest(outputs);
    const stanza = outputs.backup.stanza;
    const listBackups = async (signal: AbortSignal) => {
      const info = PgbackrestInfo.parse(JSON.parse(await pgbackrestOn("info", ["--output=json"], signal)));
      return info.find((s) => s.name === stanza)?.backup ?? [];
    };
    let labelsBefore = new Set<string>();
    let backupStarted = false;
    /** The backup this run took, if the repository lists it (recorded as the `backup` fact). */
    const newBackup = async (ctx: StepContext) => {
      const fresh = (await listBackups(ctx.signal)).filter((b) => !labelsBefore.has(b.label)).at(-1);
      if (fresh) ctx.record("backup", describeBackup(fresh));
      return fresh;
    };
    return [
      {
        name: "Check the backup repository and WAL archiving",
        plan: `pgbackrest check --stanza=${stanza}: the primary archives WAL into s3://${outputs.backup.bucket}${outputs.backup.prefix}`,
        // check waits up to pgBackRest's archive-timeout (60 s) for the switched WAL segment.
        budgetMs: 90_000,
        readOnly: true,
        precondition: async ({ signal }) => {
          // Seconds, not pgBackRest's minutes of retries or a hang, when the store or the primary does not answer.
          const quick = { signal, timeoutMs: PRECHECK_TIMEOUT_MS };
          const [repository, primary] = await Promise.allSettled([checkBackupRepository(outputs, quick), checkPrimaryAnswers(outputs, quick)]);
          if (repository.status === "rejected") {
            throw new Refusal(`backup repository does not answer: ${oneLine(repository.reason)}`, "run `tradeops health` and bring the S3 store back first");
          }
          if (primary.status === "rejected") {
            throw new Refusal(`primary ${outputs.database.primary.name} is not ready for a backup: ${oneLine(primary.reason)}`, "run `tradeops health` and bring the primary back first");
          }
          await pgbackrestOn("check", [], signal).catch((error) => {
            throw new Refusal(`pgbackrest check failed: ${oneLine(error)}`, "fix WAL archiving first (see `tradeops diagnose` and the pgBackRest log)");
          });
        },
        action: async (ctx) => {
          labelsBefore = new Set((await listBackups(ctx.signal)).map((b) => b.label));
          ctx.record("backupsBefore", labelsBefore.size);
        },
      },
      {
        name: `Take ${BACKUP_TYPE_NAMES[type]} backup of the primary`,
        plan: `pgbackrest backup --type=${type} (start-fast checkpoint; expires backups beyond ${outputs.retention.pgFullDays}-day retention)`,
        // Nothing of this run can be in place before its action starts (step 1 just listed the
        // repository); after an interruption, the repository says whether pgBackRest finished.
        isDone: async (ctx) => backupStarted && (await newBackup(ctx)) !== undefined,
        action: async (ctx) => {
          backupStarted = true;
          await pgbackrestOn("backup", [`--type=${type}`], ctx.signal);
        },
        // Read the repository back: the backup counts once pgBackRest lists it.
        verify: async (ctx) => {
          if (!(await newBackup(ctx))) throw new StepFailure("pgbackrest info lists no new backup", "run `pgbackrest info` on the primary to see the repository");
        },
        onFailure: "read the pgBackRest log on the primary; a failed backup leaves the older ones intact, so re-run once fixed",
      },
    ];
  },
  report: (facts) => {
    const made = facts.backup as ReturnType<typeof describeBackup> | undefined;
    const interrupted = facts.interrupted as Interruption | undefined;
    const lead = interrupted ? `interrupted by ${interrupted.signal}; ` : "";
    if (!made) return { text: interrupted ? `${lead}no new backup in the repository` : "no backup was made", json: null };
    const line = `backup ${made.label} (${made.type}): ${bytes(made.sizeBytes)} of data, ${bytes(made.repositoryDeltaBytes)} stored, WAL ${made.walStart} … ${made.walStop}, took ${made.seconds} s`;
    return { text: interrupted ? `${lead}${line} — completed anyway` : line, json: made };
  },
});

function describeBackup(set: BackupSet) {
  return {
    label: set.label,
    type: set.type,
    sizeBytes: set.info.size,
    repositoryDeltaBytes: set.info.repository.delta,
    walStart: set.archive.start,
    walStop: set.archive.stop,
    seconds: set.timestamp.stop - set.timestamp.start,
  };
}
