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
import type { StackOutputs } from "../contract/outputs.ts";
import { onRedis } from "./connect.ts";
import type { Step } from "./engine/runbook.ts";
import { modelBackupSteps, modelSetReport } from "./model-sets.ts";
import { redisPlatformOf } from "./platform/redis-node.ts";
import { keyCount, listRedisSnapshots, putManifest, redisInfo, REDIS_PREFIX, RedisManifest as RedisManifestSchema, snapshotId, uploadRdb, type RedisManifest } from "./redis-snapshots.ts";

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
  args: z.object({
    type: flag(z.enum(["full", "diff", "incr"]).default("full"), { description: "backup type" }),
    redis: flag(z.boolean().optional(), { description: "back up Redis instead: BGSAVE, then dump.rdb to redis/ in the backup bucket with a manifest" }),
    models: flag(z.union([z.literal(true), z.string().min(1)]).optional(), { description: "back up a model set instead (its files + VERSION) to models/<version>/ with a manifest (default: the outputs' app.models.dir)", placeholder: "dir", optionalValue: true }),
  }),
  steps: ({ type, redis, models }, { outputs }) => {
    if (redis) return redisBackupSteps(outputs);
    if (models) return modelBackupSteps(outputs, models === true ? undefined : models);
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
    if (facts.redisSnapshot) return redisReport(facts);
    if (facts.modelSet) return modelSetReport(facts);
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

// ---- Redis (backup --redis) -------------------------------------------------------------------------

/** Field notes: 1M keys BGSAVE 1.3 s; a BGSAVE still running after this is stuck (disk full, fork refused). */
const BGSAVE_WITHIN_MS = 10 * 60_000;

/**
 * Z6 / S8 / I7 for Redis: BGSAVE, wait until it finished (a new save counted, nothing in progress,
 * status ok), upload dump.rdb with a SHA-256 and a manifest written last.
 */
function redisBackupSteps(outputs: StackOutputs): Step[] {
  const snapshot: Partial<RedisManifest> = {};
  return [
    {
      name: "Check Redis and the backup bucket",
      plan: `Redis ${outputs.redis.host}:${outputs.redis.port} answers; s3://${outputs.backup.bucket}/${REDIS_PREFIX} is reachable`,
      readOnly: true,
      precondition: async ({ signal }) => {
        const quick = { signal, timeoutMs: PRECHECK_TIMEOUT_MS };
        const [repository, redis] = await Promise.allSettled([checkBackupRepository(outputs, quick), onRedis(outputs, (r) => r.ping(), quick)]);
        if (repository.status === "rejected") throw new Refusal(`backup repository does not answer: ${oneLine(repository.reason)}`, "run `tradeops health` and bring the S3 store back first");
        if (redis.status === "rejected") throw new Refusal(`Redis does not answer: ${oneLine(redis.reason)}`, "run `tradeops health` and bring Redis back first");
      },
      action: async () => {},
    },
    {
      name: "Snapshot Redis with BGSAVE",
      plan: "BGSAVE; wait until a new save is counted (LASTSAVE / rdb_saves), rdb_bgsave_in_progress:0 and rdb_last_bgsave_status:ok",
      budgetMs: BGSAVE_WITHIN_MS + 10_000,
      action: async (ctx) => {
        await onRedis(
          outputs,
          async (redis) => {
            const before = await redisInfo(redis, "persistence");
            const counted = await keyCount(redis);
            try {
              await redis.bgsave();
            } catch (error) {
              // One already running (a save rule fired) is not ours: wait for it, then ask again.
              if (!/already in progress/i.test(oneLine(error))) throw error;
              ctx.log("a BGSAVE was already running: waiting for it, then taking ours");
              await waitForSave(redis, before, ctx.signal);
              Object.assign(before, await redisInfo(redis, "persistence"));
              await redis.bgsave();
            }
            const after = await waitForSave(redis, before, ctx.signal);
            if (after.rdb_last_bgsave_status !== "ok") throw new StepFailure(`BGSAVE finished with status ${after.rdb_last_bgsave_status}`, "read the Redis log (disk full? fork refused: vm.overcommit_memory?)");
            const afterKeys = await keyCount(redis);
            const server = await redisInfo(redis, "server");
            const takenAt = new Date();
            Object.assign(snapshot, {
              kind: "redis-rdb",
              id: snapshotId(takenAt),
              lastSave: Number(after.rdb_last_save_time),
              takenAt: takenAt.toISOString(),
              redisVersion: server.redis_version ?? "unknown",
              keys: { atBgsave: counted.keys, afterBgsave: afterKeys.keys, withExpiry: Math.max(counted.expires, afterKeys.expires) },
            });
            snapshot.key = `${REDIS_PREFIX}${snapshot.id}/dump.rdb`;
            ctx.log(`BGSAVE done: ${counted.keys} key(s), rdb_last_bgsave_time_sec ${after.rdb_last_bgsave_time_sec}`);
          },
          { signal: ctx.signal, timeoutMs: BGSAVE_WITHIN_MS },
        );
      },
    },
    {
      name: "Upload dump.rdb to the backup bucket",
      plan: `multipart upload (@aws-sdk/lib-storage) to s3://${outputs.backup.bucket}/${REDIS_PREFIX}<id>/dump.rdb, SHA-256 computed on the way`,
      action: async (ctx) => {
        const file = (await redisPlatformOf(outputs)).rdbFile();
        const uploaded = await uploadRdb(outputs, file, snapshot.key!, ctx.signal);
        Object.assign(snapshot, uploaded);
        ctx.log(`${bytes(uploaded.sizeBytes)}, sha256 ${uploaded.sha256.slice(0, 16)}…`);
      },
      onFailure: "an upload without its manifest is never listed or restored: re-run once the store answers",
    },
    {
      name: "Write the snapshot's manifest",
      plan: `redis/<id>/manifest.json: SHA-256, size, key count — written last, so only a complete snapshot is ever listed`,
      action: async (ctx) => {
        const manifest = RedisManifestChecked(snapshot);
        await putManifest(outputs, manifest, ctx.signal);
        ctx.record("redisSnapshot", manifest);
      },
      verify: async (ctx) => {
        if (!(await listRedisSnapshots(outputs, ctx.signal)).some((m) => m.id === snapshot.id)) throw new StepFailure(`snapshot ${snapshot.id} is not listed in the bucket`);
      },
    },
  ];
}

function RedisManifestChecked(snapshot: Partial<RedisManifest>): RedisManifest {
  const parsed = RedisManifestSchema.safeParse(snapshot);
  if (!parsed.success) throw new StepFailure(`the snapshot's manifest is incomplete: ${parsed.error.issues[0]?.path.join(".")}`);
  return parsed.data;
}

/** Polls INFO persistence until a save newer than `before` is counted and none runs. */
async function waitForSave(redis: import("ioredis").Redis, before: Record<string, string>, signal: AbortSignal): Promise<Record<string, string>> {
  const deadline = Date.now() + BGSAVE_WITHIN_MS;
  while (!signal.aborted && Date.now() < deadline) {
    const now = await redisInfo(redis, "persistence");
    const newSave = now.rdb_last_save_time !== before.rdb_last_save_time || (now.rdb_saves !== undefined && now.rdb_saves !== before.rdb_saves);
    if (newSave && now.rdb_bgsave_in_progress === "0") return now;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new StepFailure(`BGSAVE did not finish within ${BGSAVE_WITHIN_MS / 60_000} min`, "read the Redis log");
}

function redisReport(facts: Record<string, unknown>) {
  const made = facts.redisSnapshot as RedisManifest | undefined;
  if (!made) return { text: "no Redis snapshot was stored", json: null };
  return {
    text: `Redis snapshot ${made.id}: ${made.keys.atBgsave} key(s), ${bytes(made.sizeBytes)}, sha256 ${made.sha256} at s3://…/${made.key}`,
    json: made,
  };
}
