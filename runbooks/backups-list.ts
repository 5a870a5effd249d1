/**
 * `tradeops backups list` — S8, I6, I7: every PostgreSQL backup set in the stack's pgBackRest
 * repository with its WAL range, age and size, and the restorable window (oldest backup's stop →
 * last archived WAL): what an operator needs at 3 a.m. before `tradeops restore --to-time`. Then
 * the table dumps of `backup --tables`, the Redis snapshots of `backup --redis` and the model sets
 * of `backup --models` (only those with a manifest: complete ones).
 */
import { z } from "zod";
import { age, readRepository, utc, type Repository } from "./backup-sets.ts";
import { Refusal, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { bytes, table } from "./format.ts";
import { listModelSets } from "./model-sets.ts";
import { listRedisSnapshots, type RedisManifest } from "./redis-snapshots.ts";
import { displayName, listTableDumps, type TableDumpManifest } from "./table-dumps.ts";

export const backupsList = defineRunbook({
  command: ["backups", "list"],
  name: "backups-list",
  summary: "backup sets in the repository with WAL range, age, size, and the restorable window",
  features: ["S8", "I6", "I7"],
  mutates: false,
  args: z.object({}),
  steps: (_args, { outputs }) => [
    {
      name: "Read the backup repository",
      plan: `pgbackrest info for stanza ${outputs.backup.stanza}; the time of the last archived WAL from s3://${outputs.backup.bucket}${outputs.backup.prefix}; Redis snapshot manifests under redis/`,
      readOnly: true,
      action: async (ctx) => {
        const repository = await readRepository(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot read the backup repository: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        ctx.record("repository", describeRepository(repository));
        const snapshots = await listRedisSnapshots(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot list the Redis snapshots: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        ctx.record("redisSnapshots", snapshots.map(describeSnapshot));
        const dumps = await listTableDumps(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot list the table dumps: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        ctx.record("tableDumps", dumps.map(describeDump));
        const models = await listModelSets(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot list the model sets: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        ctx.record("modelSets", models.map((set) => ({ version: set.version, takenAt: set.takenAt, files: set.files.length, sizeBytes: set.totalBytes })));
      },
    },
  ],
  report: (facts) => {
    const repository = facts.repository as ReturnType<typeof describeRepository> | undefined;
    if (!repository) return { text: "the repository was not read", json: null };
    const now = new Date();
    const rows = repository.sets.map((set) => [
      set.label,
      set.type,
      utc(new Date(set.stoppedAt)),
      age(new Date(set.stoppedAt), now),
      bytes(set.sizeBytes),
      bytes(set.repositoryBytes),
      `${set.walStart ?? "-"} … ${set.walStop ?? "-"}`,
    ]);
    const { window } = repository;
    const lines = [
      rows.length ? table(["LABEL", "TYPE", "STOPPED", "AGE", "SIZE", "STORED", "WAL"], rows) : "no PostgreSQL backup in the repository",
      "",
      `restorable window (PITR): ${window.from ? utc(new Date(window.from)) : "-"} → ${window.to ? utc(new Date(window.to)) : "-"}${window.lastArchivedWal ? ` (last archived WAL ${window.lastArchivedWal})` : ""}`,
    ];
    const redis = (facts.redisSnapshots as ReturnType<typeof describeSnapshot>[] | undefined) ?? [];
    lines.push(
      "",
      redis.length
        ? table(["REDIS SNAPSHOT", "TAKEN", "AGE", "SIZE", "KEYS"], redis.map((s) => [s.id, utc(new Date(s.takenAt)), age(new Date(s.takenAt), now), bytes(s.sizeBytes), s.keys]))
        : "no Redis snapshot in the bucket (`tradeops backup --redis`)",
    );
    const dumps = (facts.tableDumps as ReturnType<typeof describeDump>[] | undefined) ?? [];
    lines.push(
      "",
      dumps.length
        ? table(["TABLE DUMP", "TAKEN", "AGE", "SIZE", "TABLES (ROWS)"], dumps.map((d) => [d.id, utc(new Date(d.takenAt)), age(new Date(d.takenAt), now), bytes(d.sizeBytes), d.tables.map((t) => `${t.name} (${t.rows})`).join(", ")]))
        : "no table dump in the bucket (`tradeops backup --tables t1,t2`)",
    );
    const models = (facts.modelSets as { version: string; takenAt: string; files: number; sizeBytes: number }[] | undefined) ?? [];
    lines.push(
      "",
      models.length
        ? table(["MODEL VERSION", "TAKEN", "AGE", "SIZE", "FILES"], models.map((m) => [m.version, utc(new Date(m.takenAt)), age(new Date(m.takenAt), now), bytes(m.sizeBytes), m.files]))
        : "no model set in the bucket (`tradeops backup --models`)",
    );
    return { text: lines.join("\n"), json: { ...repository, redis, tableDumps: dumps, models } };
  },
});

function describeRepository({ sets, window }: Repository) {
  return {
    sets: sets.map((set) => ({
      label: set.label,
      type: set.type,
      prior: set.prior,
      startedAt: set.startedAt.toISOString(),
      stoppedAt: set.stoppedAt.toISOString(),
      ageSeconds: Math.round((Date.now() - set.stoppedAt.getTime()) / 1000),
      sizeBytes: set.sizeBytes,
      repositoryBytes: set.repositoryBytes,
      walStart: set.walStart,
      walStop: set.walStop,
    })),
    window: { from: window.from?.toISOString() ?? null, to: window.to?.toISOString() ?? null, lastArchivedWal: window.lastArchivedWal ?? null },
  };
}

function describeSnapshot(manifest: RedisManifest) {
  return { id: manifest.id, key: manifest.key, takenAt: manifest.takenAt, sizeBytes: manifest.sizeBytes, keys: manifest.keys.atBgsave, sha256: manifest.sha256 };
}

function describeDump(manifest: TableDumpManifest) {
  return { id: manifest.id, takenAt: manifest.takenAt, sizeBytes: manifest.sizeBytes, tables: manifest.tables.map((t) => ({ name: displayName(t), rows: t.rows, sizeBytes: t.sizeBytes })) };
}
