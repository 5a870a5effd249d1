/**
 * `tradeops diagnose` — Z5 (and the T1 quick diagnosis): the seeds' performance views in one command.
 *
 * Each view is one step, in the order an on-call engineer reads them. A view that cannot be taken
 * (its component is down or hung) says why and the next views still run: diagnosis is most needed
 * exactly when something is broken. A component that gave no answer once is not waited for again
 * in the same run: its later views say so at once.
 */
import { statfsSync } from "node:fs";
import type { Redis } from "ioredis";
import type pg from "pg";
import { z } from "zod";
import { NoAnswer } from "../clients/deadline.ts";
import { WORK_QUEUES } from "../contract/ops-api.ts";
import type { PgNode, StackOutputs } from "../contract/outputs.ts";
import { onPg, onRedis } from "./connect.ts";
import { oneLine } from "./engine/errors.ts";
import { defineRunbook, type Step, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { bytes, table } from "./format.ts";
import { parseRedisInfo } from "./probes.ts";

/** One view of the report: its rows, or why it could not be taken. */
export type View = { title: string; header: string[]; rows: (string | number)[][]; note?: string };

/** What a view reaches, under the step's signal; a hung endpoint is remembered for the rest of the run. */
interface Reach {
  outputs: StackOutputs;
  pg<T>(endpoint: { host: string; port: number }, use: (client: pg.Client) => Promise<T>): Promise<T>;
  redis<T>(use: (redis: Redis) => Promise<T>): Promise<T>;
}

export const diagnose = defineRunbook({
  command: ["diagnose"],
  name: "diagnose",
  summary: "active queries, biggest tables, chunks, replication, Redis, disk",
  features: ["Z5", "T1", "S6", "S13"],
  mutates: false,
  args: z.object({
    limit: flag(z.number().int().min(1).max(1000).default(10), { description: "rows per view", placeholder: "rows" }),
  }),
  steps: ({ limit }, { outputs }) => {
    const silent = new Map<string, NoAnswer>();
    const view = (name: string, key: string, take: (reach: Reach) => Promise<View>) => viewStep(name, key, outputs, silent, take);
    return [
      view("Show active queries by duration", "activeQueries", (reach) => activeQueries(reach, limit)),
      view("Show the biggest tables", "biggestTables", (reach) => biggestTables(reach, limit)),
      view("Show TimescaleDB chunks", "timescaleChunks", (reach) => timescaleChunks(reach, limit)),
      view("Show the replication state", "replication", (reach) => replicationState(reach)),
      view("Show Redis memory, clients, keys and queues", "redis", (reach) => redisState(reach)),
      view("Show disk use of each data dir", "disk", (reach) => diskUse(reach)),
    ];
  },
  report: (facts) => {
    const views = Object.values(facts) as View[];
    // Cells are cut for the screen only after masking (facts are masked as recorded): a cut secret stays hidden.
    const fit = (rows: View["rows"]) => rows.map((row) => row.map((cell) => (String(cell).length > 80 ? `${String(cell).slice(0, 79)}…` : cell)));
    const text = views
      .map((v) => [`== ${v.title}`, v.note, v.rows.length ? table(v.header, fit(v.rows)) : v.note ? "" : "(none)"].filter(Boolean).join("\n"))
      .join("\n\n");
    return { text, json: facts };
  },
});

function viewStep(name: string, key: string, outputs: StackOutputs, silent: Map<string, NoAnswer>, take: (reach: Reach) => Promise<View>): Step {
  return {
    name,
    action: async (ctx: StepContext) => {
      const remembered = async <T>(target: string, call: () => Promise<T>): Promise<T> => {
        const known = silent.get(target);
        if (known) throw known;
        try {
          return await call();
        } catch (error) {
          if (error instanceof NoAnswer) silent.set(target, error);
          throw error;
        }
      };
      const options = { signal: ctx.signal };
      const reach: Reach = {
        outputs,
        pg: (endpoint, use) => remembered(`${endpoint.host}:${endpoint.port}`, () => onPg(outputs, endpoint, use, options)),
        redis: (use) => remembered(`${outputs.redis.host}:${outputs.redis.port}`, () => onRedis(outputs, use, options)),
      };
      try {
        ctx.record(key, await take(reach));
      } catch (error) {
        ctx.record(key, { title: name.replace(/^Show /, ""), header: [], rows: [], note: `unavailable: ${oneLine(error)}` });
      }
    },
  };
}

const onPrimary = <T>(reach: Reach, use: (client: pg.Client) => Promise<T>) => reach.pg(reach.outputs.database.primary, use);

async function activeQueries(reach: Reach, limit: number): Promise<View> {
  const { rows } = await onPrimary(reach, (c) =>
    c.query(
      `select pid, usename, state, coalesce(wait_event_type || ':' || wait_event, '') as waiting,
              round(extract(epoch from now() - query_start)::numeric, 1) as seconds, regexp_replace(left(query, 4000), '\\s+', ' ', 'g') as query
         from pg_stat_activity
        where state <> 'idle' and pid <> pg_backend_pid() and backend_type = 'client backend'
        order by query_start nulls last limit $1`,
      [limit],
    ),
  );
  return {
    title: "active queries by duration",
    header: ["PID", "USER", "STATE", "WAITING", "SECONDS", "QUERY"],
    rows: rows.map((r) => [r.pid, r.usename, r.state, r.waiting, r.seconds, r.query]),
  };
}

async function biggestTables(reach: Reach, limit: number): Promise<View> {
  const { rows } = await onPrimary(reach, (c) =>
    c.query(
      `select schemaname || '.' || relname as table_name, pg_total_relation_size(relid)::bigint as total,
              pg_relation_size(relid)::bigint as heap, n_live_tup as live_rows, n_dead_tup as dead_rows
         from pg_stat_user_tables order by pg_total_relation_size(relid) desc limit $1`,
      [limit],
    ),
  );
  return {
    title: "biggest tables",
    header: ["TABLE", "TOTAL", "HEAP", "LIVE ROWS", "DEAD ROWS"],
    rows: rows.map((r) => [r.table_name, bytes(Number(r.total)), bytes(Number(r.heap)), r.live_rows, r.dead_rows]),
  };
}

/** TimescaleDB is optional: the view says so when the extension is not installed. */
async function timescaleChunks(reach: Reach, limit: number): Promise<View> {
  return onPrimary(reach, async (c) => {
    const installed = await c.query(`select extversion from pg_extension where extname = 'timescaledb'`);
    const title = "TimescaleDB chunks";
    if (!installed.rowCount) return { title, header: [], rows: [], note: "TimescaleDB extension not installed: no chunks to show" };
    const { rows } = await c.query(
      `select hypertable_name, count(*)::int as chunks, count(*) filter (where is_compressed)::int as compressed,
              min(range_start) as oldest, max(range_end) as newest
         from timescaledb_information.chunks group by hypertable_name order by chunks desc limit $1`,
      [limit],
    );
    return {
      title: `${title} (timescaledb ${installed.rows[0].extversion})`,
      header: ["HYPERTABLE", "CHUNKS", "COMPRESSED", "OLDEST", "NEWEST"],
      rows: rows.map((r) => [r.hypertable_name, r.chunks, r.compressed, String(r.oldest), String(r.newest)]),
    };
  });
}

async function replicationState(reach: Reach): Promise<View> {
  const { rows } = await onPrimary(reach, (c) =>
    c.query(
      `select s.slot_name, s.active, r.application_name, r.state, r.sync_state,
              pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint as replay_lag_bytes,
              pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint as retained_wal_bytes
         from pg_replication_slots s full join pg_stat_replication r on r.pid = s.active_pid`,
    ),
  );
  return {
    title: "replication state (on the primary)",
    header: ["SLOT", "ACTIVE", "STANDBY", "STATE", "SYNC", "REPLAY LAG", "RETAINED WAL"],
    rows: rows.map((r) => [
      r.slot_name ?? "-",
      r.active === null ? "-" : String(r.active),
      r.application_name ?? "-",
      r.state ?? "disconnected",
      r.sync_state ?? "-",
      r.replay_lag_bytes === null ? "-" : bytes(Number(r.replay_lag_bytes)),
      r.retained_wal_bytes === null ? "-" : bytes(Number(r.retained_wal_bytes)),
    ]),
    note: rows.length ? undefined : "no replication slot and no standby connected",
  };
}

async function redisState(reach: Reach): Promise<View> {
  return reach.redis(async (redis) => {
    const info = parseRedisInfo(await redis.info());
    const dbsize = await redis.dbsize();
    const queueLengths = await Promise.all(WORK_QUEUES.map((q) => redis.llen(`queue:${q}`)));
    return {
      title: "Redis",
      header: ["METRIC", "VALUE"],
      rows: [
        ["used_memory", info.used_memory_human ?? "?"],
        ["maxmemory", `${info.maxmemory_human ?? "?"} (${info.maxmemory_policy ?? "?"})`],
        ["connected_clients", info.connected_clients ?? "?"],
        ["dbsize", dbsize],
        ["aof_enabled", info.aof_enabled ?? "?"],
        ["rdb_last_bgsave_status", info.rdb_last_bgsave_status ?? "?"],
        ...WORK_QUEUES.map((q, i) => [`queue:${q}`, queueLengths[i]!]),
      ],
    };
  });
}

/**
 * Sizes come from PostgreSQL itself (works on every platform); free space is read from the
 * filesystem where the data dir is local (the sandbox).
 */
async function diskUse(reach: Reach): Promise<View> {
  const { outputs } = reach;
  const nodes = [outputs.database.primary, outputs.database.standby].filter((n): n is PgNode => n !== undefined);
  const rows = await Promise.all(
    nodes.map(async (node) => {
      try {
        const sizes = await reach.pg(node, (c) =>
          c.query(
            `select (select sum(pg_database_size(oid)) from pg_database)::bigint as databases,
                    (select coalesce(sum(size), 0) from pg_ls_waldir())::bigint as wal`,
          ),
        );
        const { databases, wal } = sizes.rows[0];
        return [node.name, node.dataDir, bytes(Number(databases)), bytes(Number(wal)), freeSpace(outputs, node.dataDir)];
      } catch (error) {
        return [node.name, node.dataDir, "?", "?", `unavailable: ${oneLine(error)}`];
      }
    }),
  );
  return { title: "disk use of each data dir", header: ["NODE", "DATA DIR", "DATABASES", "WAL", "FILESYSTEM FREE"], rows };
}

function freeSpace(outputs: StackOutputs, dataDir: string): string {
  if (outputs.platform.kind !== "sandbox") return `n/a on ${outputs.platform.kind}`;
  const fs = statfsSync(dataDir);
  const free = fs.bavail * fs.bsize;
  const total = fs.blocks * fs.bsize;
  return `${bytes(free)} of ${bytes(total)} (${Math.round((100 * free) / total)} %)`;
}
