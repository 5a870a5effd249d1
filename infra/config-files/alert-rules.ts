/**
 * The alert rules: every threshold the seeds name (S4, S5, S7, I6–I8, C8, T2), each with its
 * severity, what it means and the `tradeops` command to run. One generator for the sandbox and the
 * dev/prod/dr stacks; rendered with a YAML library, so no expression can break the file's quoting.
 *
 * A rule is `measure op threshold`: the threshold is a number of its own, so promtool tests and the
 * mutation test (test/unit/alert-rules.test.ts) can move it and see the rule's test fail.
 */
import { dump as renderYaml } from "js-yaml";

export type Severity = "info" | "warning" | "critical";

export interface AlertRule {
  alert: string;
  /** PromQL of the measured quantity, compared with `threshold`. */
  measure: string;
  op: ">" | "<";
  threshold: number;
  /** How long the breach must hold before the alert fires. @example "5m" */
  for: string;
  severity: Severity;
  /**
   * Rules that watch one quantity at two levels share a family; Alertmanager's inhibition lets the
   * critical one silence its warning (and a warning its info).
   */
  family: string;
  summary: string;
  description: string;
  /** What the operator runs first; `tradeops alerts` prints it beside the firing alert. */
  command: string;
  /** Feature ID the rule carries out. */
  feature: string;
}

export interface AlertRuleOptions {
  /**
   * S5 LowDatabaseConnections needs "connections still available"; the seed's
   * `postgres_connections_available` is not a postgres_exporter metric, so it is derived.
   * @default "max by (instance) (pg_settings_max_connections) - sum by (instance) (pg_stat_activity_count)"
   */
  dbConnectionsAvailableExpr?: string;
  /** The failover limit (`database.replication.maxLagBytes`): a standby further behind cannot take over. @default 16 MiB */
  replicationMaxLagBytes?: number;
  /** I7: a full backup older than this is stale (daily backups, plus the time one takes). @default 93600 (26 h) */
  backupMaxAgeSeconds?: number;
  /**
   * Caps every rule's `for` (the sandbox's test profile: an end-to-end test cannot wait 10 minutes).
   * @default unset (the seed's durations)
   * @example "10s"
   */
  maxFor?: string;
}

export const DEFAULT_REPLICATION_MAX_LAG_BYTES = 16 * 1024 * 1024;
export const DEFAULT_BACKUP_MAX_AGE_SECONDS = 26 * 3600;

/** The one alert that acts (I8 "stops trading"): Alertmanager routes it to the kill-switch webhook. */
export const KILL_SWITCH_ALERT = "DailyLossCritical";

/** 5xx answers over all answers (I8 "API error rate"). */
const API_ERROR_RATIO = "sum(rate(http_request_errors_total[5m])) / sum(rate(http_request_duration_seconds_count[5m]))";
const p95 = "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))";

export function alertRules(opts: AlertRuleOptions = {}): AlertRule[] {
  const available =
    opts.dbConnectionsAvailableExpr ??
    "max by (instance) (pg_settings_max_connections) - sum by (instance) (pg_stat_activity_count)";
  const rules: AlertRule[] = [
    // ---- The API (S4, S5, I8, T2)
    {
      alert: "HighAPILatency", measure: p95, op: ">", threshold: 1, for: "5m", severity: "warning", family: "api-latency", feature: "S5",
      summary: "API p95 latency is above 1 s",
      description: "Requests are slow (T2: > 1 s). Look at slow statements, pool sizes and the host's load.",
      command: "tradeops diagnose",
    },
    {
      alert: "APILatencyAboveTarget", measure: p95, op: ">", threshold: 0.5, for: "10m", severity: "info", family: "api-latency", feature: "S4",
      summary: "API p95 latency is above the 500 ms target",
      description: "The S4 target is p95 < 500 ms; sustained, this is where HighAPILatency starts.",
      command: "tradeops diagnose",
    },
    ...i8Levels(
      { measure: API_ERROR_RATIO, op: ">", for: "5m", family: "api-errors", description: "I8: check the connections (database, Redis, exchange) the API depends on.", command: "tradeops health" },
      { alert: "APIErrorRateHigh", threshold: 0.05, summary: "More than 5 % of API requests fail" },
      { alert: "APIErrorRateCritical", threshold: 0.1, summary: "More than 10 % of API requests fail" },
    ),
    {
      alert: "Unauthorized401Spike", measure: 'sum(rate(http_request_duration_seconds_count{status="401"}[5m])) * 60', op: ">", threshold: 10, for: "5m",
      severity: "warning", family: "api-auth", feature: "T2",
      summary: "More than 10 requests a minute are refused with 401",
      description: "T2: a rotated JWT secret, expired tokens, or someone guessing tokens.",
      command: "tradeops diagnose",
    },
    {
      alert: "APIMemoryHigh", measure: 'max by (instance) (process_resident_memory_bytes{job="ops-api"})', op: ">", threshold: 2 * 1024 ** 3, for: "5m",
      severity: "warning", family: "api-memory", feature: "S4",
      summary: "The API uses more than 2 GiB of memory",
      description: "S4 memory < 2 GB; Z7's container limit is 2 GiB, so the next step is an OOM kill (T2).",
      command: "tradeops diagnose",
    },
    // ---- Queues (S5, S7, C3)
    {
      alert: "HighQueueSize", measure: "max by (queue) (tradeops_queue_length)", op: ">", threshold: 1000, for: "10m", severity: "critical", family: "queue", feature: "S5",
      summary: "Work queue {{ $labels.queue }} holds more than 1000 waiting jobs",
      description: "S7: the workers of queue {{ $labels.queue }} do not keep up, or have stopped consuming (C6).",
      command: "tradeops diagnose",
    },
    // ---- PostgreSQL (S4, S5, I5–I7)
    {
      alert: "LowDatabaseConnections", measure: `(${available})`, op: "<", threshold: 5, for: "5m", severity: "critical", family: "db-connections", feature: "S5",
      summary: "Fewer than 5 PostgreSQL connections are still available",
      description: "S9 pool exhausted: find idle-in-transaction and long sessions before new ones are refused.",
      command: "tradeops diagnose",
    },
    {
      alert: "DatabaseConnectionsHigh",
      measure: "sum by (instance) (pg_stat_activity_count) / max by (instance) (pg_settings_max_connections)",
      op: ">", threshold: 0.8, for: "5m", severity: "warning", family: "db-connections", feature: "S4",
      summary: "More than 80 % of PostgreSQL connections are in use",
      description: "S4 DB connections < 80 %: pools are oversized or sessions leak.",
      command: "tradeops diagnose",
    },
    {
      alert: "ReplicationLagHigh", measure: "max by (instance) (pg_stat_replication_pg_wal_lsn_diff)", op: ">",
      threshold: opts.replicationMaxLagBytes ?? DEFAULT_REPLICATION_MAX_LAG_BYTES, for: "2m", severity: "critical", family: "replication", feature: "I5",
      summary: "The standby is further behind than a failover may lose",
      description: "I5: beyond the failover limit, `tradeops failover` refuses without --force; find why the standby does not replay.",
      command: "tradeops health",
    },
    {
      alert: "WALArchivingStalled", measure: "max by (instance) (pg_stat_archiver_last_archive_age)", op: ">", threshold: 900, for: "5m",
      severity: "critical", family: "wal-archiving", feature: "I7",
      summary: "No WAL segment archived for 15 minutes",
      description: "I7 continuous WAL: point-in-time restore cannot reach past the last archived segment (needs archive_timeout ≤ 15 min).",
      command: "tradeops health",
    },
    {
      alert: "BackupTooOld", measure: "time() - max(tradeops_backup_last_success_timestamp_seconds)", op: ">",
      threshold: opts.backupMaxAgeSeconds ?? DEFAULT_BACKUP_MAX_AGE_SECONDS, for: "10m", severity: "critical", family: "backup", feature: "I6",
      summary: "The last full backup is older than the backup policy allows",
      description: "I6/I7: PostgreSQL full backups are daily; the newest one is stale.",
      command: "tradeops backup",
    },
    // ---- Redis (S4)
    {
      alert: "RedisClientsHigh", measure: "max by (instance) (redis_connected_clients)", op: ">", threshold: 100, for: "5m", severity: "warning", family: "redis-clients", feature: "S4",
      summary: "Redis has more than 100 clients",
      description: "S4 Redis clients < 100: a client leaks connections.",
      command: "tradeops diagnose",
    },
    // ---- The host (S4, C8, T2)
    {
      alert: "HostCPUHigh", measure: '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', op: ">", threshold: 0.8, for: "10m",
      severity: "warning", family: "host-cpu", feature: "S4",
      summary: "CPU use is above 80 % on {{ $labels.instance }}",
      description: "S4 CPU < 80 %.",
      command: "tradeops diagnose",
    },
    {
      alert: "HostMemoryHigh", measure: "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
      op: ">", threshold: 0.7, for: "10m", severity: "warning", family: "host-memory", feature: "C8",
      summary: "Memory use is above 70 % on {{ $labels.instance }}",
      description: "C8 memory < 70 %.",
      command: "tradeops diagnose",
    },
    {
      alert: "DiskSpaceLow",
      measure: 'min by (instance, mountpoint) (node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs"})',
      op: "<", threshold: 0.2, for: "5m", severity: "warning", family: "disk", feature: "C8",
      summary: "Less than 20 % free on {{ $labels.mountpoint }} ({{ $labels.instance }})",
      description: "C8 disk > 20 % free; a full disk stops PostgreSQL and the backups (T2).",
      command: "tradeops diagnose",
    },
    // ---- Trading (I1, I2, I8, T2)
    ...i8Levels(
      { measure: "max(trading_drawdown_ratio)", op: ">", for: "1m", family: "drawdown", description: "I8: check the circuit breaker.", command: "tradeops health" },
      { alert: "DrawdownHigh", threshold: 0.1, summary: "Drawdown is above 10 %" },
      { alert: "DrawdownCritical", threshold: 0.15, summary: "Drawdown is above 15 %" },
    ),
    ...i8Levels(
      { measure: "max(trading_decision_latency_seconds)", op: ">", for: "5m", family: "decision-latency", description: "I8: check the system's resources.", command: "tradeops diagnose" },
      { alert: "DecisionLatencyHigh", threshold: 0.5, summary: "Trading decisions take longer than 500 ms" },
      { alert: "DecisionLatencyCritical", threshold: 1, summary: "Trading decisions take longer than 1 s" },
    ),
    // No `for`: a day's loss only grows back slowly, and I8 wants trading stopped at once.
    ...i8Levels(
      { measure: "max(trading_daily_loss_ratio)", op: ">", for: "0m", family: "daily-loss", description: "I8: at 5 % trading stops by itself.", command: "tradeops health" },
      { alert: "DailyLossWarning", threshold: 0.03, summary: "Today's loss is above 3 %" },
      {
        alert: KILL_SWITCH_ALERT,
        threshold: 0.05,
        summary: "Today's loss is above 5 %: the kill switch is engaged",
        description: "I8 stops trading: Alertmanager's kill-switch route activated the kill switch through the ops API.",
      },
    ),
    {
      alert: "CircuitBreakerOpen", measure: "max(circuit_breaker_state)", op: ">", threshold: 1, for: "1m", severity: "critical", family: "circuit-breaker", feature: "I2",
      summary: "The circuit breaker is open: orders are refused",
      description: "I2/T2: find why it tripped; it half-opens by itself after 30 s.",
      command: "tradeops health",
    },
    {
      alert: "ExchangeErrors", measure: "sum(rate(exchange_errors_total[5m])) * 60", op: ">", threshold: 5, for: "5m", severity: "warning", family: "exchange", feature: "T2",
      summary: "More than 5 exchange errors a minute",
      description: "T2 exchange connection failures: key, IP allow-list, permissions, testnet mismatch.",
      command: "tradeops health",
    },
    {
      alert: "ExchangeRateLimited", measure: "sum(rate(exchange_rate_limited_total[5m])) * 60", op: ">", threshold: 1, for: "5m", severity: "warning", family: "exchange-429", feature: "T2",
      summary: "The exchange answers 429 more than once a minute",
      description: "T2 rate limit: the bot ignores Retry-After or polls too often.",
      command: "tradeops diagnose",
    },
    {
      alert: "WebsocketDisconnects", measure: "sum(rate(websocket_disconnects_total[10m])) * 60", op: ">", threshold: 1, for: "10m", severity: "warning", family: "websocket", feature: "T2",
      summary: "The market-data websocket drops more than once a minute",
      description: "T2 websocket drops: ping every 30 s, proxy idle timeouts.",
      command: "tradeops diagnose",
    },
    // ---- The trading stops themselves (I1, I9)
    {
      alert: "KillSwitchActive", measure: "max(kill_switch_active)", op: ">", threshold: 0, for: "0m", severity: "critical", family: "kill-switch", feature: "I1",
      summary: "The kill switch is active: trading is stopped",
      description: "I1: deactivate with the confirmation code once the cause is understood.",
      command: "tradeops health",
    },
    {
      alert: "TradingPausedLong", measure: "max(trading_paused)", op: ">", threshold: 0, for: "30m", severity: "warning", family: "trading-paused", feature: "I9",
      summary: "Trading has been paused for more than 30 minutes",
      description: "I9: resume trading, or say why it stays paused.",
      command: "tradeops health",
    },
  ];
  return opts.maxFor ? rules.map((rule) => ({ ...rule, for: shorter(rule.for, opts.maxFor!) })) : rules;
}


type Level = Pick<AlertRule, "alert" | "threshold" | "summary"> & Partial<Pick<AlertRule, "description">>;

/** I8's table gives each quantity a warning and a critical level: one family, one rule per level. */
function i8Levels(common: Omit<AlertRule, "alert" | "threshold" | "severity" | "summary" | "feature">, warning: Level, critical: Level): AlertRule[] {
  return [
    { ...common, ...warning, severity: "warning", feature: "I8" },
    { ...common, ...critical, severity: "critical", feature: "I8" },
  ];
}

export const ruleExpr = (rule: Pick<AlertRule, "measure" | "op" | "threshold">) => `${rule.measure} ${rule.op} ${rule.threshold}`;

/** The rule file Prometheus loads (`rule_files`). */
export function renderAlertRules(opts: AlertRuleOptions = {}): string {
  const rules = alertRules(opts).map((rule) => ({
    alert: rule.alert,
    expr: ruleExpr(rule),
    for: rule.for,
    labels: { severity: rule.severity, family: rule.family, feature: rule.feature },
    annotations: { summary: rule.summary, description: rule.description, command: rule.command },
  }));
  const header = "# Generated by tradeops (infra/config-files/alert-rules.ts); edits are overwritten.\n";
  return header + renderYaml({ groups: [{ name: "tradeops", rules }] }, { lineWidth: -1, noRefs: true });
}

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };

function seconds(duration: string): number {
  const match = /^(\d+)([smh])$/.exec(duration);
  if (!match) throw new Error(`alert rules: duration ${JSON.stringify(duration)} is not <n>s|m|h`);
  return Number(match[1]) * SECONDS[match[2]!]!;
}

function shorter(a: string, b: string): string {
  return seconds(a) <= seconds(b) ? a : b;
}
