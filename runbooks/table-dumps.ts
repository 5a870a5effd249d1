/**
 * Logical dumps of chosen tables (Z6: the seed's `pg_dump -t`), in the backup bucket as one pg_dump
 * archive (custom format) per table, `logical/<id>/<schema>.<table>.pgdump`, and, written last,
 * `logical/<id>/manifest.json`: each table's exact row count, SHA-256 and size. For bringing back a
 * table someone truncated or dropped without rewinding the whole cluster (pgBackRest PITR does that).
 *
 * One archive per table, because pg_restore's `--table` leaves out a table's indexes and
 * constraints: restoring a subset of the set then means picking whole archives. All of them read
 * one snapshot: a REPEATABLE READ transaction exports it, counts in it, and every pg_dump reads
 * through it (`--snapshot`), so the tables are consistent with each other and the counts exact.
 */
import { spawn } from "node:child_process";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { listManifests, putManifest, setId, uploadStream } from "./bucket-objects.ts";
import { onPg } from "./connect.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";

export const LOGICAL_PREFIX = "logical/";

/** `orders` or `audit.orders`: plain identifiers only (no patterns: pg_dump's -t would treat `*` as one). */
export const TableName = z.string().regex(/^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$/, "expected table names such as orders or public.orders (lowercase, no quotes)");
export const TableList = z
  .string()
  .transform((text) => [...new Set(text.split(",").map((name) => name.trim()).filter(Boolean))])
  .pipe(z.array(TableName).min(1, "name at least one table").max(100));

export const DumpedTable = z.object({
  schema: z.string(),
  name: z.string(),
  rows: z.number().int().nonnegative(),
  key: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sizeBytes: z.number().int().nonnegative(),
});
export type DumpedTable = z.infer<typeof DumpedTable>;

export const TableDumpManifest = z.object({
  kind: z.literal("pg-dump"),
  id: z.string().regex(/^\d{8}-\d{6}-\d{3}Z$/),
  /** Of all the archives together. */
  sizeBytes: z.number().int().nonnegative(),
  database: z.string(),
  tables: z.array(DumpedTable).min(1),
  takenAt: z.string(),
  serverVersion: z.string(),
  timescaledb: z.string().nullable(),
});
export type TableDumpManifest = z.infer<typeof TableDumpManifest>;

export const qualified = (table: { schema: string; name: string }) => `"${table.schema}"."${table.name}"`;
export const displayName = (table: { schema: string; name: string }) => (table.schema === "public" ? table.name : `${table.schema}.${table.name}`);

export function listTableDumps(outputs: StackOutputs, signal?: AbortSignal): Promise<TableDumpManifest[]> {
  return listManifests(outputs, LOGICAL_PREFIX, TableDumpManifest, signal);
}

/** A PostgreSQL client tool: the sandbox's own binaries, else the one on PATH (it must be at least the server's major version). */
export function pgTool(outputs: StackOutputs, tool: "pg_dump" | "pg_restore" | "psql"): string {
  return outputs.platform.kind === "sandbox" ? join(outputs.platform.pgBinDir, tool) : tool;
}

/** libpq's environment for the ops role: the password never appears on a command line. */
export function libpqEnv(outputs: StackOutputs, endpoint: { host: string; port: number }): NodeJS.ProcessEnv {
  const { user, password, name } = outputs.database;
  return { ...process.env, PGHOST: endpoint.host, PGPORT: String(endpoint.port), PGUSER: user, PGPASSWORD: password, PGDATABASE: name, PGCONNECT_TIMEOUT: "3", PGAPPNAME: "tradeops" };
}

/** Resolves each name to an existing table (schema-qualified), refusing names that are not tables. */
export async function resolveTables(outputs: StackOutputs, names: string[], signal: AbortSignal): Promise<{ schema: string; name: string }[]> {
  return onPg(
    outputs,
    outputs.database.primary,
    async (client) => {
      const found: { schema: string; name: string }[] = [];
      const missing: string[] = [];
      for (const name of names) {
        const { rows } = await client.query<{ schema: string; name: string }>(
          "select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass($1) and c.relkind in ('r', 'p')",
          [name],
        );
        if (rows[0]) found.push(rows[0]);
        else missing.push(name);
      }
      if (missing.length) throw new Refusal(`no such table in ${outputs.database.name}: ${missing.join(", ")}`, "name existing tables (`\\dt` in psql)");
      return found;
    },
    { signal, timeoutMs: 10_000 },
  );
}

/** TimescaleDB's version when the extension is installed in the database, else null. */
export async function timescaleVersion(client: import("pg").Client): Promise<string | null> {
  const { rows } = await client.query<{ v: string }>("select extversion as v from pg_extension where extname = 'timescaledb'");
  return rows[0]?.v ?? null;
}

/** Dumps `tables` from the primary straight into the bucket, one archive each; returns the manifest (not yet written). */
export async function dumpTables(outputs: StackOutputs, tables: { schema: string; name: string }[], signal: AbortSignal, log: (line: string) => void): Promise<TableDumpManifest> {
  const takenAt = new Date();
  const id = setId(takenAt);
  return onPg(
    outputs,
    outputs.database.primary,
    async (client) => {
      await client.query("begin isolation level repeatable read read only");
      const [{ snapshot }] = (await client.query<{ snapshot: string }>("select pg_export_snapshot() as snapshot")).rows;
      const serverVersion = (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
      const timescaledb = await timescaleVersion(client);
      const dumped: DumpedTable[] = [];
      for (const table of tables) {
        const rows = Number((await client.query<{ n: string }>(`select count(*)::text as n from ${qualified(table)}`)).rows[0]!.n);
        const key = `${LOGICAL_PREFIX}${id}/${table.schema}.${table.name}.pgdump`;
        const stored = await dumpOne(outputs, table, snapshot!, key, signal);
        dumped.push({ ...table, rows, key, ...stored });
        log(`${displayName(table)}: ${rows} row(s), ${stored.sizeBytes} bytes`);
      }
      await client.query("commit");
      const sizeBytes = dumped.reduce((sum, t) => sum + t.sizeBytes, 0);
      return { kind: "pg-dump" as const, id, sizeBytes, database: outputs.database.name, tables: dumped, takenAt: takenAt.toISOString(), serverVersion, timescaledb };
    },
    // The exporting transaction must stay open for the whole dump.
    { signal, timeoutMs: 6 * 60 * 60_000, statementTimeoutMs: 0 },
  );
}

/** `pg_dump --format=custom --table` of one table through the exported snapshot, streamed into the bucket. */
async function dumpOne(outputs: StackOutputs, table: { schema: string; name: string }, snapshot: string, key: string, signal: AbortSignal) {
  const argv = ["--format=custom", `--snapshot=${snapshot}`, "--no-password", `--table=${qualified(table)}`];
  try {
    return await runClientTool(pgTool(outputs, "pg_dump"), argv, libpqEnv(outputs, outputs.database.primary), signal, (stdout) => uploadStream(outputs, stdout, key, signal));
  } catch (error) {
    if (!(error instanceof StepFailure)) throw error;
    throw new StepFailure(`${displayName(table)}: ${error.message}`, "a dump is never listed without its manifest; fix the cause and re-run");
  }
}

/**
 * Runs a PostgreSQL client tool (pg_dump, pg_restore, psql); `consume` reads its stdout as it
 * comes. Rejects with the tool's last error line; the signal stops it.
 */
export function runClientTool(tool: string, args: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<void>;
export function runClientTool<T>(tool: string, args: string[], env: NodeJS.ProcessEnv, signal: AbortSignal, consume: (stdout: Readable) => Promise<T>): Promise<T>;
export async function runClientTool<T>(tool: string, args: string[], env: NodeJS.ProcessEnv, signal: AbortSignal, consume?: (stdout: Readable) => Promise<T>): Promise<T | void> {
  const child = spawn(tool, args, { env, stdio: ["ignore", consume ? "pipe" : "ignore", "pipe"], signal });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", (error) => reject(signal.aborted ? signal.reason : error));
    child.on("close", (code) => resolve(code ?? 1));
  });
  const [result, code] = await Promise.all([consume?.(child.stdout!), exited]);
  if (code !== 0) {
    const lines = stderr.trim().split("\n");
    const last = lines.filter((line) => /ERROR|FATAL|error/.test(line)).pop() ?? lines.pop() ?? "";
    throw new StepFailure(`${basename(tool)} exited ${code}: ${oneLine(last)}`);
  }
  return result;
}

export function writeTableDumpManifest(outputs: StackOutputs, manifest: TableDumpManifest, signal: AbortSignal): Promise<string> {
  return putManifest(outputs, LOGICAL_PREFIX, manifest, signal);
}
