/**
 * PostgreSQL scenarios (T2, S6, S9, S13): connection errors and pool exhaustion, slow statements,
 * cache and index use, replication, order rejections, stale backups.
 */
import { checkBackups } from "../backups-check.ts";
import { oneLine } from "../engine/errors.ts";
import { checkPrimary, checkStandby, checkTraffic } from "../probes.ts";
import type pg from "pg";
import { BACKUPS_CHECK_TIMEOUT_MS, DOCTOR_APPLICATION_NAME, type DoctorCheck, type Finding, type Reach, fail, findingOfError, notAvailable, ok, warn } from "./check.ts";

const IDLE_IN_TRANSACTION_S = 60;

/** `read` in a session on the primary, then `judge` what it read; a session that cannot be had is the finding (refused, exhausted, hung). */
async function onPrimary<T>(reach: Reach, fix: string, read: (client: pg.Client) => Promise<T>, judge: (value: T) => Finding): Promise<Finding> {
  let value: T;
  try {
    value = await reach.pg(reach.outputs.database.primary, read);
  } catch (error) {
    return findingOfError(error, "the primary", fix);
  }
  return judge(value);
}

/** T2, S9 "DB pool exhausted": connections against max_connections, who holds them, idle in transaction. */
export const dbConnections: DoctorCheck = {
  name: "db-connections",
  features: ["T2", "S6", "S9"],
  run: (reach) =>
    onPrimary(
      reach,
      "`tradeops health`; when it is 'too many clients': `tradeops maintenance terminate --idle-in-transaction-older-than 60s --yes` from a superuser slot",
      async (c) => {
        const { rows } = await c.query(
          `select (select count(*) from pg_stat_activity where backend_type = 'client backend')::int as used,
                  current_setting('max_connections')::int as max,
                  current_setting('superuser_reserved_connections')::int as reserved,
                  (select count(*) from pg_stat_activity where state = 'idle')::int as idle,
                  (select count(*) from pg_stat_activity where state = 'idle in transaction'
                      and now() - state_change > make_interval(secs => $1))::int as stuck,
                  (select string_agg(holder, ', ') from (
                     select format('%s %s', coalesce(nullif(application_name, ''), usename, '?'), count(*)) as holder
                       from pg_stat_activity where backend_type = 'client backend' and application_name <> $2
                      group by coalesce(nullif(application_name, ''), usename, '?') order by count(*) desc limit 3) top) as holders`,
          [IDLE_IN_TRANSACTION_S, DOCTOR_APPLICATION_NAME],
        );
        return rows[0] as { used: number; max: number; reserved: number; idle: number; stuck: number; holders: string | null };
      },
      (row) => {
        const usable = row.max - row.reserved;
        const saw = `${row.used} of ${usable} connections in use (max_connections ${row.max}, ${row.reserved} reserved); idle ${row.idle}, idle in transaction > ${IDLE_IN_TRANSACTION_S} s ${row.stuck}; top holders: ${row.holders ?? "-"}`;
        const fix = `\`tradeops maintenance terminate --idle-in-transaction-older-than ${IDLE_IN_TRANSACTION_S}s --yes\`; shrink the application pools (the API's is 10) or raise max_connections`;
        if (row.used >= 0.9 * usable) return fail(saw, "connection pool exhausted: new sessions get 'too many clients already'", fix);
        if (row.used >= 0.8 * usable) return warn(saw, "connections close to max_connections", fix);
        if (row.stuck > 0) return warn(saw, "sessions idle in a transaction hold locks and connections", fix);
        return ok(saw);
      },
    ),
};

const SLOW_STATEMENT_MS = 1000; // S13

/** T2 slow API, S13: statements whose mean time exceeds 1 s, from pg_stat_statements. */
export const slowStatements: DoctorCheck = {
  name: "slow-statements",
  features: ["T2", "S13"],
  run: (reach) =>
    onPrimary(
      reach,
      "`tradeops doctor --only db-connections`",
      async (c) => {
        const installed = await c.query(`select 1 from pg_extension where extname = 'pg_stat_statements'`);
        if (!installed.rowCount) return undefined;
        const { rows } = await c.query(
          `select regexp_replace(left(query, 200), '\\s+', ' ', 'g') as query, calls::int, round(mean_exec_time)::int as mean_ms, round(max_exec_time)::int as max_ms
             from pg_stat_statements
            where dbid = (select oid from pg_database where datname = current_database()) and mean_exec_time > $1
            order by mean_exec_time desc limit 3`,
          [SLOW_STATEMENT_MS],
        );
        return rows as { query: string; calls: number; mean_ms: number; max_ms: number }[];
      },
      (found) => {
        if (!found) return notAvailable("pg_stat_statements is not installed in the database (shared_preload_libraries, then CREATE EXTENSION)");
        if (!found.length) return ok(`no statement averages more than ${SLOW_STATEMENT_MS / 1000} s`);
        const saw = found.map((s) => `${s.mean_ms} ms mean × ${s.calls}: ${s.query}`).join(" | ");
        return fail(saw, "statements slower than 1 s: a missing index, a lock wait or a table scan", "`tradeops maintenance slow-queries`; add the index with `tradeops maintenance create-index --concurrently`; then `select pg_stat_statements_reset()`");
      },
    ),
};

/** T2 slow API: the buffer cache hit rate and tables read by sequential scans. */
export const cacheHits: DoctorCheck = {
  name: "cache-hits",
  features: ["T2", "S6"],
  run: (reach) =>
    onPrimary(
      reach,
      "`tradeops doctor --only db-connections`",
      async (c) => {
        const { rows } = await c.query(
          `select (select blks_hit::float8 / nullif(blks_hit + blks_read, 0) from pg_stat_database where datname = current_database()) as hit_rate,
                  (select string_agg(relname, ', ') from (
                     select relname from pg_stat_user_tables
                      where seq_scan > 10 * coalesce(idx_scan, 0) and seq_scan > 100 and pg_relation_size(relid) > 10 * 1024 * 1024
                      order by seq_tup_read desc limit 3) t) as scanned`,
        );
        return rows[0] as { hit_rate: number | null; scanned: string | null };
      },
      (row) => {
        const rate = row.hit_rate === null ? "n/a" : `${(100 * row.hit_rate).toFixed(2)} %`;
        const saw = `buffer cache hit rate ${rate}; tables over 10 MB read mostly by sequential scans: ${row.scanned ?? "none"}`;
        if (row.scanned) return warn(saw, "queries scan whole tables: an index is missing", "`tradeops maintenance slow-queries`, then `tradeops maintenance create-index --concurrently`");
        if (row.hit_rate !== null && row.hit_rate < 0.95) return warn(saw, "the working set does not fit in shared_buffers", "raise shared_buffers or the node's memory");
        return ok(saw);
      },
    ),
};

/** T2 "DB connection errors": the endpoint applications use must reach a writable primary. */
export const traffic: DoctorCheck = {
  name: "traffic",
  features: ["T2", "S9", "I5"],
  async run(reach) {
    try {
      return ok(await checkTraffic(reach.outputs, { signal: reach.signal, timeoutMs: reach.timeoutMs }));
    } catch (error) {
      const finding = findingOfError(error, "the traffic endpoint", "`tradeops health`; start the proxy (`tradeops sandbox up` on the sandbox); after a failover, `tradeops failover` re-routes it");
      return /read-only|recovery/.test(finding.saw) ? { ...finding, cause: "the traffic endpoint routes to a standby: every write of the applications fails" } : finding;
    }
  },
};

/** T2 DB errors, I6: the standby streams within the lag limit and the primary has its sync standby. */
export const replication: DoctorCheck = {
  name: "replication",
  features: ["T2", "I6", "S3"],
  async run(reach) {
    const { outputs } = reach;
    if (!outputs.database.standby) return notAvailable("the stack has no standby");
    const options = { signal: reach.signal, timeoutMs: reach.timeoutMs };
    const [standby, primary] = await Promise.allSettled([checkStandby(outputs, options), checkPrimary(outputs, options)]);
    if (standby.status === "fulfilled" && primary.status === "fulfilled") return ok(standby.value);
    const problems = [standby, primary].filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => oneLine(r.reason));
    const sync = outputs.database.replication.mode === "sync";
    return fail(
      problems.join("; "),
      `replication is broken: the standby ${outputs.database.standby.name} is down, not streaming or too far behind${sync ? "; with synchronous replication commits on the primary wait for it" : ""}`,
      "start the standby (`tradeops sandbox up` on the sandbox); a standby that cannot catch up is rebuilt by `tradeops failback`; `tradeops diagnose` shows slots and lag",
    );
  },
};

/** S9: REJECTED/FAILED orders of the last day by reason, where the bot keeps a `trades` table. */
export const orderRejections: DoctorCheck = {
  name: "order-rejections",
  features: ["S9", "T2"],
  run: (reach) =>
    onPrimary(
      reach,
      "`tradeops doctor --only db-connections`",
      async (c) => {
        const table = await c.query(
          `select count(*) filter (where column_name in ('status', 'failure_reason', 'created_at'))::int as found
             from information_schema.columns where table_schema = 'public' and table_name = 'trades'`,
        );
        if (table.rows[0].found < 3) return undefined;
        const { rows } = await c.query(
          `select coalesce(failure_reason, '?') as reason, count(*)::int as n from trades
            where status in ('REJECTED', 'FAILED') and created_at > now() - interval '1 day' group by 1 order by 2 desc limit 5`,
        );
        return rows as { reason: string; n: number }[];
      },
      (rows) => {
        if (!rows) return notAvailable("no trades table (status, failure_reason, created_at) in the database: the bot keeps no order log here");
        if (!rows.length) return ok("no REJECTED or FAILED order in the last 24 h");
        return warn(
          `rejected/failed orders in 24 h by reason: ${rows.map((r) => `${r.reason} ${r.n}`).join(", ")}`,
          "the seed's reasons: broker token expired, balance, market hours (09:00–15:30 KST), price band, order limit, daily loss",
          "token expiry: renew the broker token; market hours: nothing to fix; balance/limits: adjust the strategy",
        );
      },
    ),
};

/**
 * Backups stale (I6): `tradeops backups check`'s items. A kind with no backup yet, and archived WAL
 * older than the policy (an idle database archives nothing without archive_timeout), warn; a
 * backup that exists but is older than the policy fails.
 */
export const backupsFresh: DoctorCheck = {
  name: "backups",
  features: ["S8", "I6", "I7"],
  // pgbackrest info and the bucket's listings: 0.3–1.5 s on the sandbox, more after many backups.
  timeoutMs: BACKUPS_CHECK_TIMEOUT_MS,
  async run(reach) {
    try {
      const items = await checkBackups(reach.outputs, reach.signal);
      const saw = items.map((item) => `${item.item} ${item.ageSeconds === null ? "none" : `${item.ageSeconds} s old`}`).join("; ");
      const stale = items.filter((item) => !item.ok);
      const failing = stale.filter((item) => item.newest !== null && !/WAL/.test(item.item));
      if (failing.length) return fail(saw, `older than the policy: ${failing.map((item) => item.item).join(", ")}`, "`tradeops backups check`; run the backup (`tradeops backup`, `--redis`) and check its schedule");
      if (stale.length) return warn(saw, stale.map((item) => `${item.item}: ${item.detail}`).join("; "), "`tradeops backups check`");
      return ok(saw);
    } catch (error) {
      return findingOfError(error, "the backup repository", "`tradeops backups list`; `tradeops health`");
    }
  },
};
