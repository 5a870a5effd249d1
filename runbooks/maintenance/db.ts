/**
 * `tradeops maintenance vacuum|analyze|reindex|create-index|terminate` — the seeds' database care
 * (S6, S13, Z7), each one statement on the primary that `--dry-run` prints exactly as it will run.
 */
import { z } from "zod";
import { Duration, spell } from "../durations.ts";
import { defineRunbook } from "../engine/runbook.ts";
import { flag } from "../flags.ts";
import { loadOutputs } from "../outputs.ts";
import { onPg } from "../connect.ts";
import { ident, quoteTable, reportExecuted, sqlSteps, TableName } from "./sql.ts";

const tableFlag = flag(TableName.optional(), { description: "one table (schema.table); default: the whole database", placeholder: "table" });

export const maintenanceVacuum = defineRunbook({
  command: ["maintenance", "vacuum"],
  name: "maintenance-vacuum",
  summary: "VACUUM (ANALYZE) a table or the database; --dry-run prints the SQL",
  features: ["S6", "Z7"],
  mutates: true,
  args: z.object({ table: tableFlag }),
  steps: ({ table }, { outputs }) =>
    sqlSteps(outputs, [{ name: `Vacuum and analyze ${table ?? `database ${outputs.database.name}`}`, sql: `VACUUM (ANALYZE)${table ? ` ${quoteTable(table)}` : ""}` }]),
  report: reportExecuted,
});

export const maintenanceAnalyze = defineRunbook({
  command: ["maintenance", "analyze"],
  name: "maintenance-analyze",
  summary: "ANALYZE a table or the database (fresh planner statistics); --dry-run prints the SQL",
  features: ["S6"],
  mutates: true,
  args: z.object({ table: tableFlag }),
  steps: ({ table }, { outputs }) =>
    sqlSteps(outputs, [{ name: `Analyze ${table ?? `database ${outputs.database.name}`}`, sql: `ANALYZE${table ? ` ${quoteTable(table)}` : ""}` }]),
  report: reportExecuted,
});

export const maintenanceReindex = defineRunbook({
  command: ["maintenance", "reindex"],
  name: "maintenance-reindex",
  summary: "REINDEX a table or the database, --concurrently without blocking writes; --dry-run prints the SQL",
  features: ["S6"],
  mutates: true,
  args: z.object({
    table: tableFlag,
    concurrently: flag(z.boolean().default(false), { description: "REINDEX … CONCURRENTLY: slower, but writes go on" }),
  }),
  steps: ({ table, concurrently }, { outputs }) => {
    const how = concurrently ? " CONCURRENTLY" : "";
    const sql = table ? `REINDEX TABLE${how} ${quoteTable(table)}` : `REINDEX DATABASE${how} ${ident(outputs.database.name)}`;
    return sqlSteps(outputs, [{ name: `Rebuild the indexes of ${table ?? `database ${outputs.database.name}`}`, sql }]);
  },
  report: reportExecuted,
});

const Column = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*( (asc|desc))?$/i, "a column, optionally followed by asc or desc");

export const maintenanceCreateIndex = defineRunbook({
  command: ["maintenance", "create-index"],
  name: "maintenance-create-index",
  summary: "CREATE INDEX [CONCURRENTLY] IF NOT EXISTS on a table's columns; --dry-run prints the SQL",
  features: ["S13", "S6"],
  mutates: true,
  args: z.object({
    table: flag(TableName, { description: "the table (schema.table)", placeholder: "table" }),
    columns: flag(
      z.string().transform((text) => text.split(",").map((c) => c.trim())).pipe(z.array(Column).min(1)),
      { description: 'columns, comma-separated, e.g. "created_at desc"', placeholder: "columns" },
    ),
    name: flag(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/).optional(), { description: "index name (default idx_<table>_<columns>)", placeholder: "name" }),
    concurrently: flag(z.boolean().default(false), { description: "CREATE INDEX CONCURRENTLY: writes go on while it builds (S13)" }),
  }),
  steps: ({ table, columns, name, concurrently }, { outputs }) => {
    const bare = table.split(".").at(-1)!;
    const indexName = name ?? `idx_${bare}_${columns.map((c) => c.split(" ")[0]).join("_")}`.slice(0, 63);
    const list = columns.map((c) => {
      const [column, order] = c.split(" ");
      return `${ident(column!)}${order ? ` ${order.toUpperCase()}` : ""}`;
    });
    const sql = `CREATE INDEX${concurrently ? " CONCURRENTLY" : ""} IF NOT EXISTS ${ident(indexName)} ON ${quoteTable(table)} (${list.join(", ")})`;
    return sqlSteps(outputs, [{ name: `Create index ${indexName} on ${table}`, sql }]);
  },
  report: reportExecuted,
});

interface StuckSession {
  pid: number;
  usename: string;
  application_name: string;
  seconds: number;
  query: string;
}

const terminateSql = (olderThanMs: number) =>
  `SELECT pid, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE state = 'idle in transaction' AND now() - state_change > interval '${Math.round(olderThanMs / 1000)} seconds' AND pid <> pg_backend_pid()`;

export const maintenanceTerminate = defineRunbook({
  command: ["maintenance", "terminate"],
  name: "maintenance-terminate",
  summary: "terminate sessions idle in a transaction for longer than DURATION (they hold locks and connections)",
  features: ["S6", "S9", "T2"],
  mutates: true,
  args: z.object({
    idleInTransactionOlderThan: flag(Duration, { description: "e.g. 5m: sessions idle in a transaction for longer are terminated", placeholder: "duration" }),
  }),
  /** The sessions that match now, so the plan can list them. */
  async target(args, source) {
    const outputs = await loadOutputs(source);
    const sessions = await onPg(outputs, outputs.database.primary, async (c) => {
      const { rows } = await c.query<StuckSession>(
        `select pid, usename, coalesce(application_name, '') as application_name, round(extract(epoch from now() - state_change))::int as seconds,
                regexp_replace(left(query, 100), '\\s+', ' ', 'g') as query
           from pg_stat_activity where state = 'idle in transaction' and now() - state_change > make_interval(secs => $1) and pid <> pg_backend_pid()
          order by state_change`,
        [Math.round(args.idleInTransactionOlderThan / 1000)],
      );
      return rows;
    });
    return { outputs, sessions };
  },
  steps: ({ idleInTransactionOlderThan }, { outputs, sessions }) => {
    const listed = sessions.length
      ? `; matching now: ${sessions.map((s) => `pid ${s.pid} (${s.usename}, ${s.application_name || "-"}, ${s.seconds} s: ${s.query})`).join(", ")}`
      : "; no session matches now";
    const [step] = sqlSteps(outputs, [{ name: `Terminate sessions idle in a transaction for more than ${spell(idleInTransactionOlderThan)}`, sql: terminateSql(idleInTransactionOlderThan) }], { destructive: true });
    return [{ ...step!, plan: `${step!.plan}${listed}` }];
  },
  report: (facts) => {
    const executed = (facts.executed as { rows: number | null }[] | undefined) ?? [];
    const count = executed[0]?.rows ?? 0;
    return { text: `terminated ${count} session(s)`, json: { terminated: count } };
  },
});

