/**
 * `tradeops backups expire` — I7 retention: PostgreSQL backups and WAL through `pgbackrest expire`
 * (the outputs' `retention`, passed on its command line so the config file cannot disagree), and
 * the sets tradeops keeps in the bucket itself (Redis snapshots; model sets and logical dumps as
 * their kinds join bucket-sets.ts) by their kind's rule, deleted object by object.
 *
 * What goes is decided once, in the first step (pgBackRest's own `--dry-run` and the bucket
 * listing): `--dry-run` runs that step and prints exactly that list; a real run deletes exactly
 * that list from the bucket, and reports what pgBackRest expired.
 */
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { readRepository, utc } from "./backup-sets.ts";
import { BUCKET_SET_KINDS, deleteObjects, expiredSets, listBucketSets, repositoryAnswers, type BucketSet } from "./bucket-sets.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { bytes, table } from "./format.ts";
import { pgbackrest } from "./platform/db-node.ts";

/** What one `pgbackrest expire` removes (or, with --dry-run, would remove). */
export interface PgExpiry {
  /** Backup labels. */
  backups: string[];
  /** WAL ranges, per archive id (`15-1`). */
  archive: Array<{ archiveId: string; start: string; stop: string }>;
}

/** Parses pgBackRest's info-level expire lines (`[DRY-RUN] repo1: remove expired backup …`, `repo1: 15-1 remove archive, start = …, stop = …`). */
export function parseExpireLog(log: string): PgExpiry {
  const backups = [...log.matchAll(/remove expired backup (\S+)/g)].map((m) => m[1]!);
  const archive = [...log.matchAll(/(\S+) remove archive, start = (\S+), stop = (\S+)/g)].map((m) => ({ archiveId: m[1]!, start: m[2]!.replace(/,$/, ""), stop: m[3]! }));
  return { backups: [...new Set(backups)], archive };
}

/** The I7 policy as pgBackRest options (infra/config-files/pgbackrest.ts renders the same for the config file). */
function retentionOptions(outputs: StackOutputs): string[] {
  const { pgFullDays, walDays } = outputs.retention;
  return [
    "--repo1-retention-full-type=time",
    `--repo1-retention-full=${pgFullDays}`,
    "--repo1-retention-archive-type=full",
    `--repo1-retention-archive=${walDays}`,
    "--log-level-console=info",
  ];
}

type ExpiringSet = Omit<BucketSet, "at"> & { at: string };

export const backupsExpire = defineRunbook({
  command: ["backups", "expire"],
  name: "backups-expire",
  summary: "apply the I7 retention: pgbackrest expire, and delete expired Redis snapshots (--dry-run lists exactly what would go)",
  features: ["I7", "Z6", "S8"],
  mutates: true,
  dryRunReads: true,
  args: z.object({}),
  steps: (_args, { outputs }) => {
    const { retention } = outputs;
    let pgExpiring: PgExpiry | undefined;
    let bucketExpiring: ExpiringSet[] | undefined;
    return [
      {
        name: "Find what the retention policy expires",
        plan: `pgbackrest expire --dry-run (full backups kept ${retention.pgFullDays} d, WAL for the newest ${retention.walDays} full backups); sets in s3://${outputs.backup.bucket}/ older than their kind keeps them (Redis ${keptFor(retention.redisSnapshotHours)})`,
        readOnly: true,
        budgetMs: 120_000,
        precondition: (ctx) => repositoryAnswers(outputs, ctx.signal),
        action: async (ctx) => {
          pgExpiring = parseExpireLog(await pgbackrest(outputs)("expire", ["--dry-run", ...retentionOptions(outputs)], ctx.signal));
          const now = new Date();
          bucketExpiring = [];
          for (const kind of BUCKET_SET_KINDS) {
            const sets = await listBucketSets(outputs, kind, ctx.signal);
            bucketExpiring.push(...expiredSets(sets, kind.keepForMs(outputs), now).map((set) => ({ ...set, at: set.at.toISOString() })));
          }
          ctx.record("expiring", { pg: pgExpiring, bucket: bucketExpiring });
        },
      },
      {
        name: "Expire PostgreSQL backups and WAL with pgBackRest",
        get plan() {
          return pgExpiring ? `pgbackrest expire: ${describePg(pgExpiring)}` : "pgbackrest expire with the policy above";
        },
        destructive: true,
        isDone: async () => pgExpiring !== undefined && !pgExpiring.backups.length && !pgExpiring.archive.length,
        action: async (ctx) => {
          const expired = parseExpireLog(await pgbackrest(outputs)("expire", retentionOptions(outputs), ctx.signal));
          ctx.record("pgExpired", expired);
          // A backup that finished between the two runs can change pgBackRest's decision: said, not hidden.
          if (describePg(expired) !== describePg(pgExpiring!)) ctx.log(`pgBackRest expired ${describePg(expired)}; the first step had found ${describePg(pgExpiring!)}`);
        },
        verify: async (ctx) => {
          const labels = new Set((await readRepository(outputs, ctx.signal)).sets.map((set) => set.label));
          const left = pgExpiring!.backups.filter((label) => labels.has(label));
          if (left.length) throw new StepFailure(`pgbackrest expire left ${left.join(", ")} in the repository`, "see the pgBackRest log in its log-path");
        },
      },
      {
        name: "Delete the expired sets from the bucket",
        get plan() {
          return bucketExpiring ? (bucketExpiring.length ? bucketExpiring.map(describeSet).join("; ") : "nothing is old enough") : "every object of each expired set";
        },
        destructive: true,
        isDone: async () => bucketExpiring !== undefined && !bucketExpiring.length,
        action: async (ctx) => {
          const keys = bucketExpiring!.flatMap((set) => set.keys);
          const left = await deleteObjects(outputs, keys, ctx.signal).catch((error: unknown) => {
            throw new StepFailure(`deleting from s3://${outputs.backup.bucket}: ${oneLine(error)}`, "re-run `tradeops backups expire --yes`: what is gone stays gone");
          });
          ctx.record("bucketExpired", bucketExpiring!.map((set) => set.id));
          if (left.length) throw new StepFailure(`still in the bucket after delete: ${left.join(", ")}`);
        },
      },
    ];
  },
  report: (facts) => {
    const expiring = facts.expiring as { pg: PgExpiry; bucket: ExpiringSet[] } | undefined;
    if (!expiring) return { text: "the repository was not read", json: null };
    const pgExpired = facts.pgExpired as PgExpiry | undefined;
    const bucketExpired = facts.bucketExpired as string[] | undefined;
    const rows = expiring.bucket.map((set) => [set.kind, set.id, set.complete ? "complete" : "incomplete", utc(new Date(set.at)), bytes(set.sizeBytes), bucketExpired?.includes(set.id) ? "deleted" : "would go"]);
    const pg = pgExpired ?? expiring.pg;
    const text = [
      `PostgreSQL (pgBackRest): ${describePg(pg) === "nothing" ? "nothing to expire" : `${pgExpired ? "expired" : "would expire"} ${describePg(pg)}`}`,
      rows.length ? table(["KIND", "SET", "STATE", "TAKEN", "SIZE", ""], rows) : "no set in the bucket is old enough to expire",
    ].join("\n");
    return { text, json: { pg: { expiring: expiring.pg, expired: pgExpired ?? null }, bucket: expiring.bucket.map(({ keys: _keys, ...set }) => ({ ...set, deleted: bucketExpired?.includes(set.id) ?? false })) } };
  },
});

/** "24 h"; a test's policy of seconds as seconds. */
function keptFor(hours: number): string {
  return hours >= 1 ? `${hours} h` : `${Math.round(hours * 3600)} s`;
}

function describePg(expiry: PgExpiry): string {
  const parts = [
    ...(expiry.backups.length ? [`backups ${expiry.backups.join(", ")}`] : []),
    ...expiry.archive.map((range) => `WAL ${range.archiveId} ${range.start} … ${range.stop}`),
  ];
  return parts.length ? parts.join("; ") : "nothing";
}

function describeSet(set: ExpiringSet): string {
  return `${set.kind} ${set.id}${set.complete ? "" : " (incomplete)"} taken ${utc(new Date(set.at))}: ${set.keys.length} object(s), ${bytes(set.sizeBytes)}`;
}
