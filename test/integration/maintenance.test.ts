/**
 * Maintenance against the shared sandbox's primary and Redis: every dry run prints the exact SQL or
 * Redis command the real run then executes, and changes nothing; destructive ones need --yes.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { onPg, onRedis } from "../../runbooks/connect.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const onStack = (...args: string[]) => tradeops(["--outputs", outputsFile, ...args]);
const sql = (text: string, values: unknown[] = []) => onPg(outputs, outputs.database.primary, (c) => c.query(text, values));

/** The statements a dry run printed (`does:` lines) and the ones the real run executed (--json facts). */
const planned = (stdout: string) => [...stdout.matchAll(/^ {3}does: (.*)$/gm)].map((m) => m[1]!);
const executed = (stdout: string) => (RunDocument.parse(JSON.parse(stdout)).facts.executed as { sql: string; rows: number | null }[]) ?? [];

describe("vacuum, analyze, reindex (S6)", () => {
  it("S6: vacuum --dry-run prints the SQL that the real run then executes", async () => {
    const dry = await onStack("--dry-run", "maintenance", "vacuum", "--table", "positions");
    expect(dry.code, dry.stderr).toBe(0);
    expect(planned(dry.stdout)).toEqual(['VACUUM (ANALYZE) "public"."positions"']);
    const real = await onStack("--json", "maintenance", "vacuum", "--table", "positions");
    expect(real.code, real.stderr).toBe(0);
    expect(executed(real.stdout).map((e) => e.sql)).toEqual(planned(dry.stdout));
    const { rows } = await sql("select last_vacuum is not null as vacuumed from pg_stat_user_tables where relname = 'positions'");
    expect(rows[0].vacuumed).toBe(true);
  });

  it("S6: reindex --concurrently --dry-run prints the SQL that the real run then executes", async () => {
    const args = ["maintenance", "reindex", "--table", "public.positions", "--concurrently"];
    const dry = await onStack("--dry-run", ...args);
    expect(planned(dry.stdout)).toEqual(['REINDEX TABLE CONCURRENTLY "public"."positions"']);
    const real = await onStack("--json", ...args);
    expect(real.code, real.stderr).toBe(0);
    expect(executed(real.stdout).map((e) => e.sql)).toEqual(planned(dry.stdout));
  });

  it("S13: create-index --concurrently prints and runs CREATE INDEX CONCURRENTLY IF NOT EXISTS", async () => {
    const args = ["maintenance", "create-index", "--table", "positions", "--columns", "opened_at desc,symbol", "--concurrently"];
    const dry = await onStack("--dry-run", ...args);
    expect(planned(dry.stdout)).toEqual(['CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_positions_opened_at_symbol" ON "public"."positions" ("opened_at" DESC, "symbol")']);
    const real = await onStack("--json", ...args);
    expect(real.code, real.stderr).toBe(0);
    expect((await sql("select 1 from pg_indexes where indexname = 'idx_positions_opened_at_symbol'")).rowCount).toBe(1);
    const unused = await onStack("maintenance", "unused-indexes");
    expect(unused.stdout).toMatch(/public\.positions\s+idx_positions_opened_at_symbol/);
    await sql("drop index idx_positions_opened_at_symbol");
  });
});

describe("retention (S6, Z7)", () => {
  const DAY = 86_400_000;
  const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString();

  beforeAll(async () => {
    await sql(`create table candles (id bigserial primary key, timeframe text not null, "timestamp" timestamptz not null);
               create table notifications (id bigserial primary key, is_read boolean not null, created_at timestamptz not null);
               create table trades (id bigserial primary key, status text not null, created_at timestamptz not null)`);
    await sql(`insert into candles (timeframe, "timestamp") values ('1m', $1), ('1m', $1), ('1m', $2), ('1h', $1)`, [ago(400), ago(10)]);
    await sql(`insert into notifications (is_read, created_at) values (true, $1), (false, $1), (true, $2)`, [ago(100), ago(10)]);
    await sql(`insert into trades (status, created_at) values ('CANCELLED', $1), ('FILLED', $1), ('CANCELLED', $2)`, [ago(200), ago(10)]);
  });
  afterAll(() => sql("drop table if exists candles, notifications, trades"));

  const counts = async () => {
    const { rows } = await sql(`select (select count(*) from candles)::int as candles, (select count(*) from notifications)::int as notifications, (select count(*) from trades)::int as trades`);
    return rows[0];
  };

  it("S6: retention --dry-run lists the rows that match and deletes nothing; the real run deletes exactly those with the printed SQL", async () => {
    const before = await counts();
    const dry = await onStack("--dry-run", "maintenance", "retention");
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/DELETE FROM "public"\."candles" WHERE ctid = ANY \(ARRAY\(SELECT ctid FROM "public"\."candles" WHERE timeframe = '1m' AND "timestamp" < '\S+' LIMIT 10000\)\) \(repeated until a batch deletes fewer than 10000 rows\); 2 rows match now/);
    expect(dry.stdout).toMatch(/is_read = true AND created_at < '\S+' LIMIT 10000\)\) .*; 1 rows match now/);
    expect(dry.stdout).toMatch(/status = 'CANCELLED' AND created_at < '\S+' LIMIT 10000\)\) .*; 1 rows match now/);
    expect(dry.stdout).toMatch(/TimescaleDB is not installed or klines is not a hypertable/);
    expect(await counts()).toEqual(before);

    const refused = await onStack("maintenance", "retention");
    expect(refused.code).toBe(3);
    expect(await counts()).toEqual(before);

    const real = await onStack("--yes", "--json", "maintenance", "retention");
    expect(real.code, real.stderr).toBe(0);
    const doc = RunDocument.parse(JSON.parse(real.stdout));
    expect(doc.report).toMatchObject({ deleted: { candles: 2, notifications: 1, trades: 1 } });
    const printed = planned(dry.stdout).filter((line) => line.startsWith("DELETE")).map((line) => line.replace(/ \(repeated until.*$/, ""));
    expect([...new Set(executed(real.stdout).map((e) => e.sql))]).toEqual(printed);
    expect(await counts()).toEqual({ candles: 2, notifications: 2, trades: 2 });
  });
});

describe("stuck sessions (S6, S9)", () => {
  it("S9: terminate --idle-in-transaction-older-than lists the session in its dry run and terminates it with --yes", async () => {
    const stuck = new pg.Client({ host: outputs.database.primary.host, port: outputs.database.primary.port, user: outputs.database.user, password: outputs.database.password, database: outputs.database.name, application_name: "stuck-app" });
    stuck.on("error", () => {});
    await stuck.connect();
    try {
      const pid = (await stuck.query("select pg_backend_pid() as pid")).rows[0].pid as number;
      await stuck.query("begin");
      await stuck.query("select 1");
      await sleep(1_200);
      const dry = await onStack("--dry-run", "maintenance", "terminate", "--idle-in-transaction-older-than", "1s");
      expect(dry.stdout).toContain(`matching now: pid ${pid} (${outputs.database.user}, stuck-app,`);
      expect((await sql("select 1 from pg_stat_activity where pid = $1", [pid])).rowCount).toBe(1);
      const real = await onStack("--yes", "--json", "maintenance", "terminate", "--idle-in-transaction-older-than", "1s");
      expect(real.code, real.stderr).toBe(0);
      expect(executed(real.stdout).map((e) => e.sql)).toEqual([planned(dry.stdout)[0]!.replace(/; matching now: .*$/, "")]);
      await sleep(200);
      expect((await sql("select 1 from pg_stat_activity where pid = $1", [pid])).rowCount).toBe(0);
    } finally {
      await stuck.end().catch(() => {});
    }
  });
});

describe("Redis queues (S7, C7)", () => {
  const key = "queue:notification";

  it("S7: redis clear-queue without --yes refuses (exit 3) and leaves the queue intact; with --yes it runs the DEL its dry run printed", async () => {
    await onRedis(outputs, (r) => r.rpush(key, "a", "b", "c"));
    try {
      const refused = await onStack("redis", "clear-queue", "notification");
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/need --yes/);
      expect(await onRedis(outputs, (r) => r.llen(key))).toBe(3);

      const queues = await onStack("redis", "queues");
      expect(queues.stdout).toMatch(/^notification\s+queue:notification\s+3$/m);

      const dry = await onStack("--dry-run", "redis", "clear-queue", "notification");
      expect(planned(dry.stdout)).toEqual([`DEL ${key}`]);
      const real = await onStack("--yes", "--json", "redis", "clear-queue", "notification");
      expect(real.code, real.stderr).toBe(0);
      expect(RunDocument.parse(JSON.parse(real.stdout)).facts.executed).toEqual([{ command: `DEL ${key}`, jobs: 3 }]);
      expect(await onRedis(outputs, (r) => r.llen(key))).toBe(0);
    } finally {
      await onRedis(outputs, (r) => r.del(key));
    }
  });

  it("S13: redis big-keys and ttl-check find a big key without a TTL", async () => {
    await onRedis(outputs, (r) => r.set("results:big-report", "x".repeat(200_000)));
    try {
      const big = await onStack("redis", "big-keys", "--limit", "3");
      expect(big.code, big.stderr).toBe(0);
      expect(big.stdout).toMatch(/^results:big-report\s+string\s+\d+\.\d kB/m);
      const ttl = await onStack("redis", "ttl-check");
      expect(ttl.stdout).toMatch(/^results:\*\s+\d+\s+\d+$/m);
    } finally {
      await onRedis(outputs, (r) => r.del("results:big-report"));
    }
  });
});

describe("cleanup (C4, C7, S12)", () => {
  it("C4: cleanup results --dry-run lists the files past the age and deletes nothing; the run deletes exactly those with --yes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "results-"));
    try {
      const old = new Date(Date.now() - 40 * 86_400_000);
      for (const name of ["2026-10-01/report.csv", "2026-10-02/report.csv"]) {
        mkdirSync(dirname(join(dir, name)), { recursive: true });
        writeFileSync(join(dir, name), "x");
        utimesSync(join(dir, name), old, old);
      }
      writeFileSync(join(dir, "today.csv"), "fresh");
      const dry = await onStack("--dry-run", "cleanup", "results", "--older-than", "30d", "--dir", dir);
      expect(planned(dry.stdout)).toEqual([`rm ${join(dir, "2026-10-01/report.csv")} ${join(dir, "2026-10-02/report.csv")} (2 files, 2 B)`]);
      expect((await onStack("cleanup", "results", "--older-than", "30d", "--dir", dir)).code).toBe(3);
      expect(existsSync(join(dir, "2026-10-01/report.csv"))).toBe(true);
      const real = await onStack("--yes", "cleanup", "results", "--older-than", "30d", "--dir", dir);
      expect(real.code, real.stderr).toBe(0);
      expect(real.stdout).toMatch(/^deleted 2 files \(2 B\)/);
      expect(existsSync(join(dir, "2026-10-01/report.csv"))).toBe(false);
      expect(existsSync(join(dir, "today.csv"))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
