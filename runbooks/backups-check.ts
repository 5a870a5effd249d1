/**
 * `tradeops backups check` — the seed's `check_backups.sh` (I6): is the newest backup of each kind
 * recent enough for the I7 policy? PostgreSQL full ≤ 26 h, the last archived WAL ≤ 5 min, a Redis
 * snapshot ≤ 1 h, and each kind of set in the bucket by its own rule (bucket-sets.ts). The limits
 * are the outputs' `freshness` (seconds). Exit 1 names every stale item; 0 when all are fresh.
 *
 * `checkBackups` is the check without the runbook around it, for other runbooks (the doctor).
 */
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { age, readRepository, utc } from "./backup-sets.ts";
import { BUCKET_SET_KINDS, listBucketSets, newestWithin, repositoryAnswers, type Freshness } from "./bucket-sets.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";

export type { Freshness } from "./bucket-sets.ts";

/** One line per item of the policy, in the seed's order: PostgreSQL, WAL, then each kind in the bucket. */
export async function checkBackups(outputs: StackOutputs, signal?: AbortSignal, now = new Date()): Promise<Freshness[]> {
  const policy = outputs.freshness;
  await repositoryAnswers(outputs, signal).catch((error: unknown) => {
    throw new StepFailure(oneLine(error), "run `tradeops health`: the S3 store must answer");
  });
  const repository = await readRepository(outputs, signal).catch((error: unknown) => {
    throw new StepFailure(`cannot read the pgBackRest repository: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
  });
  const fulls = repository.sets.filter((set) => set.type === "full").map((set) => ({ at: set.stoppedAt }));
  const archived = repository.window.to ? [{ at: repository.window.to }] : [];
  const items = [
    newestWithin("PostgreSQL full backup", fulls, policy.pgFullMaxAgeSeconds, now, "run `tradeops backup --type full`"),
    newestWithin("archived WAL", archived, policy.walMaxAgeSeconds, now, "see pg_stat_archiver on the primary (failed_count, last_failed_wal); a quiet database needs archive_timeout"),
  ];
  for (const kind of BUCKET_SET_KINDS) {
    if (!kind.freshness) continue;
    const sets = await listBucketSets(outputs, kind, signal).catch((error: unknown) => {
      throw new StepFailure(`cannot list the ${kind.title}s: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
    });
    const item = kind.freshness(outputs, sets, now);
    if (item) items.push(item);
  }
  return items;
}

export const backupsCheck = defineRunbook({
  command: ["backups", "check"],
  name: "backups-check",
  summary: "is the newest backup of each kind within the policy (PG full, archived WAL, Redis snapshot, the live model set); exit 1 naming what is stale",
  features: ["I6", "I7"],
  mutates: false,
  args: z.object({}),
  steps: (_args, { outputs }) => [
    {
      name: "Check the newest backup of each kind against the policy",
      plan: `PostgreSQL full ≤ ${outputs.freshness.pgFullMaxAgeSeconds} s, last archived WAL ≤ ${outputs.freshness.walMaxAgeSeconds} s (pgbackrest info, the bucket), Redis snapshot ≤ ${outputs.freshness.redisSnapshotMaxAgeSeconds} s`,
      readOnly: true,
      budgetMs: 60_000,
      action: async (ctx) => {
        const items = await checkBackups(outputs, ctx.signal);
        ctx.record("freshness", items);
        const stale = items.filter((item) => !item.ok);
        if (stale.length) throw new StepFailure(`stale: ${stale.map((item) => `${item.item} (${item.detail})`).join("; ")}`, "take the backup named, or fix what stops it; then `tradeops backups check` again");
      },
    },
  ],
  report: (facts) => {
    const items = (facts.freshness as Freshness[] | undefined) ?? [];
    if (!items.length) return { text: "the backups were not checked", json: null };
    const now = new Date();
    // The seed's check_backups.sh lines: "✅ PostgreSQL daily backup: 2024-01-17 03:00 UTC".
    const lines = items.map((item) => {
      const newest = item.newest ? `${utc(new Date(item.newest))} (${age(new Date(item.newest), now)} ago)` : "none";
      return `${item.ok ? "✅" : "❌"} ${item.item}: ${newest}${item.ok ? "" : ` — stale: ${item.detail}`}`;
    });
    return { text: lines.join("\n"), json: { fresh: items.every((item) => item.ok), items } };
  },
});
