/**
 * `backups check`, `backups expire` and `backups verify --restore-test` (#7) on the run's shared
 * sandbox: pgBackRest and the S3 store over TLS, Redis, the PostgreSQL pair. Policies of seconds
 * come from an outputs file written beside the sandbox's, with only `retention` / `freshness` changed.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, inject, it } from "vitest";
import { s3Client } from "../../clients/s3.ts";
import type { StackOutputsInput } from "../../contract/outputs.ts";
import { checkBackups } from "../../runbooks/backups-check.ts";
import { onPg } from "../../runbooks/connect.ts";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { tableCensus } from "../../runbooks/table-census.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const { backup: repo, database } = outputs;
const scratchFiles = mkdtempSync(join(tmpdir(), "tradeops-backups-it-"));

afterAll(() => rmSync(scratchFiles, { recursive: true, force: true }));

/** The sandbox's outputs with another policy: the same stack, the same components. */
function outputsWith(change: Partial<Pick<StackOutputsInput, "retention" | "freshness">>): string {
  const raw = JSON.parse(readFileSync(outputsFile, "utf8")) as StackOutputsInput;
  const file = join(scratchFiles, `outputs-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ ...raw, ...change }), { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

const cli = (file: string, ...args: string[]) => tradeops(["--outputs", file, ...args]);
const json = (stdout: string) => RunDocument.parse(JSON.parse(stdout));
const sql = <T = Record<string, unknown>>(text: string) => onPg(outputs, database.traffic, async (c) => (await c.query(text)).rows as T[], { timeoutMs: 10_000 });

/** A WAL switch, archived: the last archived WAL is seconds old. */
async function archiveNow(): Promise<void> {
  const [{ before }] = await sql<{ before: Date | null }>("select last_archived_time as before from pg_stat_archiver");
  await sql("create table if not exists t_backups_wal (i int); insert into t_backups_wal values (1)");
  await sql("select pg_switch_wal()");
  for (let i = 0; i < 200; i++) {
    const [{ last }] = await sql<{ last: Date | null }>("select last_archived_time as last from pg_stat_archiver");
    if (last && (!before || last > before)) return;
    await sleep(100);
  }
  throw new Error("no WAL segment was archived within 20 s");
}

async function bucketKeys(prefix: string): Promise<string[]> {
  const s3 = await s3Client(repo);
  const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: repo.bucket, Prefix: prefix, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  } finally {
    s3.destroy();
  }
}

async function putObject(key: string, body: string): Promise<void> {
  const s3 = await s3Client(repo);
  const { PutObjectCommand } = await import("@aws-sdk/client-s3");
  try {
    await s3.send(new PutObjectCommand({ Bucket: repo.bucket, Key: key, Body: body }));
  } finally {
    s3.destroy();
  }
}

async function redisSnapshot(): Promise<string> {
  const run = await cli(outputsFile, "backup", "--redis", "--json");
  expect(run.code, run.stderr).toBe(0);
  return /redis\/([^/]+)\//.exec(JSON.stringify(json(run.stdout).report))![1]!;
}

const archivePrefix = `${repo.prefix.replace(/^\/+/, "")}/archive/${repo.stanza}/`;
/** The segment an archive object belongs to (a WAL file, or the .backup label written beside it). */
const walOf = (key: string) => /\/([0-9A-F]{24})[^/]*$/.exec(key)?.[1];

describe("backups check (#7, I6)", () => {
  it("I6: backups check exits 0 when every backup is within the policy, and 1 naming each stale item under a policy of seconds", async () => {
    expect((await cli(outputsFile, "backup", "--type", "full")).code).toBe(0);
    await redisSnapshot();
    await archiveNow();
    // The live model version must have its set in the bucket (I4, I7).
    expect((await cli(outputsFile, "backup", "--models")).code).toBe(0);

    const fresh = await cli(outputsWith({ freshness: { pgFullMaxAgeSeconds: 3600, walMaxAgeSeconds: 3600, redisSnapshotMaxAgeSeconds: 3600 } }), "backups", "check");
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stdout).toMatch(/^✅ PostgreSQL full backup: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/m);
    expect(fresh.stdout).toMatch(/^✅ archived WAL: /m);
    expect(fresh.stdout).toMatch(/^✅ Redis snapshot: /m);
    expect(fresh.stdout).toMatch(/^✅ model set: /m);

    await sleep(2_100);
    const strict = outputsWith({ freshness: { pgFullMaxAgeSeconds: 3600, walMaxAgeSeconds: 1, redisSnapshotMaxAgeSeconds: 1 } });
    const stale = await cli(strict, "backups", "check", "--json");
    expect(stale.code).toBe(1);
    const doc = json(stale.stdout);
    expect(doc.failure?.message).toMatch(/^stale: archived WAL \(\d+ s old, the policy allows 1 s; .*\); Redis snapshot \(\d+ s old, the policy allows 1 s; run `tradeops backup --redis`\)$/);
    expect(doc.failure?.message).not.toContain("PostgreSQL full backup");
    const items = (doc.report as { items: Array<{ item: string; ok: boolean }> }).items;
    expect(items.map((i) => [i.item, i.ok])).toEqual([
      ["PostgreSQL full backup", true],
      ["archived WAL", false],
      ["Redis snapshot", false],
      ["model set", true],
    ]);
    const text = await cli(strict, "backups", "check");
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^❌ Redis snapshot: .* — stale: \d+ s old, the policy allows 1 s/m);

    // The function the doctor reuses gives the same answer without the CLI.
    const direct = await checkBackups(await loadOutputs({ stack: "sandbox", outputsFile: strict }));
    expect(direct.filter((i) => !i.ok).map((i) => i.item)).toEqual(["archived WAL", "Redis snapshot"]);
  });

  it("#7: backups check --dry-run prints its plan; a bad flag exits 2 with one line", async () => {
    const dry = await cli(outputsFile, "backups", "check", "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("1. Check the newest backup of each kind against the policy");
    for (const args of [["backups", "check", "--max-age", "3"], ["backups", "expire", "--all"], ["backups", "verify", "--restore-test", "yes"]]) {
      const bad = await cli(outputsFile, ...args);
      expect(bad.code, args.join(" ")).toBe(2);
      expect(bad.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
  });
});

describe("backups expire (#7, I7)", () => {
  it("I7: backups expire --dry-run lists exactly what would go and deletes nothing; --yes deletes exactly that, pgBackRest WAL and Redis snapshots alike", async () => {
    // WAL before the newest full backup that no backup needs: what `walDays: 1` expires.
    expect((await cli(outputsFile, "backup", "--type", "full")).code).toBe(0);
    await archiveNow();
    await archiveNow();
    expect((await cli(outputsFile, "backup", "--type", "full")).code).toBe(0);
    // Two snapshots and what an interrupted upload left (no manifest), all older than the policy's 2 s; then the newest.
    const old1 = await redisSnapshot();
    await putObject("redis/20000101-000000-000Z/dump.rdb", "partial upload");
    const old2 = await redisSnapshot();
    await sleep(3_000);
    const newest = await redisSnapshot();
    const policy = outputsWith({ retention: { pgFullDays: 30, walDays: 1, redisSnapshotHours: 2 / 3600, modelDays: 90 } });

    const redisBefore = await bucketKeys("redis/");
    const walBefore = await bucketKeys(archivePrefix);
    const dry = await cli(policy, "backups", "expire", "--dry-run", "--json");
    expect(dry.code, dry.stderr).toBe(0);
    type Report = {
      pg: { expiring: { backups: string[]; archive: Array<{ start: string; stop: string }> }; expired: { backups: string[]; archive: Array<{ start: string; stop: string }> } | null };
      bucket: Array<{ kind: string; id: string; complete: boolean; deleted: boolean }>;
    };
    const planned = json(dry.stdout).report as Report;
    const goingIds = planned.bucket.map((set) => set.id);
    expect(goingIds).toEqual(expect.arrayContaining([old1, old2, "20000101-000000-000Z"]));
    expect(goingIds).not.toContain(newest);
    expect(planned.bucket.find((set) => set.id === "20000101-000000-000Z")?.complete).toBe(false);
    expect(planned.pg.expiring.archive.length).toBeGreaterThan(0);
    expect(planned.pg.expired).toBeNull();
    const dryText = await cli(policy, "backups", "expire", "--dry-run");
    expect(dryText.stdout).toMatch(/2\. Expire PostgreSQL backups and WAL with pgBackRest \[destructive\]\n\s+does: pgbackrest expire: WAL 15-1 [0-9A-F]{24} … [0-9A-F]{24}/);
    expect(dryText.stdout).toContain(`redis ${old1} taken`);
    // Nothing was deleted by either dry run.
    expect(await bucketKeys("redis/")).toEqual(redisBefore);
    expect(await bucketKeys(archivePrefix)).toEqual(walBefore);

    // Without --yes (no TTY) it is refused before anything goes.
    const unconfirmed = await cli(policy, "backups", "expire");
    expect(unconfirmed.code).toBe(3);
    expect(await bucketKeys("redis/")).toEqual(redisBefore);

    const real = await cli(policy, "backups", "expire", "--yes", "--json");
    expect(real.code, real.stderr).toBe(0);
    const done = json(real.stdout).report as Report;
    expect(done.pg.expired).toEqual(planned.pg.expiring);
    expect(done.bucket.map((set) => [set.id, set.deleted])).toEqual(goingIds.map((id) => [id, true]));
    // Exactly the planned sets are gone from the bucket, and nothing else.
    const goneRedis = redisBefore.filter((key) => goingIds.some((id) => key.startsWith(`redis/${id}/`)));
    expect(await bucketKeys("redis/")).toEqual(redisBefore.filter((key) => !goneRedis.includes(key)));
    expect(goneRedis.some((key) => key.startsWith(`redis/${newest}/`))).toBe(false);
    // Exactly the planned WAL ranges are gone from the archive, and nothing else.
    const inPlannedRange = (wal: string) => planned.pg.expiring.archive.some((range) => wal >= range.start && wal <= range.stop);
    const walAfter = await bucketKeys(archivePrefix);
    const removed = walBefore.filter((key) => !walAfter.includes(key)).map(walOf);
    expect(removed.length).toBeGreaterThan(0);
    expect(removed.every((wal) => wal !== undefined && inPlannedRange(wal))).toBe(true);
    expect(walAfter.map(walOf).filter((wal): wal is string => wal !== undefined).some(inPlannedRange)).toBe(false);

    // The restorable window starts where the archive is continuous again, not at the oldest backup
    // (restorable to its own end only): a target in the gap is refused before anything is touched.
    const listed = json((await cli(outputsFile, "backups", "list", "--json")).stdout).report as { sets: Array<{ stoppedAt: string }>; window: { from: string } };
    const from = new Date(listed.window.from);
    expect(from.getTime()).toBeGreaterThan(new Date(listed.sets[0]!.stoppedAt).getTime());
    const inGap = await cli(outputsFile, "restore", "--db", "latest", "--to-time", new Date(from.getTime() - 1_000).toISOString(), "--yes");
    expect(inGap.code, inGap.stderr).toBe(3);
    expect(inGap.stderr).toContain("is before the restorable window starts (the WAL after older backups has expired)");

    // Converged: a second run finds nothing to do.
    const again = await cli(policy, "backups", "expire", "--yes");
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("PostgreSQL (pgBackRest): nothing to expire");
    expect(again.stdout).toContain("no set in the bucket is old enough to expire");
    // The audit log has the run, step by step.
    const audit = readFileSync(json(real.stdout).auditFile, "utf8").trim().split("\n").map((line) => JSON.parse(line) as { runbook: string; step?: string; result: string });
    expect(audit.filter((e) => e.runbook === "backups-expire" && e.result === "ok").map((e) => e.step)).toEqual(
      expect.arrayContaining(["Expire PostgreSQL backups and WAL with pgBackRest", "Delete the expired sets from the bucket"]),
    );
  });
});

describe("backups verify (#7, C8)", () => {
  /** Live, non-zombie processes whose command line names `dir`. */
  const processesIn = (dir: string) =>
    execFileSync("ps", ["-eo", "stat=,args="], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.includes(dir) && !line.trim().startsWith("Z"));
  const scratchDirs = () => readdirSync(sandboxDir).filter((name) => name.startsWith("restore-test-"));
  const primaryPid = () => Number(readFileSync(join(database.primary.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);

  it("#7: backups verify --restore-test --dry-run prints the plan and restores nothing", async () => {
    const run = await cli(outputsFile, "backups", "verify", "--restore-test", "--dry-run");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("3. Restore the newest backup into the scratch directory");
    expect(scratchDirs()).toEqual([]);
  });

  it("C8: backups verify --restore-test reports row counts that match the live database at backup time and leaves no process or directory behind", async () => {
    await sql("drop table if exists t_verify_ticks; create table t_verify_ticks (i int, at timestamptz not null)");
    await sql("insert into t_verify_ticks select i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute' from generate_series(1, 1234) i");
    await sql("drop table if exists t_verify_plain; create table t_verify_plain (i int); insert into t_verify_plain select generate_series(1, 77)");
    const backup = await cli(outputsFile, "backup", "--type", "incr");
    expect(backup.code, backup.stderr).toBe(0);
    const atBackup = await onPg(outputs, database.primary, tableCensus, { timeoutMs: 30_000 });
    // After the backup: none of this may show in the restored copy.
    await sql("insert into t_verify_ticks values (9999, timestamptz '2030-01-01 00:00:00+00'); insert into t_verify_plain values (78)");
    const pidBefore = primaryPid();

    const run = await cli(outputsFile, "backups", "verify", "--restore-test", "--json");
    expect(run.code, run.stdout).toBe(0);
    const report = json(run.stdout).report as { verify: string; restoreTest: { result: string; scratch: { dir: string; port: number }; tables: unknown[]; files: string[] } };
    expect(report.verify).toBe("ok");
    expect(report.restoreTest.result).toBe("passed");
    expect(report.restoreTest.tables).toEqual(atBackup);
    expect(atBackup).toEqual(
      expect.arrayContaining([
        { table: "public.t_verify_ticks", rows: 1234, timeColumn: "at", newest: "2026-01-01T20:34:00.000Z" },
        { table: "public.t_verify_plain", rows: 77, timeColumn: null, newest: null },
      ]),
    );
    // Nothing left behind: no scratch dir, no process, nothing on its port; the live primary untouched.
    const { dir, port } = report.restoreTest.scratch;
    expect(dir.startsWith(sandboxDir)).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(scratchDirs()).toEqual([]);
    expect(processesIn(dir)).toEqual([]);
    await expect(onPg(outputs, { host: "127.0.0.1", port }, async () => 1, { timeoutMs: 2_000 })).rejects.toThrow();
    expect(primaryPid()).toBe(pidBefore);
    // The report is kept, as JSON and text.
    const [jsonFile, textFile] = report.restoreTest.files;
    expect(JSON.parse(readFileSync(jsonFile!, "utf8")).tables).toEqual(atBackup);
    expect(readFileSync(textFile!, "utf8")).toMatch(/public\.t_verify_ticks\s+1234\s+at\s+2026-01-01T20:34:00\.000Z/);
  });
});
