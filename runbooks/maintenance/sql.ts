/**
 * Maintenance SQL that is shown before it is run: the dry-run plan prints each statement exactly as
 * the real run sends it to the primary (S6, S13), and the run records every statement it executed
 * with its row count, in the audit line and `--json` (`facts.executed`).
 */
import { z } from "zod";
import type { StackOutputs } from "../../contract/outputs.ts";
import { onPg } from "../connect.ts";
import type { Step, StepContext } from "../engine/runbook.ts";

/** `table` or `schema.table`; letters, digits and `_` only, so quoting needs no escaping. */
export const TableName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, "a table name: table or schema.table (letters, digits, _)");

/** `"public"."positions"` from `positions` or `public.positions`. */
export function quoteTable(name: string): string {
  const [schema, table] = name.includes(".") ? name.split(".") : ["public", name];
  return `${ident(schema!)}.${ident(table!)}`;
}

export const ident = (name: string) => `"${name}"`;

/** Maintenance can run for hours on a big table: the session's deadline is the operator's Ctrl-C, not 10 s. */
const MAINTENANCE_SESSION_MS = 12 * 3600_000;

export interface Executed {
  sql: string;
  rows: number | null;
  ms: number;
}

/** Runs `sql` on the primary as one statement (VACUUM and CONCURRENTLY refuse a transaction block); records it. */
export async function execute(outputs: StackOutputs, sql: string, ctx: StepContext, executed: Executed[]): Promise<Executed> {
  const startedAt = performance.now();
  const result = await onPg(outputs, outputs.database.primary, (c) => c.query(sql), { signal: ctx.signal, timeoutMs: MAINTENANCE_SESSION_MS });
  const entry = { sql, rows: result.rowCount, ms: Math.round(performance.now() - startedAt) };
  executed.push(entry);
  ctx.log(`${sql} → ${entry.rows ?? "done"} (${entry.ms} ms)`);
  ctx.record("executed", executed);
  return entry;
}

/** One step per statement, its plan the statement itself. */
export function sqlSteps(outputs: StackOutputs, statements: { name: string; sql: string }[], options: { destructive?: boolean } = {}): Step[] {
  const executed: Executed[] = [];
  return statements.map(({ name, sql }) => ({
    name,
    plan: sql,
    destructive: options.destructive,
    action: async (ctx) => {
      await execute(outputs, sql, ctx, executed);
    },
  }));
}

/** The report of a maintenance run: each statement as it ran, with its row count and time. */
export function reportExecuted(facts: Record<string, unknown>): { text: string; json: unknown } {
  const executed = (facts.executed as Executed[] | undefined) ?? [];
  return { text: executed.map((e) => `${e.sql} → ${e.rows ?? "done"} (${e.ms} ms)`).join("\n") || "nothing was executed", json: { executed } };
}
