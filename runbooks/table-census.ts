/**
 * What a database holds, table by table: exact row counts, and for each time-series table its
 * newest time — the "does it look like the data we had?" of a restore test (C8).
 *
 * A time-series table is a TimescaleDB hypertable (its time dimension) or, where TimescaleDB is not
 * installed, a table with a timestamp or date column (the first one).
 */
import type pg from "pg";

export interface TableCensus {
  /** `schema.table`, quoted where it needs it. */
  table: string;
  rows: number;
  timeColumn: string | null;
  /** The newest value of `timeColumn` (ISO, or the date), null when the table is empty or has none. */
  newest: string | null;
}

export async function tableCensus(client: pg.Client): Promise<TableCensus[]> {
  const tables = (
    await client.query<{ schema: string; name: string; qualified: string }>(
      `select n.nspname as schema, c.relname as name, format('%I.%I', n.nspname, c.relname) as qualified
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and not c.relispartition
          and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
          and n.nspname not like '\\_timescaledb%' and n.nspname not like 'timescaledb\\_%'
        order by 1, 2`,
    )
  ).rows;
  const hypertableTime = await hypertableTimeColumns(client);
  const census: TableCensus[] = [];
  for (const { schema, name, qualified } of tables) {
    const timeColumn = hypertableTime.get(qualified) ?? (await firstTimeColumn(client, qualified));
    const column = timeColumn ? client.escapeIdentifier(timeColumn) : undefined;
    const { rows } = await client.query<{ n: string; newest: Date | string | null }>(
      `select count(*)::text as n${column ? `, max(${column}) as newest` : ""} from ${client.escapeIdentifier(schema)}.${client.escapeIdentifier(name)}`,
    );
    const newest = rows[0]!.newest ?? null;
    census.push({ table: qualified, rows: Number(rows[0]!.n), timeColumn: timeColumn ?? null, newest: newest instanceof Date ? newest.toISOString() : newest });
  }
  return census;
}

/** The time dimension of every hypertable, when TimescaleDB is installed. */
async function hypertableTimeColumns(client: pg.Client): Promise<Map<string, string>> {
  const installed = (await client.query("select 1 from pg_extension where extname = 'timescaledb'")).rowCount;
  if (!installed) return new Map();
  const { rows } = await client.query<{ qualified: string; column_name: string }>(
    `select format('%I.%I', hypertable_schema, hypertable_name) as qualified, column_name
       from timescaledb_information.dimensions where dimension_type = 'Time' and dimension_number = 1`,
  );
  return new Map(rows.map((row) => [row.qualified, row.column_name]));
}

async function firstTimeColumn(client: pg.Client, qualified: string): Promise<string | undefined> {
  const { rows } = await client.query<{ attname: string }>(
    `select attname from pg_attribute
      where attrelid = $1::regclass and attnum > 0 and not attisdropped
        and atttypid in ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
      order by attnum limit 1`,
    [qualified],
  );
  return rows[0]?.attname;
}
