/**
 * Backup and restore of a ~1 GB table (#7): pgBackRest called directly vs `tradeops backup` /
 * `tradeops restore`, and `pg_dump -Fc` / `pg_restore` for contrast, on a fresh sandbox in a temp
 * dir (base port 28600 unless BENCH_BASE_PORT is set). Prints one table and the ratios
 * (goal: tradeops ≥ 0.95× pgBackRest direct).
 *
 *   npm run bench:restore                       # ~1 GB
 *   BENCH_TABLE_MB=256 npm run bench:restore
 *
 * `tradeops restore` does more than `pgbackrest restore`: it pauses trading, stops the app, keeps
 * the old data dir aside, verifies, and rebuilds the standby (pg_basebackup of the whole cluster).
 * The table shows the whole command (the RTO: first step → a write through the endpoint) and the
 * part that matches the direct call (restore + start + promote) from the command's own step times.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $ } from "zx";
import { onPg } from "../runbooks/connect.ts";
import { RunDocument } from "../runbooks/engine/document.ts";
import { bytes, table } from "../runbooks/format.ts";
import { loadOutputs } from "../runbooks/outputs.ts";
import { pgbackrest } from "../runbooks/platform/db-node.ts";
import { openSandbox } from "../sandbox/index.ts";
import { tradeops } from "../test/support/tradeops.ts";

const tableMb = Number(process.env.BENCH_TABLE_MB ?? 1024);
const basePort = process.env.BENCH_BASE_PORT ?? "28600";
const dir = mkdtempSync(join(tmpdir(), "tradeops-bench-restore-"));
chmodSync(dir, 0o755);
const env = { TRADEOPS_HOME: mkdtempSync(join(tmpdir(), "tradeops-bench-home-")) };
const outputsFile = join(dir, "outputs.json");
const rows: string[][] = [];
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

async function cli(...args: string[]) {
  const run = await tradeops(["--outputs", outputsFile, ...args], env);
  if (run.code !== 0) throw new Error(`tradeops ${args.join(" ")} exited ${run.code}: ${run.stderr.trim().split("\n").pop()}`);
  return run;
}

try {
  const up = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", basePort], env);
  if (up.code !== 0) throw new Error(`sandbox up: ${up.stderr.trim().split("\n").pop()}`);
  const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
  const sandbox = await openSandbox({ dir });
  const { primary } = outputs.database;
  const sql = (text: string) => onPg(outputs, primary, (c) => c.query(text), { timeoutMs: 30 * 60_000 });

  // ~130 bytes a row on disk: a candles-like table of the size asked.
  const rowsWanted = Math.round((tableMb * 1024 * 1024) / 130);
  const load = await timed(() =>
    sql(`create table candles as select g as id, now() - g * interval '1 second' as at, md5(g::text) as symbol, random() * 1000 as open, random() * 1000 as close, md5((g * 7)::text) as note from generate_series(1, ${rowsWanted}) g`),
  );
  const size = Number((await sql("select pg_total_relation_size('candles') as n")).rows[0].n);
  rows.push([`load candles (${bytes(size)}, ${rowsWanted.toLocaleString("en")} rows)`, seconds(load.ms), ""]);
  await sql("checkpoint");

  // Backups: direct, then through tradeops (each a full of the same cluster), from each source.
  for (const from of ["primary", "standby"] as const) {
    const direct = await timed(() => pgbackrest(outputs)("backup", ["--type=full", ...(from === "standby" ? ["--backup-standby"] : [])]));
    rows.push([`pgbackrest backup --type=full${from === "standby" ? " --backup-standby" : ""} (direct)`, seconds(direct.ms), ""]);
    const viaTradeops = await timed(() => cli("backup", "--type", "full", "--from", from));
    rows.push([`tradeops backup --type full --from ${from}`, seconds(viaTradeops.ms), `${(direct.ms / viaTradeops.ms).toFixed(2)}× direct`]);
  }

  // Restore, direct: stop both, data dir aside, pgbackrest restore, start, wait for the promotion.
  await sandbox.stop("ops-api");
  await sandbox.stop("pg-b");
  await sandbox.stop("pg-a");
  const aside = await sandbox.postgres.setAside("pg-a");
  const restoreDirect = await timed(async () => {
    await pgbackrest(outputs)("restore", [`--pg1-path=${primary.dataDir}`, "--delta", "--type=default"]);
    await sandbox.postgres.startRestored("pg-a");
    for (;;) {
      const recovering = await onPg(outputs, primary, async (c) => (await c.query("select pg_is_in_recovery() as r")).rows[0].r, { timeoutMs: 3_000 }).catch(() => true);
      if (!recovering) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  rows.push(["pgbackrest restore + start + promote (direct)", seconds(restoreDirect.ms), ""]);
  // Back to a normal pair for the tradeops run (the direct run left recovery settings and no standby).
  for (const setting of ["recovery_target_action"]) await sql(`alter system reset ${setting}`);
  await sandbox.stop("pg-b");
  await sandbox.postgres.discard("pg-b");
  await sandbox.start("pg-b");
  await sandbox.start("ops-api");
  rmSync(aside, { recursive: true, force: true });

  const restoreRun = await timed(() => cli("restore", "--db", "latest", "--yes", "--json"));
  const doc = RunDocument.parse(JSON.parse(restoreRun.value.stdout));
  const stepMs = (prefix: string) => doc.steps.filter((s) => s.name.startsWith(prefix)).reduce((sum, s) => sum + s.durationMs, 0);
  const matching = stepMs("Restore ") + stepMs("Start pg-a and wait");
  const rto = (doc.report as { rtoSeconds: number | null }).rtoSeconds;
  rows.push(["tradeops restore: pgBackRest restore + start + promote steps", seconds(matching), `${(restoreDirect.ms / matching).toFixed(2)}× direct`]);
  rows.push(["tradeops restore --db latest --yes (whole command, standby rebuilt)", seconds(restoreRun.ms), `RTO ${rto?.toFixed(1) ?? "-"} s (first step → write through the endpoint)`]);
  rows.push(["  of which: preflight (pgbackrest info + verify of the repository)", seconds(stepMs("Check the backup set")), ""]);
  rows.push(["  of which: rebuild the standby", seconds(stepMs("Rebuild the standby")), ""]);

  // Logical dump and restore of the same table, for contrast (field notes: 25 MB/s -Fc).
  const dumpFile = join(dir, "candles.dump");
  const pgBin = outputs.platform.kind === "sandbox" ? outputs.platform.pgBinDir : "";
  const pgEnv = { ...process.env, PGPASSWORD: outputs.database.password };
  const conn = ["-h", primary.host, "-p", String(primary.port), "-U", outputs.database.user];
  const dump = await timed(() => $({ env: pgEnv, quiet: true })`${join(pgBin, "pg_dump")} ${conn} -d ${outputs.database.name} -Fc -t candles -f ${dumpFile}`);
  rows.push(["pg_dump -Fc -t candles", seconds(dump.ms), ""]);
  await sql("create database bench_restore");
  const pgRestore = await timed(() => $({ env: pgEnv, quiet: true })`${join(pgBin, "pg_restore")} ${conn} -d bench_restore -j 2 ${dumpFile}`);
  rows.push(["pg_restore -j 2 into a new database", seconds(pgRestore.ms), ""]);
  const tableDump = await timed(() => cli("backup", "--tables", "candles"));
  rows.push(["tradeops backup --tables candles (pg_dump -Fc into the bucket)", seconds(tableDump.ms), `${(dump.ms / tableDump.ms).toFixed(2)}× pg_dump to a file`]);
  const tableRestore = await timed(() => cli("restore", "--tables", "candles", "--yes"));
  rows.push(["tradeops restore --tables candles (one transaction, old table kept)", seconds(tableRestore.ms), `${(pgRestore.ms / tableRestore.ms).toFixed(2)}× pg_restore -j 2`]);
} finally {
  await tradeops(["sandbox", "down", "--dir", dir], env);
  rmSync(dir, { recursive: true, force: true });
  rmSync(env.TRADEOPS_HOME, { recursive: true, force: true });
}
console.log(table(["BACKUP / RESTORE", "TIME", "VS DIRECT"], rows));
