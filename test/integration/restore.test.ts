/**
 * Restore (issue #7) on the run's shared sandbox: pgBackRest PITR into the real PostgreSQL pair
 * through the S3 store over TLS, and `backups list`. The file leaves the sandbox as it found it —
 * pg-a the primary on a new timeline, pg-b streaming synchronously, health green — because the
 * files after it need it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { opsApiRequest } from "../../clients/ops-api.ts";
import { s3Client } from "../../clients/s3.ts";
import { secretValues } from "../../contract/outputs.ts";
import { onPg, onRedis } from "../../runbooks/connect.ts";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { stateDirFor } from "../../runbooks/state.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const auditFile = join(stateDirFor(outputs), "audit.jsonl");
const cli = (...args: string[]) => tradeops(["--outputs", outputsFile, ...args]);
const { primary, standby } = outputs.database;

/** SQL through the traffic endpoint, as the app writes. */
const sql = <T = Record<string, unknown>>(text: string, values: unknown[] = []) =>
  onPg(outputs, outputs.database.traffic, async (c) => (await c.query(text, values)).rows as T[], { timeoutMs: 10_000 });

/** What "nothing was touched" means for the primary: same postmaster, same data dir inode, no dir set aside. */
function primaryFingerprint() {
  const pid = Number(readFileSync(join(primary.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  const aside = readdirSync(dirname(primary.dataDir)).filter((name) => name.includes(".before-restore-"));
  return { pid, inode: statSync(primary.dataDir).ino, aside };
}

/** Forces a WAL switch and waits until the segment is in the repository (pg_stat_archiver). */
async function archiveCurrentWal(): Promise<void> {
  const [{ wal }] = await sql<{ wal: string }>("select pg_walfile_name(pg_current_wal_lsn()) as wal");
  await sql("select pg_switch_wal()");
  for (let i = 0; i < 200; i++) {
    const [{ last }] = await sql<{ last: string | null }>("select last_archived_wal as last from pg_stat_archiver");
    if (last && last >= wal!) return;
    await sleep(100);
  }
  throw new Error(`WAL segment ${wal} was not archived within 20 s`);
}

async function streamingStandby(): Promise<string | undefined> {
  return onPg(outputs, primary, async (c) => (await c.query("select state || '/' || sync_state as s from pg_stat_replication where application_name = $1", [standby!.name])).rows[0]?.s, { timeoutMs: 3_000 });
}

beforeAll(async () => {
  // A backup to restore from (the files before this one may have taken some; this one must not depend on them).
  const backup = await cli("backup");
  expect(backup.code, backup.stderr).toBe(0);
});

afterAll(async () => {
  // Whatever a failed test left: the pair back up and streaming.
  await tradeops(["sandbox", "up", "--dir", sandboxDir, "--sync"]);
});

describe("restore (#7): preflight refuses before anything is touched", () => {
  it("#7 S8: restore --dry-run prints the plan and changes nothing: the primary still takes writes, its data dir untouched", async () => {
    const before = primaryFingerprint();
    const run = await cli("restore", "--db", "latest", "--to-time", new Date().toISOString(), "--dry-run");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("1. Check the backup set, the recovery target and the disk");
    expect(run.stdout).toMatch(/6\. Keep pg-a's data dir aside\n.*\n\s+undo: put .*before-restore-<time> back/);
    expect(run.stdout).toMatch(/7\. Restore the newest usable backup to time .* with pgBackRest \[destructive\]/);
    expect(run.stdout).toContain("Rebuild the standby pg-b from the restored primary [destructive]");
    expect(primaryFingerprint()).toEqual(before);
    await sql("create table if not exists t_restore_dry (i int)");
    const [{ port }] = await sql<{ port: number }>("insert into t_restore_dry values (1) returning inet_server_port() as port");
    expect(port).toBe(primary.port);
  });

  it("I4: restore --to-time after the last archived WAL, or before the oldest backup, exits 3 printing the window; data dir and running cluster unchanged", async () => {
    const before = primaryFingerprint();
    const later = await cli("restore", "--db", "latest", "--to-time", "2099-01-01T00:00:00Z", "--yes");
    expect(later.code, later.stderr).toBe(3);
    expect(later.stderr).toMatch(/--to-time 2099-01-01 00:00:00\.000\+00 is after the last archived WAL; the restorable window is \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ → \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/);
    const earlier = await cli("restore", "--db", "latest", "--to-time", "2001-02-03 04:05:06+09:00", "--yes", "--json");
    expect(earlier.code).toBe(3);
    const doc = RunDocument.parse(JSON.parse(earlier.stdout));
    expect(doc.failure?.message).toMatch(/--to-time 2001-02-02 19:05:06\.000\+00 is before the oldest backup finished; the restorable window is /);
    expect(doc.report).toMatchObject({ restored: false, window: { from: expect.any(String), to: expect.any(String) } });
    // Nothing touched: the same postmaster on the same data dir, nothing set aside, the standby still streams, writes go through.
    expect(primaryFingerprint()).toEqual(before);
    expect(await streamingStandby()).toBe("streaming/sync");
    const [{ port }] = await sql<{ port: number }>("insert into t_restore_dry values (2) returning inet_server_port() as port");
    expect(port).toBe(primary.port);
  });

  it("#7: a corrupted file of the backup set in the repository makes restore refuse in preflight naming it; the database keeps running", async () => {
    const list = RunDocument.parse(JSON.parse((await cli("backups", "list", "--json")).stdout)).report as { sets: { label: string }[] };
    const label = list.sets.at(-1)!.label;
    const s3 = await s3Client(outputs.backup);
    const { ListObjectsV2Command, GetObjectCommand, PutObjectCommand } = await import("@aws-sdk/client-s3");
    const Bucket = outputs.backup.bucket;
    const root = outputs.backup.prefix.replace(/^\/+|\/+$/g, "");
    try {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: `${root}/backup/${outputs.backup.stanza}/${label}/pg_data/base/` }));
      const victim = listed.Contents!.filter((o) => (o.Size ?? 0) > 100).at(0)!.Key!;
      const original = await (await s3.send(new GetObjectCommand({ Bucket, Key: victim }))).Body!.transformToByteArray();
      await s3.send(new PutObjectCommand({ Bucket, Key: victim, Body: Buffer.from(original).reverse() }));
      try {
        const before = primaryFingerprint();
        const run = await cli("restore", "--db", "latest", "--yes");
        expect(run.code, run.stderr).toBe(3);
        expect(run.stderr).toContain(`backup set ${label} is damaged in the repository: missing: 0, checksum invalid: 1`);
        expect(run.stderr).toContain(victim.slice(victim.indexOf("pg_data/")).replace(/\.[^.]+$/, ""));
        expect(primaryFingerprint()).toEqual(before);
        expect(await streamingStandby()).toBe("streaming/sync");
      } finally {
        await s3.send(new PutObjectCommand({ Bucket, Key: victim, Body: original }));
      }
    } finally {
      s3.destroy();
    }
  });

  it("#7: a malformed --to-time exits 2 with one line naming the accepted forms; a label that is not in the repository exits 3", async () => {
    for (const bad of ["yesterday", "2026-12-05 16:45", "2026-02-30T10:00:00Z", "2026-12-05T16:45:00"]) {
      const run = await cli("restore", "--db", "latest", "--to-time", bad, "--yes");
      expect(run.code, bad).toBe(2);
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
      expect(run.stderr).toContain("expected an ISO 8601 time with a zone, e.g. 2026-12-05T16:45:00Z, 2026-12-05 16:45:00.250+09:00");
    }
    const both = await cli("restore", "--db", "latest", "--to-lsn", "0/3000060", "--to-name", "before-migration");
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--to-lsn and --to-name exclude each other/);
    const before = primaryFingerprint();
    const missing = await cli("restore", "--db", "20000101-000000F", "--yes");
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/backup set 20000101-000000F is not in the repository/);
    expect(primaryFingerprint()).toEqual(before);
  });
});

describe("restore (#7): point in time", () => {
  it("S8 I5: restore --db latest --to-time T brings back exactly the rows committed before T; the standby streams from the restored primary and health exits 0", async () => {
    await sql("drop table if exists t_marker; create table t_marker (i int primary key, at timestamptz not null default clock_timestamp())");
    await sql("insert into t_marker select generate_series(1, 1000)");
    await sql("drop table if exists t_dropped_later; create table t_dropped_later (i int); insert into t_dropped_later select generate_series(1, 10)");
    const backup = await cli("backup", "--type", "incr");
    expect(backup.code, backup.stderr).toBe(0);
    await sql("insert into t_marker select generate_series(1001, 1500)");
    await sleep(300);
    const [{ t }] = await sql<{ t: Date }>("select clock_timestamp() as t");
    await sleep(300);
    // After T: more rows, a new table, a dropped table — none of it may survive the restore.
    await sql("insert into t_marker select generate_series(1501, 2000)");
    await sql("create table t_created_later (i int); insert into t_created_later values (1)");
    await sql("drop table t_dropped_later");
    // The window's end is the archived segment's LastModified, which S3 keeps to the second.
    await sleep(1_100);
    await archiveCurrentWal();

    const list = await cli("backups", "list", "--json");
    expect(list.code, list.stderr).toBe(0);
    const window = (RunDocument.parse(JSON.parse(list.stdout)).report as { window: { from: string; to: string } }).window;
    expect(new Date(window.from).getTime()).toBeLessThan(t!.getTime());
    expect(new Date(window.to).getTime()).toBeGreaterThan(t!.getTime());

    const run = await cli("restore", "--db", "latest", "--to-time", t!.toISOString(), "--yes", "--json");
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const doc = RunDocument.parse(JSON.parse(run.stdout));
    const report = doc.report as { restored: boolean; timelineBefore: number; timelineAfter: number; lastReplayedCommitAt: string; asideDir: string; rtoSeconds: number; tables: Record<string, number> };
    expect(report.restored).toBe(true);
    expect(report.timelineAfter).toBeGreaterThan(report.timelineBefore);
    expect(new Date(report.lastReplayedCommitAt).getTime()).toBeLessThanOrEqual(t!.getTime());
    expect(report.tables["public.t_marker"]).toBe(1500);
    expect(statSync(join(report.asideDir, "PG_VERSION")).isFile()).toBe(true);
    process.stderr.write(`[restore] PITR restore RTO (first step → first write through the endpoint) ${report.rtoSeconds.toFixed(1)} s\n`);

    // Exactly the rows committed before T.
    const [{ n, max }] = await sql<{ n: string; max: number }>("select count(*) as n, max(i) as max from t_marker");
    expect([Number(n), max]).toEqual([1500, 1500]);
    const [{ later, dropped }] = await sql<{ later: string | null; dropped: string | null }>("select to_regclass('t_created_later')::text as later, to_regclass('t_dropped_later')::text as dropped");
    expect(later).toBeNull();
    expect(dropped).toBe("t_dropped_later");
    expect(Number((await sql<{ n: string }>("select count(*) as n from t_dropped_later"))[0]!.n)).toBe(10);

    // The standby was rebuilt on the new timeline and streams synchronously; health is green.
    expect(await streamingStandby()).toBe("streaming/sync");
    const health = await cli("health");
    expect(health.code, health.stdout + health.stderr).toBe(0);

    // One audit line per step, secrets masked.
    const audit = readFileSync(auditFile, "utf8");
    const lines = audit.trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.runId === doc.runId);
    expect(lines.filter((l) => l.step).map((l) => l.result)).toEqual(Array(14).fill("ok"));
    expect(lines.map((l) => l.step).filter(Boolean)).toContain("Rebuild the standby pg-b from the restored primary");
    for (const secret of secretValues(outputs)) {
      expect(audit).not.toContain(secret);
      expect(run.stdout + run.stderr).not.toContain(secret);
    }
  });

  it("S8: a restore whose recovery cannot reach its target backs out by itself: the previous data dir is back and takes writes", async () => {
    // A restore point that does not exist: recovery replays to the end of the archive and stops without reaching it.
    await sql("insert into t_marker values (5001)");
    const before = primaryFingerprint();
    const run = await cli("restore", "--db", "latest", "--to-name", "never-created", "--yes");
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/backed out: pg-a runs on its previous data dir again/);
    const [{ n }] = await sql<{ n: string }>("select count(*) as n from t_marker where i = 5001");
    expect(Number(n)).toBe(1);
    // The very same data dir (inode) is back in place, and no copy was left aside by this run.
    const after = primaryFingerprint();
    expect(after.inode).toBe(before.inode);
    expect(after.aside).toEqual(before.aside);
    expect(await streamingStandby()).toBe("streaming/sync");
  });
});

describe("Redis snapshots (#7)", () => {
  const KEYS = 100_000;
  const redis = <T>(use: Parameters<typeof onRedis<T>>[1]) => onRedis(outputs, use, { timeoutMs: 60_000 });
  const itKeys = () =>
    redis(async (r) => {
      let cursor = "0";
      let n = 0;
      do {
        const [next, keys] = await r.scan(cursor, "MATCH", "it:k:*", "COUNT", 10_000);
        cursor = next;
        n += keys.length;
      } while (cursor !== "0");
      return n;
    });

  it("S8 Z6: 100,000 keys survive backup --redis → FLUSHALL → restore --redis, with the AOF on afterwards and the keys still there after a Redis restart", async () => {
    await redis(async (r) => {
      for (let start = 1; start <= KEYS; start += 1000) {
        const args: string[] = [];
        for (let i = start; i < start + 1000; i++) args.push(`it:k:${i}`, `v${i}`);
        await r.mset(...args);
      }
    });
    const backup = await cli("backup", "--redis", "--json");
    expect(backup.code, backup.stderr).toBe(0);
    const manifest = RunDocument.parse(JSON.parse(backup.stdout)).report as { id: string; key: string; sha256: string; sizeBytes: number; keys: { atBgsave: number } };
    expect(manifest.key).toBe(`redis/${manifest.id}/dump.rdb`);
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.keys.atBgsave).toBeGreaterThanOrEqual(KEYS);

    // backups list names it; an upload whose manifest never came (an interrupted backup) is not listed.
    const s3 = await s3Client(outputs.backup);
    const { PutObjectCommand } = await import("@aws-sdk/client-s3");
    await s3.send(new PutObjectCommand({ Bucket: outputs.backup.bucket, Key: "redis/20000101-000000-000Z/dump.rdb", Body: "partial" })).finally(() => s3.destroy());
    const list = await cli("backups", "list", "--json");
    expect(list.code, list.stderr).toBe(0);
    const listed = (RunDocument.parse(JSON.parse(list.stdout)).report as { redis: { id: string; keys: number }[] }).redis;
    expect(listed.map((snapshot) => snapshot.id)).toContain(manifest.id);
    expect(listed.map((snapshot) => snapshot.id)).not.toContain("20000101-000000-000Z");

    // --dry-run changes nothing: same Redis process, same keys.
    const sandbox = await openSandbox({ dir: sandboxDir });
    const pidBefore = sandbox.pid("redis");
    const dry = await cli("restore", "--redis", "latest", "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("5. Turn Redis's AOF off");
    expect(sandbox.pid("redis")).toBe(pidBefore);
    expect(await itKeys()).toBe(KEYS);

    await redis((r) => r.flushall());
    expect(await redis((r) => r.dbsize())).toBe(0);

    const run = await cli("restore", "--redis", manifest.id, "--yes", "--json");
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const report = RunDocument.parse(JSON.parse(run.stdout)).report as { restored: boolean; keysAfterAof: number; seconds: number };
    expect(report.restored).toBe(true);
    expect(report.keysAfterAof).toBeGreaterThanOrEqual(KEYS);
    process.stderr.write(`[restore] Redis restore of ${KEYS} keys: ${report.seconds.toFixed(1)} s first step → app started\n`);
    expect(await itKeys()).toBe(KEYS);
    expect(await redis((r) => r.get("it:k:54321"))).toBe("v54321");
    expect(await redis((r) => r.config("GET", "appendonly"))).toEqual(["appendonly", "yes"]);

    // The data is in the AOF now: a plain restart (AOF on) keeps it.
    await sandbox.stop("redis");
    await sandbox.start("redis");
    expect(await itKeys()).toBe(KEYS);
    expect(await redis((r) => r.config("GET", "appendonly"))).toEqual(["appendonly", "yes"]);
    // The API's Redis client reconnects with a backoff after the restart (CI saw a 503 right after it).
    for (let i = 0; i < 100 && (await opsApiRequest(outputs.opsApi, "/health/ready").catch(() => ({ status: 0 }))).status !== 200; i++) await sleep(100);
    const health = await cli("health");
    expect(health.code, health.stdout + health.stderr).toBe(0);

    for (const secret of secretValues(outputs)) expect(run.stdout + run.stderr + backup.stdout + backup.stderr).not.toContain(secret);
    await redis(async (r) => {
      for (let start = 1; start <= KEYS; start += 10_000) await r.del(...Array.from({ length: 10_000 }, (_, i) => `it:k:${start + i}`));
    });
  });
});

describe("table dumps (#7)", () => {
  const counts = async () => {
    const [row] = await sql<{ orders: string; positions: string; bystander: string }>(
      "select (select count(*) from it_orders)::text as orders, (select count(*) from it_positions)::text as positions, (select count(*) from it_bystander)::text as bystander",
    );
    return { orders: Number(row!.orders), positions: Number(row!.positions), bystander: Number(row!.bystander) };
  };

  it("Z6 S8: restore --tables it_orders,it_positions brings back those two tables' rows, keys and foreign key, and leaves other tables untouched", async () => {
    await sql(`drop table if exists it_orders, it_positions, it_bystander cascade;
      create table it_positions (id bigint generated always as identity primary key, symbol text not null);
      create table it_orders (id serial primary key, position_id bigint references it_positions (id), qty int not null);
      create index it_orders_qty on it_orders (qty);
      create table it_bystander (i int);
      insert into it_positions (symbol) select 'S' || g from generate_series(1, 50) g;
      insert into it_orders (position_id, qty) select 1 + g % 50, g from generate_series(1, 2000) g;
      insert into it_bystander select generate_series(1, 10);`);

    const dryBackup = await cli("backup", "--tables", "it_orders,it_positions", "--dry-run");
    expect(dryBackup.code, dryBackup.stderr).toBe(0);
    expect(dryBackup.stdout).toContain("2. Dump the tables into the backup bucket");
    const listed = async () => (RunDocument.parse(JSON.parse((await cli("backups", "list", "--json")).stdout)).report as { tableDumps: { id: string }[] }).tableDumps.map((d) => d.id);
    const dumpsBefore = await listed();
    const backup = await cli("backup", "--tables", "it_orders,it_positions", "--json");
    expect(backup.code, backup.stderr).toBe(0);
    const dump = RunDocument.parse(JSON.parse(backup.stdout)).report as { id: string; tables: { name: string; rows: number; key: string }[] };
    expect(dump.tables.map((t) => [t.name, t.rows])).toEqual([["it_orders", 2000], ["it_positions", 50]]);
    expect(dump.tables[0]!.key).toBe(`logical/${dump.id}/public.it_orders.pgdump`);
    // The dry run stored nothing; the real run exactly one dump.
    expect((await listed()).filter((id) => !dumpsBefore.includes(id))).toEqual([dump.id]);

    // The damage: rows deleted, a table dropped, the bystander changed after the dump (it must stay so).
    await sql("delete from it_orders where id > 10; drop table it_positions cascade; insert into it_bystander values (11)");
    const before = await sql<{ n: string }>("select count(*)::text as n from it_orders");

    // --dry-run changes nothing.
    const dry = await cli("restore", "--tables", "it_orders,it_positions", "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("Swap the tables in from the dump, in one transaction [destructive]");
    expect(await sql<{ n: string }>("select count(*)::text as n from it_orders")).toEqual(before);

    // A table the dump does not hold is refused before anything is touched.
    const missing = await cli("restore", "--tables", "it_orders,it_bystander", "--yes");
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/does not hold it_bystander \(it has it_orders, it_positions\)/);

    const run = await cli("restore", "--tables", "it_orders,it_positions", "--yes", "--json");
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const report = RunDocument.parse(JSON.parse(run.stdout)).report as { restored: boolean; tables: Record<string, number>; aside: string };
    expect(report).toMatchObject({ restored: true, tables: { it_orders: 2000, it_positions: 50 } });
    expect(await counts()).toEqual({ orders: 2000, positions: 50, bystander: 11 });
    // Keys, the index and the foreign key came back with the tables; the old it_orders is kept aside.
    const constraints = await sql<{ name: string }>("select conname as name from pg_constraint where conrelid in ('public.it_orders'::regclass, 'public.it_positions'::regclass) order by 1");
    expect(constraints.map((c) => c.name)).toEqual(["it_orders_pkey", "it_orders_position_id_fkey", "it_positions_pkey"]);
    expect(await sql("select 1 from pg_indexes where schemaname = 'public' and indexname = 'it_orders_qty'")).toHaveLength(1);
    expect(await sql<{ n: string }>(`select count(*)::text as n from "${report.aside}".it_orders`)).toEqual(before);
    await sql("insert into it_orders (position_id, qty) values (1, 1)");
    await sql(`drop schema "${report.aside}" cascade; drop table it_orders, it_positions, it_bystander`);
    for (const secret of secretValues(outputs)) expect(run.stdout + run.stderr + backup.stdout + backup.stderr).not.toContain(secret);
  });

  it("Z6: restore --tables refuses, touching nothing, when a view of another table depends on one; bad names exit 2", async () => {
    await sql(`drop table if exists it_lonely cascade; create table it_lonely (i int); insert into it_lonely values (1), (2);`);
    expect((await cli("backup", "--tables", "it_lonely")).code).toBe(0);
    await sql("create view it_lonely_view as select * from it_lonely; insert into it_lonely values (3)");
    const run = await cli("restore", "--tables", "it_lonely", "--yes");
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/other objects depend on it_lonely: view it_lonely_view/);
    expect(await sql<{ n: string }>("select count(*)::text as n from it_lonely")).toEqual([{ n: "3" }]);
    for (const bad of [["--tables", "Orders;drop"], ["--tables", "it_lonely", "--to-time", "2026-12-05T00:00:00Z"], ["--dump", "latest"]]) {
      const usage = await cli("restore", ...bad, "--yes");
      expect(usage.code, bad.join(" ")).toBe(2);
      expect(usage.stderr.trim().split("\n")).toHaveLength(1);
    }
    const absent = await cli("backup", "--tables", "no_such_table");
    expect(absent.code).toBe(3);
    expect(absent.stderr).toMatch(/no such table in trading: no_such_table/);
    await sql("drop table it_lonely cascade");
  });
});

describe("backup sources (#7)", () => {
  it("#7 Z6: backup --from standby copies from the streaming standby (pgBackRest backup-standby) and the set is restorable in the list; auto picks it too", async () => {
    for (const from of ["standby", "auto"]) {
      const run = await cli("backup", "--type", "incr", "--from", from, "--json");
      expect(run.code, run.stderr).toBe(0);
      const doc = RunDocument.parse(JSON.parse(run.stdout));
      expect(doc.facts.source).toBe("standby");
      const label = (doc.report as { label: string }).label;
      const log = readFileSync(join(sandboxDir, "pgbackrest", "log", `${outputs.backup.stanza}-backup.log`), "utf8");
      expect(log.slice(log.lastIndexOf("backup command begin"))).toMatch(/--backup-standby[\s\S]*replay on the standby reached/);
      const list = RunDocument.parse(JSON.parse((await cli("backups", "list", "--json")).stdout)).report as { sets: { label: string }[] };
      expect(list.sets.map((set) => set.label)).toContain(label);
    }
    const primaryOnly = await cli("backup", "--type", "incr", "--from", "primary", "--json");
    expect(primaryOnly.code, primaryOnly.stderr).toBe(0);
    expect(RunDocument.parse(JSON.parse(primaryOnly.stdout)).facts.source).toBe("primary");
  });

  it("#7 Z6: backup refuses (exit 3) while the primary's WAL archiving fails, naming the segment; nothing is taken", async () => {
    const before = RunDocument.parse(JSON.parse((await cli("backups", "list", "--json")).stdout)).report as { sets: unknown[] };
    await onPg(outputs, primary, async (c) => {
      await c.query("alter system set archive_command = 'false'");
      await c.query("select pg_reload_conf()");
    });
    try {
      // Something to archive: a switch out of an empty segment archives nothing.
      await sql("create table if not exists t_archiving (i int); insert into t_archiving values (1); select pg_switch_wal()");
      const failing = async () => (await sql<{ f: boolean }>("select coalesce(last_failed_time > coalesce(last_archived_time, 'epoch'), false) as f from pg_stat_archiver"))[0]!.f;
      for (let i = 0; i < 100 && !(await failing()); i++) await sleep(100);
      const run = await cli("backup", "--type", "incr");
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toMatch(/WAL archiving is failing on pg-a: the last attempt \([0-9A-F]{24} at .*\) failed/);
    } finally {
      await onPg(outputs, primary, async (c) => {
        await c.query("alter system reset archive_command");
        await c.query("select pg_reload_conf()");
      });
    }
    await archiveCurrentWal();
    const after = RunDocument.parse(JSON.parse((await cli("backups", "list", "--json")).stdout)).report as { sets: unknown[] };
    expect(after.sets).toHaveLength(before.sets.length);
  });
});
