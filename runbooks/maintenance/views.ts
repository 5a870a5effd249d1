/**
 * `tradeops maintenance slow-queries|unused-indexes` — read-only views for S6 and S13: what to fix
 * before running the maintenance that fixes it.
 */
import { z } from "zod";
import { onPg } from "../connect.ts";
import { defineRunbook } from "../engine/runbook.ts";
import { flag } from "../flags.ts";
import { bytes, table } from "../format.ts";

type Rows = { title: string; header: string[]; rows: (string | number)[][] }[];

const render = (facts: Record<string, unknown>) => {
  const views = (facts.views as Rows | undefined) ?? [];
  return { text: views.map((v) => `== ${v.title}\n${v.rows.length ? table(v.header, v.rows) : "(none)"}`).join("\n\n"), json: views };
};

export const maintenanceSlowQueries = defineRunbook({
  command: ["maintenance", "slow-queries"],
  name: "maintenance-slow-queries",
  summary: "statements averaging > 1 s (pg_stat_statements) and queries active > 5 s",
  features: ["S13", "S6"],
  mutates: false,
  args: z.object({ limit: flag(z.number().int().min(1).max(1000).default(10), { description: "rows per view", placeholder: "rows" }) }),
  steps: ({ limit }, { outputs }) => [
    {
      name: "Read pg_stat_statements and pg_stat_activity",
      readOnly: true,
      action: async (ctx) => {
        const views = await onPg(outputs, outputs.database.primary, async (c) => {
          const statements = await c.query(
            `select round(mean_exec_time)::int as mean_ms, round(max_exec_time)::int as max_ms, calls::int, regexp_replace(left(query, 200), '\\s+', ' ', 'g') as query
               from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) and mean_exec_time > 1000
              order by mean_exec_time desc limit $1`,
            [limit],
          );
          const active = await c.query(
            `select pid, usename, round(extract(epoch from now() - query_start))::int as seconds, regexp_replace(left(query, 200), '\\s+', ' ', 'g') as query
               from pg_stat_activity where state = 'active' and now() - query_start > interval '5 seconds' and pid <> pg_backend_pid()
              order by query_start limit $1`,
            [limit],
          );
          return [
            { title: "statements averaging more than 1 s (S13)", header: ["MEAN MS", "MAX MS", "CALLS", "QUERY"], rows: statements.rows.map((r) => [r.mean_ms, r.max_ms, r.calls, r.query]) },
            { title: "queries active for more than 5 s (S6)", header: ["PID", "USER", "SECONDS", "QUERY"], rows: active.rows.map((r) => [r.pid, r.usename, r.seconds, r.query]) },
          ];
        }, { signal: ctx.signal });
        ctx.record("views", views);
      },
    },
  ],
  report: render,
});

export const maintenanceUnusedIndexes = defineRunbook({
  command: ["maintenance", "unused-indexes"],
  name: "maintenance-unused-indexes",
  summary: "indexes never scanned since the statistics were reset (not unique, not a constraint), biggest first",
  features: ["S6"],
  mutates: false,
  args: z.object({}),
  steps: (_args, { outputs }) => [
    {
      name: "Read pg_stat_user_indexes",
      readOnly: true,
      action: async (ctx) => {
        const rows = await onPg(outputs, outputs.database.primary, async (c) => {
          const { rows } = await c.query(
            `select s.schemaname || '.' || s.relname as table_name, s.indexrelname as index_name, pg_relation_size(s.indexrelid)::bigint as size
               from pg_stat_user_indexes s join pg_index i on i.indexrelid = s.indexrelid
              where s.idx_scan = 0 and not i.indisunique and not i.indisprimary
                and not exists (select 1 from pg_constraint c where c.conindid = s.indexrelid)
              order by pg_relation_size(s.indexrelid) desc`,
          );
          return rows;
        }, { signal: ctx.signal });
        ctx.record("views", [{ title: "indexes never used (drop candidates: check replicas and rare reports first)", header: ["TABLE", "INDEX", "SIZE"], rows: rows.map((r) => [r.table_name, r.index_name, bytes(Number(r.size))]) }]);
      },
    },
  ],
  report: render,
});
