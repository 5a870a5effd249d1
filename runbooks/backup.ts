/**
 * `tradeops backup` — Z6, S8, I7: a physical backup of the cluster into the stack's S3 repository
 * with pgBackRest (copied from the streaming standby when it can be), verified by reading the
 * repository back. Interrupted, it says whether the backup completed anyway (the repository is read
 * again). Replaces the seeds' `pg_dump | gzip` cron lines; retention (I7: full 30 d) is pgBackRest's
 * `repo1-retention-full`, applied after each backup. `--redis`, `--tables` and `--models` take the
 * other sets of the backup bucket instead.
 */
import { z } from "zod";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type Interruption, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { bytes } from "./format.ts";
import { pgbackrest } from "./platform/db-node.ts";
import { checkBackupRepository, checkPrimaryAnswers, whileRepositoryAnswers } from "./probes.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { onPg, onRedis } from "./connect.ts";
import type { Step } from "./engine/runbook.ts";
import { BACKUP_METRIC, recordBackupSuccess } from "./backup-metrics.ts";
import { modelBackupSteps, modelSetReport } from "./model-sets.ts";
import { redisPlatformOf } from "./platform/redis-node.ts";
import { replicationOf } from "./role-change.ts";
import { displayName, dumpTables, listTableDumps, resolveTables, TableList, writeTableDumpManifest, type TableDumpManifest } from "./table-dumps.ts";
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
    from: flag(z.enum(["auto", "standby", "primary"]).default("auto"), {
      description: "copy the files from the standby (pgBackRest backup-standby: the primary only starts and stops the backup) or the primary; auto: the standby when it streams within the lag limit",
    }),
    redis: flag(z.boolean().optional(), { description: "back up Redis instead: BGSAVE, then dump.rdb to redis/ in the backup bucket with a manifest" }),
    tables: flag(TableList.optional(), { description: "a logical dump of just these tables instead (pg_dump, one consistent snapshot) to logical/ in the backup bucket", placeholder: "t1,t2" }),
    models: flag(z.union([z.literal(true), z.string().min(1)]).optional(), { description: "back up a model set instead (its files + VERSION) to models/<version>/ with a manifest (default: the outputs' app.models.dir)", placeholder: "dir", optionalValue: true }),
  }).refine((args) => [args.redis, args.tables, args.models].filter(Boolean).length <= 1, { message: "back up one of --redis, --tables and --models per run", path: ["tables"] }),
  steps: ({ type, from, redis, tables, models }, { outputs }) => {
    if (redis) return redisBackupSteps(outputs);
    if (tables) return tableBackupSteps(tables, outputs);
    if (models) return modelBackupSteps(outputs, models === true ? undefined : models);
    const pgbackrestOn = pgbackrest(outputs);
    const stanza = outputs.backup.stanza;
    const listBackups = async (signal: AbortSignal) => {
      const info = PgbackrestInfo.parse(JSON.parse(await pgbackrestOn("info", ["--output=json"], signal)));
      return info.find((s) => s.name === stanza)?.backup ?? [];
    };
    let labelsBefore = new Set<string>();
    let backupStarted = false;
    let source: "standby" | "primary" = "primary";
    /** The backup this run took, if the repository lists it (recorded as the `backup` fact). */
    const newBackup = async (ctx: StepContext) => {
      const fresh = (await listBackups(ctx.signal)).filter((b) => !labelsBefore.has(b.label)).at(-1);
      if (fresh) ctx.record("backup", describeBackup(fresh));
      return fresh;
    };
    return [
      {
        name: "Check the backup repository and WAL archiving",
        plan: `the S3 store and the primary answer; pg_stat_archiver: the primary archives WAL into s3://${outputs.backup.bucket}${outputs.backup.prefix} and its last attempt succeeded; pgbackrest info: stanza ${stanza} is ok`,
        budgetMs: 30_000,
        readOnly: true,
        // Not `pgbackrest check`: it switches WAL and waits for the segment (2.2 s here on an idle
        // pair, up to its 60 s archive timeout) — the backup itself does that at its end
        // (archive-check), so the preflight only needs to know archiving is on and not failing.
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
          const archiving = await archivingState(outputs, quick);
          if (archiving) throw new Refusal(archiving, "fix WAL archiving first (see `tradeops diagnose` and the pgBackRest archive-push log)");
          const info = PgbackrestInfo.parse(JSON.parse(await whileRepositoryAnswers(outputs, signal, (watched) => pgbackrestOn("info", ["--output=json"], watched)))).find((s) => s.name === stanza);
          if (!info) throw new Refusal(`stanza ${stanza} is not in the repository`, "create it (`pgbackrest stanza-create`; the sandbox does it on `sandbox up`)");
          // 2 = "no valid backups": the state before the first backup.
          if (info.status.code !== 0 && info.status.code !== 2) throw new Refusal(`stanza ${stanza}: ${info.status.message}`, "read `pgbackrest info` and the pgBackRest log");
        },
        action: async (ctx) => {
          source = await backupSource(outputs, from, ctx);
          ctx.record("source", source);
          labelsBefore = new Set((await listBackups(ctx.signal)).map((b) => b.label));
          ctx.record("backupsBefore", labelsBefore.size);
        },
      },
      {
        name: `Take ${BACKUP_TYPE_NAMES[type]} backup${from === "auto" ? "" : ` from the ${from}`}`,
        plan: `pgbackrest backup --type=${type}${from === "primary" ? "" : ` ${from === "auto" ? "[--backup-standby when the standby streams]" : "--backup-standby"}`} (start-fast checkpoint; expires backups beyond ${outputs.retention.pgFullDays}-day retention)${outputs.monitoring?.textfileDir ? `; its time recorded as ${BACKUP_METRIC} in ${outputs.monitoring.textfileDir}` : ""}`,
        // Nothing of this run can be in place before its action starts (step 1 just listed the
        // repository); after an interruption, the repository says whether pgBackRest finished.
        isDone: async (ctx) => backupStarted && (await newBackup(ctx)) !== undefined,
        action: async (ctx) => {
          backupStarted = true;
          const options = [`--type=${type}`, ...(source === "standby" ? ["--backup-standby"] : [])];
          await whileRepositoryAnswers(outputs, ctx.signal, (watched) => pgbackrestOn("backup", options, watched));
          // I6/I7: the BackupTooOld alert's input, where the stack has a textfile collector (pgBackRest
          // exited 0: the backup is done; verify reads the repository back).
          const file = recordBackupSuccess(outputs, "pgbackrest", new Date());
          if (file) ctx.log(`recorded for monitoring in ${file}`);
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
    if (facts.tableDump) return tableDumpReport(facts.tableDump as TableDumpManifest);
    if (facts.modelSet) return modelSetReport(facts);
    const made = facts.backup as ReturnType<typeof describeBackup> | undefined;
    const interrupted = facts.interrupted as Interruption | undefined;
    const lead = interrupted ? `interrupted by ${interrupted.signal}; ` : "";
    if (!made) return { text: interrupted ? `${lead}no new backup in the repository` : "no backup was made", json: null };
    const from = facts.source ? ` from the ${String(facts.source)}` : "";
    const line = `backup ${made.label} (${made.type}${from}): ${bytes(made.sizeBytes)} of data, ${bytes(made.repositoryDeltaBytes)} stored, WAL ${made.walStart} … ${made.walStop}, took ${made.seconds} s`;
    return { text: interrupted ? `${lead}${line} — completed anyway` : line, json: made };
  },
});

/**
 * Where the files are copied from. The standby spares the primary the reads (pgBackRest
 * backup-standby: the primary still starts and stops the backup), when it streams within the
 * failover lag limit and pgBackRest can reach its data dir — the sandbox's pair shares one host;
 * elsewhere that needs pgBackRest's TLS server on the standby, which the stacks do not run yet.
 */
async function backupSource(outputs: StackOutputs, from: "auto" | "standby" | "primary", ctx: StepContext): Promise<"standby" | "primary"> {
  if (from === "primary") return "primary";
  const { primary, standby, replication } = outputs.database;
  const refuseOrPrimary = (why: string): "primary" => {
    if (from === "standby") throw new Refusal(`cannot back up from the standby: ${why}`, "back up the primary (`--from primary`) or fix the standby first (`tradeops health`)");
    ctx.log(`from the primary: ${why}`);
    return "primary";
  };
  if (!standby) return refuseOrPrimary("the stack has no standby");
  if (outputs.platform.kind !== "sandbox") return refuseOrPrimary(`on ${outputs.platform.kind}, pgBackRest on the primary cannot reach the standby's data dir (it needs pgBackRest's TLS server there)`);
  const live = await replicationOf(outputs, primary, standby, ctx);
  if (!live) return refuseOrPrimary(`${standby.name} is not streaming from ${primary.name}`);
  if (live.lagBytes > replication.maxLagBytes) return refuseOrPrimary(`${standby.name} replays ${bytes(live.lagBytes)} behind (limit ${bytes(replication.maxLagBytes)})`);
  ctx.log(`from the standby ${standby.name} (streaming, ${bytes(live.lagBytes)} behind)`);
  return "standby";
}

/** Why the primary's WAL archiving is not fit for a backup, or undefined when it is. */
async function archivingState(outputs: StackOutputs, options: { signal: AbortSignal; timeoutMs: number }): Promise<string | undefined> {
  const row = await onPg(
    outputs,
    outputs.database.primary,
    async (client) =>
      (
        await client.query<{ mode: string; failed: boolean; last_failed_wal: string | null; last_failed_time: Date | null }>(
          `select current_setting('archive_mode') as mode, coalesce(last_failed_time > coalesce(last_archived_time, 'epoch'), false) as failed, last_failed_wal, last_failed_time from pg_stat_archiver`,
        )
      ).rows[0]!,
    options,
  );
  if (row.mode === "off") return `WAL archiving is off on ${outputs.database.primary.name} (archive_mode = off): a backup could not be restored to any point after it`;
  if (row.failed) return `WAL archiving is failing on ${outputs.database.primary.name}: the last attempt (${row.last_failed_wal} at ${row.last_failed_time?.toISOString()}) failed`;
  return undefined;
}

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

// ---- Tables (backup --tables) -----------------------------------------------------------------------

/** Z6: the seed's `pg_dump -t`, one consistent snapshot for all the tables, each table an archive of its own. */
function tableBackupSteps(names: string[], outputs: StackOutputs): Step[] {
  let tables: { schema: string; name: string }[] = [];
  let manifest: TableDumpManifest | undefined;
  return [
    {
      name: "Check the tables, the primary and the backup bucket",
      plan: `${names.join(", ")} exist in ${outputs.database.name} on the primary; s3://${outputs.backup.bucket}/logical/ is reachable`,
      readOnly: true,
      action: async (ctx) => {
        const quick = { signal: ctx.signal, timeoutMs: PRECHECK_TIMEOUT_MS };
        const [repository, primary] = await Promise.allSettled([checkBackupRepository(outputs, quick), checkPrimaryAnswers(outputs, quick)]);
        if (repository.status === "rejected") throw new Refusal(`backup repository does not answer: ${oneLine(repository.reason)}`, "run `tradeops health` and bring the S3 store back first");
        if (primary.status === "rejected") throw new Refusal(`primary ${outputs.database.primary.name} does not answer: ${oneLine(primary.reason)}`, "run `tradeops health` and bring the primary back first");
        tables = await resolveTables(outputs, names, ctx.signal);
      },
    },
    {
      name: "Dump the tables into the backup bucket",
      plan: "one REPEATABLE READ snapshot (exact row counts); pg_dump --format=custom --snapshot per table, streamed to logical/<id>/<schema>.<table>.pgdump with its SHA-256",
      action: async (ctx) => {
        manifest = await dumpTables(outputs, tables, ctx.signal, (line) => ctx.log(line));
      },
      onFailure: "archives without a manifest are never listed or restored: re-run once fixed",
    },
    {
      name: "Write the dump's manifest",
      plan: "logical/<id>/manifest.json: tables, row counts, SHA-256s — written last, so only a complete dump is ever listed",
      action: async (ctx) => {
        await writeTableDumpManifest(outputs, manifest!, ctx.signal);
        ctx.record("tableDump", manifest);
      },
      verify: async (ctx) => {
        if (!(await listTableDumps(outputs, ctx.signal)).some((d) => d.id === manifest!.id)) throw new StepFailure(`dump ${manifest!.id} is not listed in the bucket`);
      },
    },
  ];
}

function tableDumpReport(made: TableDumpManifest) {
  return {
    text: `table dump ${made.id}: ${made.tables.map((t) => `${displayName(t)} (${t.rows} rows)`).join(", ")}, ${bytes(made.sizeBytes)} at s3://…/logical/${made.id}/`,
    json: made,
  };
}
