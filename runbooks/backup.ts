/**
 * `tradeops backup` — Z6, S8, I7: a physical backup of the primary into the stack's S3 repository
 * with pgBackRest, verified by reading the repository back. Replaces the seeds' `pg_dump | gzip`
 * cron lines; retention (I7: full 30 d) is pgBackRest's `repo1-retention-full`, applied after each backup.
 */
import { z } from "zod";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { bytes } from "./format.ts";
import { pgbackrest } from "./platform/db-node.ts";
import { checkBackupRepository } from "./probes.ts";

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
    const listBackups = async () => {
      const info = PgbackrestInfo.parse(JSON.parse(await pgbackrestOn("info", "--output=json")));
      return info.find((s) => s.name === stanza)?.backup ?? [];
    };
    let labelsBefore = new Set<string>();
    return [
      {
        name: "Check the backup repository and WAL archiving",
        plan: `pgbackrest check --stanza=${stanza}: the primary archives WAL into s3://${outputs.backup.bucket}${outputs.backup.prefix}`,
        precondition: async () => {
          // Seconds, not pgBackRest's minutes of retries, when the repository is not there at all.
          await checkBackupRepository(outputs).catch((error) => {
            throw new Refusal(`backup repository does not answer: ${oneLine(error)}`, "run `tradeops health` and bring the S3 store back first");
          });
          await pgbackrestOn("check").catch((error) => {
            throw new Refusal(`pgbackrest check failed: ${oneLine(error)}`, "fix WAL archiving first (see `tradeops diagnose` and the pgBackRest log)");
          });
        },
        action: async (ctx) => {
          labelsBefore = new Set((await listBackups()).map((b) => b.label));
          ctx.record("backupsBefore", labelsBefore.size);
        },
      },
      {
        name: `Take ${BACKUP_TYPE_NAMES[type]} backup of the primary`,
        plan: `pgbackrest backup --type=${type} (start-fast checkpoint; expires backups beyond ${outputs.retention.pgFullDays}-day retention)`,
        action: async () => {
          await pgbackrestOn("backup", `--type=${type}`);
        },
        onFailure: "read the pgBackRest log on the primary; a failed backup leaves the older ones intact, so re-run once fixed",
      },
      {
        name: "Verify the new backup is in the repository",
        action: async (ctx) => {
          const fresh = (await listBackups()).filter((b) => !labelsBefore.has(b.label));
          const newest = fresh.at(-1);
          if (!newest) throw new StepFailure("pgbackrest info lists no new backup", "run `pgbackrest info` on the primary to see the repository");
          ctx.record("backup", describeBackup(newest));
        },
      },
    ];
  },
  report: (facts) => {
    const made = facts.backup as ReturnType<typeof describeBackup> | undefined;
    if (!made) return { text: "no backup was made", json: null };
    return {
      text: `backup ${made.label} (${made.type}): ${bytes(made.sizeBytes)} of data, ${bytes(made.repositoryDeltaBytes)} stored, WAL ${made.walStart} … ${made.walStop}, took ${made.seconds} s`,
      json: made,
    };
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
