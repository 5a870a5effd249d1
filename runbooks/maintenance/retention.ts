/**
 * `tradeops maintenance retention` — S6, Z7: old application data goes, as the seeds do it by hand:
 * TimescaleDB `drop_chunks('klines', 90 days)` and a compression policy where the extension and the
 * hypertable exist; batched DELETEs otherwise (1-minute candles > 1 y, read notifications > 3 mo,
 * cancelled trades > 6 mo). Periods come from the stack's `dataRetention` outputs.
 *
 * The cutoffs are whole UTC days, fixed before the plan is made: a dry run and the real run on the
 * same day print and run the very same statements, and the plan lists what matches them now.
 */
import type pg from "pg";
import { z } from "zod";
import type { StackOutputs } from "../../contract/outputs.ts";
import { onPg } from "../connect.ts";
import { defineRunbook, type Step } from "../engine/runbook.ts";
import { table } from "../format.ts";
import { loadOutputs } from "../outputs.ts";
import { type Executed, execute, quoteTable } from "./sql.ts";

/** Rows per DELETE: short transactions, no long lock, replication keeps up. */
const BATCH_ROWS = 10_000;
const DAY_MS = 86_400_000;

interface DeleteRule {
  table: string;
  what: string;
  columns: string[];
  days: (outputs: StackOutputs) => number;
  where: (cutoffIso: string) => string;
}

const DELETE_RULES: DeleteRule[] = [
  { table: "candles", what: "1-minute candles", columns: ["timeframe", "timestamp"], days: (o) => o.dataRetention.candles1mDays, where: (c) => `timeframe = '1m' AND "timestamp" < '${c}'` },
  { table: "notifications", what: "read notifications", columns: ["is_read", "created_at"], days: (o) => o.dataRetention.readNotificationsDays, where: (c) => `is_read = true AND created_at < '${c}'` },
  { table: "trades", what: "cancelled trades", columns: ["status", "created_at"], days: (o) => o.dataRetention.cancelledTradesDays, where: (c) => `status = 'CANCELLED' AND created_at < '${c}'` },
];

/** What applies to this database, measured when the plan is made. */
export type RetentionPlan =
  | { kind: "delete"; table: string; what: string; cutoff: string; sql: string; matching: number }
  | { kind: "drop-chunks"; table: string; cutoff: string; sql: string; chunks: string[] }
  | { kind: "compression"; table: string; sql: string[] }
  | { kind: "absent"; table: string; why: string };

/** `DELETE` of one batch; the run repeats it until a batch comes back short. */
const deleteBatch = (rule: DeleteRule, cutoff: string) =>
  `DELETE FROM ${quoteTable(rule.table)} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${quoteTable(rule.table)} WHERE ${rule.where(cutoff)} LIMIT ${BATCH_ROWS}))`;

export const cutoffFor = (days: number, now = Date.now()) => new Date(Math.floor(now / DAY_MS) * DAY_MS - days * DAY_MS).toISOString();

async function planRetention(outputs: StackOutputs, c: pg.Client): Promise<RetentionPlan[]> {
  const plans: RetentionPlan[] = [];
  for (const rule of DELETE_RULES) {
    const { rows } = await c.query<{ column_name: string }>(`select column_name from information_schema.columns where table_schema = 'public' and table_name = $1`, [rule.table]);
    const missing = rule.columns.filter((col) => !rows.some((r) => r.column_name === col));
    if (missing.length) {
      plans.push({ kind: "absent", table: rule.table, why: rows.length ? `table ${rule.table} has no ${missing.join(", ")}` : `no table ${rule.table}` });
      continue;
    }
    const cutoff = cutoffFor(rule.days(outputs));
    const count = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteTable(rule.table)} WHERE ${rule.where(cutoff)}`);
    plans.push({ kind: "delete", table: rule.table, what: rule.what, cutoff, sql: deleteBatch(rule, cutoff), matching: count.rows[0]!.n });
  }
  // The view exists only with the extension: asking it first would log an ERROR on every plain PostgreSQL.
  const timescale = await c.query(`select 1 from pg_extension where extname = 'timescaledb'`);
  const hypertable = timescale.rowCount ? await c.query(`select 1 from timescaledb_information.hypertables where hypertable_name = 'klines'`) : undefined;
  if (!hypertable?.rowCount) {
    plans.push({ kind: "absent", table: "klines", why: "TimescaleDB is not installed or klines is not a hypertable: no chunks to drop" });
    return plans;
  }
  const cutoff = cutoffFor(outputs.dataRetention.klinesDays);
  const chunks = await c.query<{ chunk: string }>(
    `select chunk_schema || '.' || chunk_name as chunk from timescaledb_information.chunks where hypertable_name = 'klines' and range_end <= $1 order by range_end`,
    [cutoff],
  );
  plans.push({ kind: "drop-chunks", table: "klines", cutoff, sql: `SELECT drop_chunks('klines', older_than => TIMESTAMPTZ '${cutoff}')`, chunks: chunks.rows.map((r) => r.chunk) });
  const after = `INTERVAL '${outputs.dataRetention.klinesCompressAfterDays} days'`;
  plans.push({ kind: "compression", table: "klines", sql: [`ALTER TABLE klines SET (timescaledb.compress)`, `SELECT add_compression_policy('klines', ${after}, if_not_exists => true)`] });
  return plans;
}

export const maintenanceRetention = defineRunbook({
  command: ["maintenance", "retention"],
  name: "maintenance-retention",
  summary: "delete data past its retention (drop_chunks on TimescaleDB, batched DELETEs otherwise); --dry-run lists what matches",
  features: ["S6", "Z7", "C4"],
  mutates: true,
  args: z.object({}),
  async target(_args, source) {
    const outputs = await loadOutputs(source);
    return { outputs, plans: await onPg(outputs, outputs.database.primary, (c) => planRetention(outputs, c)) };
  },
  steps: (_args, { outputs, plans }) => {
    const executed: Executed[] = [];
    const steps: Step[] = [];
    const absent = plans.filter((p) => p.kind === "absent");
    if (absent.length) {
      steps.push({ name: "Note what this database does not have", plan: absent.map((p) => p.why).join("; "), readOnly: true, action: async (ctx) => ctx.record("absent", absent) });
    }
    for (const plan of plans) {
      if (plan.kind === "delete") {
        steps.push({
          name: `Delete ${plan.what} older than ${plan.cutoff}`,
          plan: `${plan.sql} (repeated until a batch deletes fewer than ${BATCH_ROWS} rows); ${plan.matching} rows match now`,
          destructive: true,
          action: async (ctx) => {
            let deleted = 0;
            for (;;) {
              const batch = await execute(outputs, plan.sql, ctx, executed);
              deleted += batch.rows ?? 0;
              if ((batch.rows ?? 0) < BATCH_ROWS) break;
            }
            ctx.record(`deleted.${plan.table}`, deleted);
          },
        });
      } else if (plan.kind === "drop-chunks") {
        steps.push({
          name: `Drop klines chunks older than ${plan.cutoff}`,
          plan: `${plan.sql}; chunks now: ${plan.chunks.length ? plan.chunks.join(", ") : "none"}`,
          destructive: true,
          action: async (ctx) => {
            const dropped = await execute(outputs, plan.sql, ctx, executed);
            ctx.record("deleted.klines", dropped.rows ?? 0);
          },
        });
      } else if (plan.kind === "compression") {
        steps.push({
          name: "Compress klines chunks with a compression policy",
          plan: plan.sql.join("; "),
          action: async (ctx) => {
            for (const sql of plan.sql) await execute(outputs, sql, ctx, executed);
          },
        });
      }
    }
    return steps;
  },
  report: (facts) => {
    const deleted = Object.entries(facts).filter(([key]) => key.startsWith("deleted.")).map(([key, n]) => [key.slice("deleted.".length), Number(n)]);
    return { text: deleted.length ? table(["TABLE", "DELETED"], deleted) : "nothing to delete", json: { deleted: Object.fromEntries(deleted), executed: facts.executed ?? [] } };
  },
});
