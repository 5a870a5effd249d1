/**
 * `tradeops restore` — S8, Z6, I4, I5 (data corruption: PITR), I9: bring the database back to a
 * moment before the damage, from the stack's pgBackRest repository. The seed's procedure
 * ("stop the API, restore, start the API"), as steps:
 *
 *   check the backup set, the target against the restorable window, and the disk (nothing touched
 *   yet) → pause trading → stop the app → stop the standby, then the primary → keep the primary's
 *   data dir aside (renamed: the undo) → pgbackrest restore --delta to the target → start, wait
 *   for recovery to end and promote → verify (answers, new timeline, last replayed commit before
 *   the target) → rebuild the standby from the restored primary (it is on the old timeline) → start
 *   the app and prove a write goes through the traffic endpoint → resume trading
 *
 * We orchestrate pgBackRest, we do not rewrite it. A failure after the data dir was set aside puts
 * it back and restarts the cluster as it was (the engine only names undos; this one runs itself).
 */
import { z } from "zod";
import type { PgNode, StackOutputs } from "../contract/outputs.ts";
import { chainOf, readRepository, utc, verifyRepository, type PgBackupSet, type RestorableWindow } from "./backup-sets.ts";
import { onPg, onRedis } from "./connect.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type Step, type StepContext } from "./engine/runbook.ts";
import { flag, pauseReasonFlag } from "./flags.ts";
import { bytes, table } from "./format.ts";
import { pgbackrest } from "./platform/db-node.ts";
import { restorePlatformOf, type RestorePlatform } from "./platform/restore.ts";
import { redisPlatformOf, type RedisPlatform } from "./platform/redis-node.ts";
import { downloadRdb, keyCount, listRedisSnapshots, redisInfo, type RedisManifest } from "./redis-snapshots.ts";
import { writeThroughTraffic } from "./probes.ts";
import { tableSteps, tablesReport } from "./restore-tables.ts";
import { TableList } from "./table-dumps.ts";
import { ModelVersion, modelRestoreSteps, modelSetReport } from "./model-sets.ts";
import { appReconnectedStep, inRecovery, pauseTradingStep, replicationOf, resumeTradingStep, RoleChange, tradingLine, until } from "./role-change.ts";

/** The forms `--to-time` accepts, quoted in the exit-2 line. */
export const ACCEPTED_TIME_FORMS = "2026-12-05T16:45:00Z, 2026-12-05 16:45:00.250+09:00 (date, time to the second or finer, and a zone: Z or ±HH[:MM])";
const ISO_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(Z|[+-]\d{2}(?::?\d{2})?)$/;

/** An ISO 8601 instant with an explicit zone (a zone-less time would be read in the server's zone: never guess). */
export function parseTargetTime(text: string): Date | undefined {
  const match = ISO_TIME.exec(text.trim());
  if (!match) return undefined;
  const [, day, time, zone] = match;
  const offset = zone === "Z" ? "Z" : zone!.length === 3 ? `${zone}:00` : zone!.includes(":") ? zone : `${zone!.slice(0, 3)}:${zone!.slice(3)}`;
  const at = new Date(`${day}T${time!.slice(0, 12)}${offset}`);
  if (Number.isNaN(at.getTime())) return undefined;
  // Date rolls 02-30 over into March: a day that does not exist is malformed, not another day.
  const local = new Date(at.getTime() + offsetMinutes(offset!) * 60_000).toISOString().slice(0, 10);
  return local === day ? at : undefined;
}

function offsetMinutes(offset: string): number {
  if (offset === "Z") return 0;
  const sign = offset.startsWith("-") ? -1 : 1;
  const [h, m] = offset.slice(1).split(":").map(Number);
  return sign * (h! * 60 + m!);
}

/** What PostgreSQL and pgBackRest both parse: `2026-12-05 16:45:00.250+00`. */
function pgTime(at: Date): string {
  return `${at.toISOString().replace("T", " ").replace("Z", "")}+00`;
}

export const RestoreArgs = z
  .object({
    db: flag(z.string().regex(/^(latest|\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?)$/, "expected latest or a backup label such as 20261205-164500F").optional(), {
      description: "restore PostgreSQL from this pgBackRest backup set (`tradeops backups list` shows them)",
      placeholder: "latest|LABEL",
    }),
    toTime: flag(
      z
        .string()
        .refine((text) => parseTargetTime(text) !== undefined, `expected an ISO 8601 time with a zone, e.g. ${ACCEPTED_TIME_FORMS}`)
        .optional(),
      { description: "point in time to recover to (PITR); must lie inside the restorable window", placeholder: "ISO8601" },
    ),
    toLsn: flag(z.string().regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, "expected an LSN such as 0/3000060").optional(), { description: "recover up to this WAL location", placeholder: "LSN" }),
    toName: flag(z.string().min(1).max(63).optional(), { description: "recover up to this restore point (pg_create_restore_point)", placeholder: "name" }),
    redis: flag(z.string().regex(/^(latest|\d{8}-\d{6}-\d{3}Z)$/, "expected latest or a snapshot id such as 20261205-170102-123Z").optional(), {
      description: "restore Redis from this snapshot of `backup --redis` (AOF off, RDB in place, key count checked, AOF on)",
      placeholder: "latest|ID",
    }),
    tables: flag(TableList.optional(), { description: "restore these tables from a logical dump of `backup --tables` into the live database, in one transaction (the others are left as they are)", placeholder: "t1,t2" }),
    dump: flag(z.string().regex(/^(latest|\d{8}-\d{6}-\d{3}Z)$/, "expected latest or a dump id such as 20261205-170102-123Z").optional(), {
      description: "the table dump to restore --tables from (default: the newest holding them all)",
      placeholder: "latest|ID",
    }),
    skipVerify: flag(z.boolean().optional(), {
      description: "skip `pgbackrest verify` in the preflight (it reads the whole repository: 30 s of a 55 s RTO for 1 GB here); pgBackRest still checks each file as it restores, and a failure backs out",
    }),
    reason: pauseReasonFlag,
    models: flag(ModelVersion.optional(), { description: "restore this model set from models/ in the bucket: checksums verified, put in place, reloaded through the API (I4)", placeholder: "version" }),
  })
  .superRefine((args, issues) => {
    const targets = [args.toTime && "--to-time", args.toLsn && "--to-lsn", args.toName && "--to-name"].filter(Boolean);
    if (targets.length > 1) issues.addIssue({ code: "custom", path: ["toTime"], message: `${targets.join(" and ")} exclude each other: name one target` });
    const what = [args.db && "--db", args.redis && "--redis", args.tables && "--tables", args.models && "--models"].filter(Boolean);
    if (!what.length) issues.addIssue({ code: "custom", path: ["db"], message: "name what to restore: --db latest|LABEL, --tables t1,t2, --redis latest|ID or --models VERSION" });
    if (what.length > 1) issues.addIssue({ code: "custom", path: ["db"], message: `restore ${what.join(" and ")} in separate runs (PostgreSQL first)` });
    if (args.dump && !args.tables) issues.addIssue({ code: "custom", path: ["dump"], message: "--dump names the table dump of --tables" });
    if (args.skipVerify && !args.db) issues.addIssue({ code: "custom", path: ["skipVerify"], message: "--skip-verify applies to --db" });
    if (args.tables && targets.length) issues.addIssue({ code: "custom", path: ["tables"], message: `${targets.join(", ")} apply to --db; --tables restores a dump as it was taken` });
    if (args.redis && targets.length) issues.addIssue({ code: "custom", path: ["redis"], message: `${targets.join(", ")} apply to --db, not to a Redis snapshot` });
  });
export type RestoreArgs = z.infer<typeof RestoreArgs>;

/** What pgBackRest writes into postgresql.auto.conf besides restore_command (kept: a standby may fetch WAL with it). */
const RECOVERY_TARGET_SETTINGS = [
  "recovery_target",
  "recovery_target_time",
  "recovery_target_lsn",
  "recovery_target_name",
  "recovery_target_xid",
  "recovery_target_inclusive",
  "recovery_target_timeline",
  "recovery_target_action",
];

/** Room for the restore besides the set's size (WAL replayed into pg_wal, a margin). */
const DISK_MARGIN = 1.1;
const DISK_EXTRA_BYTES = 256 * 1024 * 1024;
/** Recovery of a PITR replays WAL fetched one segment at a time from S3 (field notes: PITR restore 10.6 s for 1.7 GB). */
const RECOVERY_WITHIN_MS = 15 * 60_000;
const FIRST_WRITE_WITHIN_MS = 15_000;

type Target = { type: "time"; at: Date } | { type: "lsn"; lsn: string } | { type: "name"; name: string } | { type: "default" };

function targetOf(args: RestoreArgs): Target {
  if (args.toTime) return { type: "time", at: parseTargetTime(args.toTime)! };
  if (args.toLsn) return { type: "lsn", lsn: args.toLsn.toUpperCase() };
  if (args.toName) return { type: "name", name: args.toName };
  return { type: "default" };
}

function describeTarget(target: Target): string {
  switch (target.type) {
    case "time":
      return `time ${pgTime(target.at)}`;
    case "lsn":
      return `LSN ${target.lsn}`;
    case "name":
      return `restore point '${target.name}'`;
    case "default":
      return "the end of the archived WAL";
  }
}

function windowLine(window: RestorableWindow): string {
  return `${utc(window.from)} → ${utc(window.to)}`;
}

export const restore = defineRunbook({
  command: ["restore"],
  name: "restore",
  summary: "point-in-time restore of PostgreSQL from pgBackRest: preflight, data dir kept aside, verified, standby rebuilt",
  features: ["S8", "Z6", "I4", "I5", "I9"],
  mutates: true,
  args: RestoreArgs,
  steps: (args, { outputs }) => {
    if (args.models) return modelRestoreSteps(outputs, args.models);
    if (args.redis) return redisSteps(args.redis, args.reason, outputs);
    if (args.tables) return tableSteps(args.tables, args.dump ?? "latest", args.reason, outputs);
    return databaseSteps(args, outputs);
  },
  report: (facts) => {
    if (facts.redisSnapshot) return redisReport(facts);
    if (facts.modelSet) return modelSetReport(facts);
    if (facts.tableDump) return tablesReport(facts);
    const started = facts.startedAt as number | undefined;
    const firstWrite = facts.firstWriteAt as number | undefined;
    const rtoSeconds = started && firstWrite ? (firstWrite - started) / 1000 : null;
    if (!facts.asideDir && !facts.backedOut && !facts.timelineAfter) {
      const line = `nothing was restored; restorable window ${String(facts.window ?? "unknown")}`;
      return { text: line, json: { restored: false, backupSet: facts.backupSet ?? null, target: facts.target ?? null, window: facts.windowJson ?? null } };
    }
    const rows: string[][] = [
      ["backup set", String(facts.backupSet ?? "-")],
      ["target", String(facts.target ?? "-")],
      ["restorable window", String(facts.window ?? "-")],
      ["timeline", facts.timelineAfter ? `${facts.timelineBefore ?? "?"} → ${facts.timelineAfter}` : "-"],
      ["last replayed commit", String(facts.lastReplayedCommitAt ?? "-")],
      ["previous data dir kept at", String(facts.asideDir ?? "-")],
      ["standby", String(facts.standbyRebuilt ?? "-")],
      ["RTO (first step → first write through the endpoint)", rtoSeconds === null ? "-" : `${rtoSeconds.toFixed(1)} s`],
      ["trading", tradingLine(facts)],
    ];
    if (facts.backedOut) rows.push(["BACKED OUT", String(facts.backedOut)]);
    return {
      text: table(["RESTORE", "VALUE"], rows),
      json: {
        restored: Boolean(facts.timelineAfter) && !facts.backedOut,
        backupSet: facts.backupSet ?? null,
        target: facts.target ?? null,
        window: facts.windowJson ?? null,
        timelineBefore: facts.timelineBefore ?? null,
        timelineAfter: facts.timelineAfter ?? null,
        lastReplayedCommitAt: facts.lastReplayedCommitAt ?? null,
        tables: facts.tables ?? null,
        asideDir: facts.asideDir ?? null,
        standbyRebuilt: facts.standbyRebuilt ?? null,
        rtoSeconds,
        backedOut: facts.backedOut ?? null,
        tradingPaused: facts.tradingPaused ?? null,
        tradingResumed: facts.tradingResumed ?? null,
      },
    };
  },
});

function databaseSteps(args: RestoreArgs, outputs: StackOutputs): Step[] {
  const { primary, standby } = outputs.database;
  const target = targetOf(args);
  const change = new RoleChange(outputs, primary, primary, args.reason ?? `restore to ${describeTarget(target)}`);
  let platformPromise: Promise<RestorePlatform> | undefined;
  const platform = () => (platformPromise ??= restorePlatformOf(outputs));
  let chosen: PgBackupSet | undefined;
  let aside: string | undefined;
  let timelineBefore: number | undefined;
  const setName = args.db === "latest" || !args.db ? "the newest usable backup" : args.db;

  /** Puts the previous data dir back and restarts everything as it was (the undo of the move-aside). */
  const putBackPrevious = async (ctx: StepContext, why: string): Promise<void> => {
    if (!aside) return;
    const p = await platform();
    try {
      ctx.log(`backing out: ${why}`);
      ctx.log(`${primary.name}: ${await p.stop(primary, (line) => ctx.log(line))}`);
      await p.putBack(primary, aside);
      ctx.log(`${primary.name}: previous data dir put back from ${aside}`);
      await p.start(primary, (line) => ctx.log(line));
      if (standby) await p.start(standby, (line) => ctx.log(line)).catch((e: unknown) => ctx.log(`${standby.name} did not start: ${oneLine(e)}`));
      await p.startApp((line) => ctx.log(line)).catch((e: unknown) => ctx.log(`the app did not start: ${oneLine(e)}`));
    } catch (undoError) {
      ctx.record("backedOut", `FAILED: ${oneLine(undoError)}`);
      throw new StepFailure(`${why}; putting the previous data dir back failed too: ${oneLine(undoError)}`, `by hand: stop ${primary.name}, move ${aside} back to ${primary.dataDir}, \`tradeops sandbox up\``);
    }
    aside = undefined;
    ctx.record("asideDir", null);
    ctx.record("backedOut", `${why} — the previous data dir is back and running`);
  };
  /** A step failed after the move-aside: undo it, then fail saying so. */
  const backOut = async (ctx: StepContext, error: unknown): Promise<never> => {
    if (!aside) throw error;
    const why = oneLine(error);
    await putBackPrevious(ctx, why);
    throw new StepFailure(`${why}; backed out: ${primary.name} runs on its previous data dir again (nothing was lost)`, `read ${primary.name}'s log and the pgBackRest log, fix the cause, then re-run; trading stays paused until you resume it`);
  };

  return [
    {
      name: "Check the backup set, the recovery target and the disk",
      plan: `pgbackrest info: ${setName} exists; ${describeTarget(target)} lies inside the restorable window (oldest backup → last archived WAL); ${args.skipVerify ? "pgbackrest verify skipped" : "pgbackrest verify: the set and the ones it builds on are intact"}; free disk for the restore beside the current data dir`,
      readOnly: true,
      action: async (ctx) => {
        ctx.record("startedAt", Date.now());
        const repository = await readRepository(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot read the backup repository: ${oneLine(error)}`, "run `tradeops health`; the S3 store must answer before a restore");
        });
        const { sets, window } = repository;
        ctx.record("window", windowLine(window));
        ctx.record("windowJson", { from: window.from?.toISOString() ?? null, to: window.to?.toISOString() ?? null, lastArchivedWal: window.lastArchivedWal ?? null });
        if (!sets.length) throw new Refusal(`stanza ${outputs.backup.stanza} has no backup to restore`, "take one first: `tradeops backup`");
        chosen = chooseSet(args.db!, target, sets, window);
        ctx.record("backupSet", chosen.label);
        ctx.record("target", describeTarget(target));
        ctx.log(`backup set ${chosen.label} (${chosen.type}, stopped ${utc(chosen.stoppedAt)}, ${bytes(chosen.sizeBytes)}); restorable window ${windowLine(window)}`);
        if (args.skipVerify) ctx.log("pgbackrest verify skipped (--skip-verify)");
        else await checkIntact(outputs, chosen, sets, ctx);
        const free = await (await platform()).freeBytes(primary);
        const needed = Math.ceil(chosen.sizeBytes * DISK_MARGIN) + DISK_EXTRA_BYTES;
        ctx.record("freeBytes", free);
        if (free < needed) {
          throw new Refusal(`not enough disk beside ${primary.dataDir}: the restore needs ${bytes(needed)} while the current data dir is kept aside, ${bytes(free)} free`, "free disk space (old `*.before-restore-*` dirs of earlier restores?) or restore elsewhere");
        }
        timelineBefore = await timelineOf(outputs, primary, ctx).catch(() => undefined);
        ctx.record("timelineBefore", timelineBefore ?? null);
      },
    },
    pauseTradingStep(change),
    {
      name: "Stop the app so nothing writes during the restore",
      plan: "stop the trading app (its writes after the target would be lost anyway)",
      action: async (ctx) => ctx.log(`app: ${await (await platform()).stopApp((line) => ctx.log(line))}`),
      undo: { plan: "start the app", run: async (ctx) => (await platform()).startApp((line) => ctx.log(line)) },
    },
    ...(standby
      ? [
          {
            name: `Stop the standby ${standby.name}`,
            plan: `pg_ctl stop -m fast; it is rebuilt from the restored primary afterwards`,
            action: async (ctx: StepContext) => ctx.log(`${standby.name}: ${await (await platform()).stop(standby, (line) => ctx.log(line))}`),
            undo: { plan: `start ${standby.name} again`, run: async (ctx: StepContext) => (await platform()).start(standby, (line) => ctx.log(line)) },
          },
        ]
      : []),
    {
      name: `Stop the primary ${primary.name}`,
      plan: "pg_ctl stop -m fast (WAL still waiting for archive-push is pushed by the clean stop)",
      action: async (ctx) => ctx.log(`${primary.name}: ${await (await platform()).stop(primary, (line) => ctx.log(line))}`),
      undo: { plan: `start ${primary.name} again`, run: async (ctx) => (await platform()).start(primary, (line) => ctx.log(line)) },
    },
    {
      name: `Keep ${primary.name}'s data dir aside`,
      plan: `rename ${primary.dataDir} to ${primary.dataDir}.before-restore-<time> (kept, not deleted) and restore into an empty dir`,
      action: async (ctx) => {
        aside = await (await platform()).setAside(primary);
        ctx.record("asideDir", aside);
        ctx.log(`kept at ${aside}`);
      },
      undo: { plan: `put ${primary.dataDir}.before-restore-<time> back (done by itself when a later step fails)`, run: (ctx) => putBackPrevious(ctx, "undo asked") },
    },
    {
      name: `Restore ${setName} to ${describeTarget(target)} with pgBackRest`,
      plan: `pgbackrest restore --delta --set=<set> ${pgbackrestTarget(target).join(" ")}`,
      destructive: true,
      action: async (ctx) => {
        try {
          await pgbackrest(outputs)("restore", [`--pg1-path=${primary.dataDir}`, "--delta", `--set=${chosen!.label}`, ...pgbackrestTarget(target)], ctx.signal);
        } catch (error) {
          await backOut(ctx, error);
        }
      },
      onFailure: "the previous data dir was put back; read the pgBackRest log",
    },
    {
      name: `Start ${primary.name} and wait for recovery to reach the target and promote`,
      plan: "replays archived WAL up to the target, then promotes onto a new timeline",
      budgetMs: RECOVERY_WITHIN_MS + 60_000,
      action: async (ctx) => {
        try {
          const p = await platform();
          await p.startRestored(primary, (line) => ctx.log(line));
          let died = false;
          const promoted = await until(
            async () => {
              if (!(await p.running(primary))) return (died = true);
              return (await inRecovery(outputs, primary, ctx)) === false;
            },
            RECOVERY_WITHIN_MS,
            ctx.signal,
            100,
          );
          if (died) throw new StepFailure(`${primary.name} stopped during recovery (recovery target not reached?)`);
          if (!promoted) throw new StepFailure(`${primary.name} was still in recovery after ${RECOVERY_WITHIN_MS / 60_000} min`);
          ctx.record("promotedAt", Date.now());
        } catch (error) {
          await backOut(ctx, error);
        }
      },
    },
    {
      name: `Clear the recovery target from ${primary.name}'s configuration`,
      plan: "ALTER SYSTEM RESET recovery_target_*: pgBackRest wrote them into postgresql.auto.conf, and a standby cloned with them would promote itself at the target (split brain)",
      action: async (ctx) => {
        try {
          await onPg(
            outputs,
            primary,
            async (client) => {
              // One statement per query: ALTER SYSTEM refuses the implicit transaction of a multi-statement string.
              for (const setting of RECOVERY_TARGET_SETTINGS) await client.query(`alter system reset ${setting}`);
            },
            { signal: ctx.signal, timeoutMs: 10_000 },
          );
        } catch (error) {
          await backOut(ctx, error);
        }
      },
    },
    {
      name: `Verify the restored primary ${primary.name}`,
      plan: "it answers and takes writes, it is on a new timeline, its last replayed commit is not after the target; row counts per table recorded",
      action: async (ctx) => {
        try {
          const found = await verifyRestored(outputs, primary, ctx);
          ctx.record("timelineAfter", found.timeline);
          ctx.record("lastReplayedCommitAt", found.lastCommit);
          ctx.record("tables", found.tables);
          ctx.log(`timeline ${timelineBefore ?? "?"} → ${found.timeline}; last replayed commit ${found.lastCommit ?? "none"}; ${Object.keys(found.tables).length} table(s)`);
          if (timelineBefore !== undefined && found.timeline <= timelineBefore) throw new StepFailure(`${primary.name} is on timeline ${found.timeline}, not a new one after ${timelineBefore}`);
          if (target.type === "time" && found.lastCommit && new Date(found.lastCommit) > target.at) {
            throw new StepFailure(`the last replayed commit (${found.lastCommit}) is after the target ${pgTime(target.at)}`);
          }
        } catch (error) {
          await backOut(ctx, error);
        }
        // From here the restored cluster is the one to keep: the data dir aside stays for the operator.
        aside = undefined;
      },
    },
    ...(standby
      ? [
          {
            name: `Rebuild the standby ${standby.name} from the restored primary`,
            plan: `its data is on the old timeline: delete it, clone ${primary.name} (pg_basebackup), start, wait until it streams`,
            destructive: true,
            action: async (ctx: StepContext) => {
              const p = await platform();
              if (await p.running(standby)) await p.stop(standby, (line) => ctx.log(line));
              await p.discard(standby);
              await p.start(standby, (line) => ctx.log(line));
            },
            verify: async (ctx: StepContext) => {
              const replication = await replicationOf(outputs, primary, standby, ctx);
              if (!replication) throw new StepFailure(`${standby.name} does not stream from ${primary.name}`, `read ${standby.name}'s log, then \`tradeops sandbox up\``);
              ctx.record("standbyRebuilt", `${standby.name} streams (${replication.syncState})`);
            },
            onFailure: `the restored primary is fine; bring ${standby.name} back with \`tradeops sandbox up\``,
          },
        ]
      : []),
    {
      name: "Start the app and prove a write goes through the traffic endpoint",
      plan: `start the app; one write through ${outputs.database.traffic.host}:${outputs.database.traffic.port} must land on ${primary.name}`,
      action: async (ctx) => {
        await (await platform()).startApp((line) => ctx.log(line));
        const deadline = Date.now() + FIRST_WRITE_WITHIN_MS;
        let last: unknown;
        while (Date.now() < deadline && !ctx.signal.aborted) {
          try {
            const took = await writeThroughTraffic(outputs, `restore: ${change.reason}`, { signal: ctx.signal, timeoutMs: 2_000 });
            ctx.record("firstWriteAt", Date.now());
            if (took !== primary.name) throw new StepFailure(`the write through the endpoint landed on ${took}, not ${primary.name}`);
            return;
          } catch (error) {
            if (error instanceof StepFailure) throw error;
            last = error;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        throw new StepFailure(`no write went through the traffic endpoint within ${FIRST_WRITE_WITHIN_MS / 1000} s (${oneLine(last)})`, "run `tradeops health`");
      },
    },
    appReconnectedStep(change),
    resumeTradingStep(change),
  ];
}

/** The set a restore starts from: the one named, or the newest whose stop lies before the target; a target outside the window is refused. */
function chooseSet(db: string, target: Target, sets: PgBackupSet[], window: RestorableWindow): PgBackupSet {
  const named = db === "latest" ? undefined : sets.find((set) => set.label === db);
  if (db !== "latest" && !named) {
    throw new Refusal(`backup set ${db} is not in the repository (it has ${sets.map((s) => s.label).join(", ")})`, "`tradeops backups list` shows the sets");
  }
  if (target.type !== "time") return named ?? sets.at(-1)!;
  const at = target.at;
  const refuse = (why: string) =>
    new Refusal(`--to-time ${pgTime(at)} is ${why}; the restorable window is ${windowLine(window)}`, "pick a time inside the window (`tradeops backups list`)");
  const expiredBefore = Boolean(window.from && sets[0] && window.from > sets[0].stoppedAt);
  if (window.from && at <= window.from) throw refuse(expiredBefore ? "before the restorable window starts (the WAL after older backups has expired)" : "before the oldest backup finished");
  if (!window.to) throw new Refusal("no WAL has been archived: a point-in-time restore has nothing to replay", "check WAL archiving (`tradeops diagnose`)");
  if (at > window.to) throw refuse("after the last archived WAL");
  if (named) {
    if (at <= named.stoppedAt) throw refuse(`before backup ${named.label} finished (${utc(named.stoppedAt)})`);
    if (window.from && named.stoppedAt < window.from) throw refuse(`reachable from backup ${named.label} only through WAL that has expired (name a later set, or latest)`);
    return named;
  }
  return sets.filter((set) => set.stoppedAt < at).at(-1)!;
}

/** Refuses a set that pgBackRest's verify finds damaged (or any set of its chain): better now than half-way through the restore. */
async function checkIntact(outputs: StackOutputs, chosen: PgBackupSet, sets: PgBackupSet[], ctx: StepContext): Promise<void> {
  const verified = await verifyRepository(outputs, ctx.signal).catch((error: unknown) => {
    throw new Refusal(`pgbackrest verify did not run: ${oneLine(error)}`, "read the pgBackRest log; the restore needs a verified backup set");
  });
  for (const set of chainOf(chosen, sets)) {
    const result = verified.get(set.label);
    if (!result) throw new Refusal(`pgbackrest verify does not list backup set ${set.label}`, "run `pgbackrest verify` by hand and read its output");
    if (result.status !== "valid") {
      const damaged = result.damaged.length ? ` (${result.damaged.slice(0, 3).join(", ")}${result.damaged.length > 3 ? ", …" : ""})` : "";
      const of = set === chosen ? "" : ` (the ${set.type} backup ${chosen.label} is built on)`;
      throw new Refusal(`backup set ${set.label}${of} is damaged in the repository: ${result.counts}${damaged}`, "restore from another set (`--db LABEL`, `tradeops backups list`), then take a new full backup");
    }
  }
  ctx.log(`pgbackrest verify: ${chainOf(chosen, sets).map((set) => set.label).join(" ← ")} intact`);
}

function pgbackrestTarget(target: Target): string[] {
  switch (target.type) {
    case "time":
      return ["--type=time", `--target=${pgTime(target.at)}`, "--target-action=promote"];
    case "lsn":
      return ["--type=lsn", `--target=${target.lsn}`, "--target-action=promote"];
    case "name":
      return ["--type=name", `--target=${target.name}`, "--target-action=promote"];
    case "default":
      return ["--type=default"];
  }
}

/** The timeline WAL is written on now (pg_control's checkpoint timeline lags a promotion). */
async function timelineOf(outputs: StackOutputs, node: PgNode, ctx: StepContext): Promise<number> {
  return onPg(
    outputs,
    node,
    async (client) => {
      const { rows } = await client.query<{ tli: string }>("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tli");
      return Number.parseInt(rows[0]!.tli, 16);
    },
    { signal: ctx.signal, timeoutMs: 3_000 },
  );
}

async function verifyRestored(outputs: StackOutputs, node: PgNode, ctx: StepContext) {
  return onPg(
    outputs,
    node,
    async (client) => {
      const { rows } = await client.query<{ tli: string; last_commit: Date | null }>(
        "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tli, pg_last_xact_replay_timestamp() as last_commit",
      );
      const tableRows = await client.query<{ name: string; n: string }>(
        `select format('%I.%I', schemaname, relname) as name, n_live_tup::text as n from pg_stat_user_tables order by 1 limit 200`,
      );
      // n_live_tup is an estimate after a restore; count exactly where that is cheap.
      const tables: Record<string, number> = {};
      for (const row of tableRows.rows) {
        const estimate = Number(row.n);
        tables[row.name] = estimate < 1_000_000 ? Number((await client.query<{ n: string }>(`select count(*)::text as n from ${row.name}`)).rows[0]!.n) : estimate;
      }
      return { timeline: Number.parseInt(rows[0]!.tli, 16), lastCommit: rows[0]!.last_commit?.toISOString() ?? null, tables };
    },
    { signal: ctx.signal, timeoutMs: 30_000 },
  );
}

// ---- Redis (restore --redis) ------------------------------------------------------------------------

/** Loading 1M keys takes 0.72 s (field notes); the AOF rewrite after it about as long as a BGSAVE. */
const AOF_REWRITE_WITHIN_MS = 10 * 60_000;

/**
 * Z6 / S8 for Redis, the only safe order (field notes; Redis issues #1826, #12762, #7046): a Redis
 * that starts with `appendonly yes` loads its AOF and ignores the RDB put in place, and comes up
 * empty or old. So: AOF off, stop, RDB in place, start, key count against the manifest, AOF on
 * (Redis writes a fresh AOF from the loaded data), CONFIG REWRITE, wait for the rewrite.
 */
function redisSteps(wanted: string, reason: string | undefined, outputs: StackOutputs): Step[] {
  const { primary } = outputs.database;
  const change = new RoleChange(outputs, primary, primary, reason ?? `restore Redis snapshot ${wanted}`);
  let platformPromise: Promise<RedisPlatform> | undefined;
  const platform = () => (platformPromise ??= redisPlatformOf(outputs));
  let manifest: RedisManifest | undefined;
  let staged: string | undefined;
  let aside: string[] | undefined;
  const quick = (ctx: StepContext) => ({ signal: ctx.signal, timeoutMs: 5_000 });

  const putBackPrevious = async (ctx: StepContext, why: string): Promise<void> => {
    if (!aside) return;
    const p = await platform();
    try {
      ctx.log(`backing out: ${why}`);
      await p.stop((line) => ctx.log(line));
      await p.putBack(aside);
      await p.start((line) => ctx.log(line));
      await p.startApp((line) => ctx.log(line)).catch((e: unknown) => ctx.log(`the app did not start: ${oneLine(e)}`));
    } catch (undoError) {
      ctx.record("backedOut", `FAILED: ${oneLine(undoError)}`);
      throw new StepFailure(`${why}; putting Redis's previous files back failed too: ${oneLine(undoError)}`, `by hand: stop Redis, rename ${aside.join(", ")} back, start it`);
    }
    aside = undefined;
    ctx.record("backedOut", `${why} — Redis runs on its previous files again`);
  };
  const backOut = async (ctx: StepContext, error: unknown): Promise<never> => {
    if (!aside) throw error;
    const why = oneLine(error);
    await putBackPrevious(ctx, why);
    throw new StepFailure(`${why}; backed out: Redis runs on its previous dump.rdb and AOF again`, "read the Redis log; trading stays paused until you resume it");
  };

  return [
    {
      name: "Check the Redis snapshot, the replicas and the disk",
      plan: `snapshot ${wanted} has a manifest in s3://${outputs.backup.bucket}/redis/; no replica is attached (a restore must not stream to one half-way); room for the download`,
      readOnly: true,
      action: async (ctx) => {
        ctx.record("startedAt", Date.now());
        const snapshots = await listRedisSnapshots(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot read the backup bucket: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        manifest = wanted === "latest" ? snapshots.at(-1) : snapshots.find((m) => m.id === wanted);
        if (!manifest) {
          throw new Refusal(
            snapshots.length ? `Redis snapshot ${wanted} is not in the bucket (it has ${snapshots.map((m) => m.id).join(", ")})` : "the backup bucket holds no Redis snapshot",
            "take one: `tradeops backup --redis`",
          );
        }
        ctx.record("redisSnapshot", manifest.id);
        ctx.record("redisSnapshotKeys", manifest.keys.atBgsave);
        const replicas = await onRedis(outputs, async (redis) => Number((await redisInfo(redis, "replication")).connected_slaves ?? 0), quick(ctx)).catch((error: unknown) => {
          throw new Refusal(`Redis does not answer: ${oneLine(error)}`, "bring Redis back first (`tradeops sandbox up` on the sandbox)");
        });
        if (replicas > 0) throw new Refusal(`${replicas} replica(s) are attached to Redis: a restore would stream a half-loaded dataset to them`, "detach them first (REPLICAOF NO ONE on each replica), then restore");
        const free = await (await platform()).freeBytes();
        if (free < manifest.sizeBytes * 2 + 64 * 1024 * 1024) throw new Refusal(`not enough disk beside Redis's data: ${bytes(free)} free, the snapshot is ${bytes(manifest.sizeBytes)} (kept beside the current dump.rdb)`);
        ctx.log(`snapshot ${manifest.id}: ${manifest.keys.atBgsave} key(s), ${bytes(manifest.sizeBytes)}`);
      },
    },
    {
      name: "Download the snapshot and verify its SHA-256 and size",
      plan: "GET redis/<id>/dump.rdb beside Redis's data dir; its SHA-256 and size must match the manifest before Redis is touched",
      action: async (ctx) => {
        staged = (await platform()).stagingFile(manifest!.id);
        const got = await downloadRdb(outputs, manifest!, staged, ctx.signal);
        if (got.sha256 !== manifest!.sha256 || got.sizeBytes !== manifest!.sizeBytes) {
          const { rmSync } = await import("node:fs");
          rmSync(staged, { force: true });
          throw new StepFailure(`snapshot ${manifest!.id} is damaged: sha256 ${got.sha256.slice(0, 16)}… (${bytes(got.sizeBytes)}), manifest says ${manifest!.sha256.slice(0, 16)}… (${bytes(manifest!.sizeBytes)})`, "restore another snapshot (`--redis <id>`); Redis was not touched");
        }
      },
    },
    pauseTradingStep(change),
    {
      name: "Stop the app so nothing writes to Redis during the restore",
      action: async (ctx) => ctx.log(`app: ${await (await platform()).stopApp((line) => ctx.log(line))}`),
      undo: { plan: "start the app", run: async (ctx) => (await platform()).startApp((line) => ctx.log(line)) },
    },
    {
      name: "Turn Redis's AOF off",
      plan: "CONFIG SET appendonly no: a Redis that restarts with the AOF on loads the AOF and ignores the snapshot",
      action: async (ctx) => void (await onRedis(outputs, (redis) => redis.config("SET", "appendonly", "no"), quick(ctx))),
      undo: { plan: "CONFIG SET appendonly yes", run: async (ctx) => void (await onRedis(outputs, (redis) => redis.config("SET", "appendonly", "yes"), quick(ctx))) },
    },
    {
      name: "Stop Redis",
      plan: "SIGTERM by pid (Redis saves its current data to dump.rdb first: that copy is kept aside next)",
      action: async (ctx) => ctx.log(`redis: ${await (await platform()).stop((line) => ctx.log(line))}`),
      undo: { plan: "start Redis", run: async (ctx) => (await platform()).start((line) => ctx.log(line)) },
    },
    {
      name: "Put the snapshot in place as dump.rdb",
      plan: "the current dump.rdb and AOF dir are renamed *.before-restore-<time> (kept); the downloaded snapshot becomes dump.rdb",
      destructive: true,
      action: async (ctx) => {
        aside = await (await platform()).placeRdb(staged!);
        ctx.record("redisAside", aside);
        ctx.log(`kept aside: ${aside.join(", ") || "nothing (Redis had no files)"}`);
      },
      undo: { plan: "rename the *.before-restore-<time> files back (done by itself when a later step fails)", run: (ctx) => putBackPrevious(ctx, "undo asked") },
    },
    {
      name: "Start Redis with the AOF off and check its keys against the manifest",
      plan: "redis-server … --appendonly no loads dump.rdb; the keys loaded must match the manifest's count (less keys whose TTL ran out)",
      action: async (ctx) => {
        try {
          await (await platform()).startWithoutAof((line) => ctx.log(line));
          const { keys, loaded, expired } = await onRedis(
            outputs,
            async (redis) => {
              const persistence = await redisInfo(redis, "persistence");
              return { keys: (await keyCount(redis)).keys, loaded: Number(persistence.rdb_last_load_keys_loaded ?? Number.NaN), expired: Number(persistence.rdb_last_load_keys_expired ?? 0) };
            },
            quick(ctx),
          );
          ctx.record("redisKeysLoaded", keys);
          checkKeyCount(manifest!, keys, expired);
          ctx.log(`${keys} key(s) loaded${Number.isNaN(loaded) ? "" : ` (rdb_last_load_keys_loaded ${loaded}, expired on load ${expired})`}`);
        } catch (error) {
          await backOut(ctx, error);
        }
      },
    },
    {
      name: "Turn the AOF back on and wait for its rewrite",
      plan: "CONFIG SET appendonly yes (Redis writes a fresh AOF from the loaded data) + CONFIG REWRITE; wait for aof_rewrite_in_progress:0 and status ok",
      budgetMs: AOF_REWRITE_WITHIN_MS + 10_000,
      action: async (ctx) => {
        try {
          await onRedis(
            outputs,
            async (redis) => {
              const before = await redisInfo(redis, "persistence");
              await redis.config("SET", "appendonly", "yes");
              await redis.config("REWRITE");
              const deadline = Date.now() + AOF_REWRITE_WITHIN_MS;
              for (;;) {
                const now = await redisInfo(redis, "persistence");
                const rewritten = now.aof_rewrites === undefined || now.aof_rewrites !== before.aof_rewrites;
                if (now.aof_enabled === "1" && rewritten && now.aof_rewrite_in_progress === "0" && now.aof_rewrite_scheduled === "0") {
                  if (now.aof_last_bgrewrite_status !== "ok") throw new StepFailure(`the AOF rewrite finished with status ${now.aof_last_bgrewrite_status}`);
                  break;
                }
                if (Date.now() > deadline || ctx.signal.aborted) throw new StepFailure(`the AOF rewrite did not finish within ${AOF_REWRITE_WITHIN_MS / 60_000} min`);
                await new Promise((resolve) => setTimeout(resolve, 50));
              }
              const keys = (await keyCount(redis)).keys;
              ctx.record("redisKeysAfterAof", keys);
              checkKeyCount(manifest!, keys, 0);
            },
            { signal: ctx.signal, timeoutMs: AOF_REWRITE_WITHIN_MS },
          );
        } catch (error) {
          await backOut(ctx, error);
        }
        // The restored data is now in the AOF: the set-aside files stay for the operator.
        aside = undefined;
      },
    },
    {
      name: "Start the app",
      action: async (ctx) => {
        await (await platform()).startApp((line) => ctx.log(line));
        ctx.record("firstWriteAt", Date.now());
      },
    },
    appReconnectedStep(change),
    resumeTradingStep(change),
  ];
}

/** The keys Redis holds must be what the snapshot had: between the counts at BGSAVE and after it, less keys whose TTL ran out. */
function checkKeyCount(manifest: RedisManifest, keys: number, expiredOnLoad: number): void {
  const high = Math.max(manifest.keys.atBgsave, manifest.keys.afterBgsave);
  const low = Math.min(manifest.keys.atBgsave, manifest.keys.afterBgsave) - Math.max(expiredOnLoad, manifest.keys.withExpiry);
  if (keys < low || keys > high) {
    throw new StepFailure(`Redis holds ${keys} key(s) after the restore, the snapshot's manifest says ${manifest.keys.atBgsave}${low !== high ? ` (${Math.max(0, low)}–${high} accepted)` : ""}`);
  }
}

function redisReport(facts: Record<string, unknown>) {
  const started = facts.startedAt as number | undefined;
  const back = facts.firstWriteAt as number | undefined;
  const seconds = started && back ? (back - started) / 1000 : null;
  const rows = [
    ["Redis snapshot", String(facts.redisSnapshot)],
    ["keys in the manifest", String(facts.redisSnapshotKeys ?? "-")],
    ["keys loaded", String(facts.redisKeysLoaded ?? "-")],
    ["keys with the AOF back on", String(facts.redisKeysAfterAof ?? "-")],
    ["previous files kept at", Array.isArray(facts.redisAside) ? (facts.redisAside as string[]).join(", ") || "-" : "-"],
    ["first step → app started", seconds === null ? "-" : `${seconds.toFixed(1)} s`],
    ["trading", tradingLine(facts)],
  ];
  if (facts.backedOut) rows.push(["BACKED OUT", String(facts.backedOut)]);
  return {
    text: table(["RESTORE (REDIS)", "VALUE"], rows),
    json: {
      restored: facts.redisKeysAfterAof !== undefined && !facts.backedOut,
      redisSnapshot: facts.redisSnapshot,
      manifestKeys: facts.redisSnapshotKeys ?? null,
      keysLoaded: facts.redisKeysLoaded ?? null,
      keysAfterAof: facts.redisKeysAfterAof ?? null,
      aside: facts.redisAside ?? null,
      seconds,
      backedOut: facts.backedOut ?? null,
      tradingPaused: facts.tradingPaused ?? null,
      tradingResumed: facts.tradingResumed ?? null,
    },
  };
}
