/**
 * Every alert rule under `promtool test rules`: for each one, input series that put its measure
 * just past the threshold (it fires once its `for` has run, not a minute earlier) and just short of
 * it (it never fires). Then the mutation test: the same test against the rendered rule with its
 * threshold moved either way must fail, so no rule's test passes whatever its threshold says.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump as renderYaml, load as parseYaml } from "js-yaml";
import { afterAll, describe, expect, it } from "vitest";
import { alertRules, renderAlertRules, type AlertRule } from "../../infra/config-files/alert-rules.ts";
import { COMMANDS } from "../../runbooks/registry.ts";

const workDir = mkdtempSync(join(tmpdir(), "tradeops-alert-rules-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const SAMPLES = 90; // minutes of input: the longest warmup + `for` + a margin

type InputSeries = { series: string; values: string };

interface Probe {
  /** Input series whose rule measure equals `value`, constant over time (after `warmup`). */
  series(value: number): InputSeries[];
  /** Labels of each alert the breach raises, beyond severity/family/feature. @default [{}] */
  alerts?: Array<Record<string, string>>;
  /** Minutes the measure needs from a cold start to reach `value` (a rate needs its window). @default 0 */
  warmup?: number;
  /** Minutes during which the measure is surely on the safe side, before it may breach. @default warmup */
  safeWarmup?: number;
  /** The measure just past the threshold. @default threshold ± 2 % */
  breach?: number;
  /** The measure just short of it. @default threshold ∓ 2 % */
  safe?: number;
}

const INSTANCE = "host-1:9100";
const labelText = (labels: Record<string, string>) =>
  `{${Object.entries(labels).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(", ")}}`;
const gauge = (name: string, labels: Record<string, string> = {}) => (value: number): InputSeries[] => [
  { series: `${name}${labelText(labels)}`, values: `${value}x${SAMPLES}` },
];
/** A counter from 0 growing by `perMinute` each minute. */
const counter = (series: string, perMinute: number): InputSeries => ({ series, values: `0+${perMinute}x${SAMPLES}` });

/** p95 = value: every request lands in one bucket whose upper bound puts the 95th percentile there. */
const latencyHistogram = (value: number): InputSeries[] => [
  counter(`http_request_duration_seconds_bucket{le="${value / 0.95}"}`, 1000),
  counter('http_request_duration_seconds_bucket{le="+Inf"}', 1000),
];
const queues = ["data-collection", "data-analysis", "trade-execution", "notification"];
const db = { instance: "db-1:9187" };
const dbConnections = (inUse: number): InputSeries[] => [
  { series: `pg_settings_max_connections${labelText(db)}`, values: `100x${SAMPLES}` },
  { series: `pg_stat_activity_count${labelText({ ...db, datname: "trading", state: "active" })}`, values: `${inUse}x${SAMPLES}` },
];
const perMinute = (name: string, labels: Record<string, string> = {}) => (value: number) => [counter(`${name}${labelText(labels)}`, value)];
const RATE_WINDOW = 5;

const PROBES: Record<string, Probe> = {
  HighAPILatency: { series: latencyHistogram, warmup: 1 },
  APILatencyAboveTarget: { series: latencyHistogram, warmup: 1 },
  APIErrorRateHigh: { series: (ratio) => [counter("http_request_errors_total", ratio * 1000), counter("http_request_duration_seconds_count", 1000)], warmup: 1 },
  APIErrorRateCritical: { series: (ratio) => [counter("http_request_errors_total", ratio * 1000), counter("http_request_duration_seconds_count", 1000)], warmup: 1 },
  Unauthorized401Spike: { series: perMinute("http_request_duration_seconds_count", { status: "401", route: "/api/positions" }), warmup: RATE_WINDOW },
  APIMemoryHigh: { series: gauge("process_resident_memory_bytes", { job: "ops-api", instance: "api-1:8080" }), alerts: [{ instance: "api-1:8080" }] },
  HighQueueSize: {
    series: (length) => queues.flatMap((queue) => gauge("tradeops_queue_length", { queue, instance: "api-1:8080" })(length)),
    alerts: queues.map((queue) => ({ queue })),
    breach: 1001,
    safe: 1000,
  },
  LowDatabaseConnections: { series: (available) => dbConnections(100 - available), alerts: [db], breach: 4, safe: 5 },
  DatabaseConnectionsHigh: { series: (ratio) => dbConnections(ratio * 100), alerts: [db], breach: 0.81, safe: 0.8 },
  ReplicationLagHigh: { series: gauge("pg_stat_replication_pg_wal_lsn_diff", { ...db, application_name: "pg-b" }), alerts: [db] },
  WALArchivingStalled: { series: gauge("pg_stat_archiver_last_archive_age", db), alerts: [db] },
  // time() is the evaluation time in promtool: a timestamp growing as fast as the clock keeps the age at `value`.
  BackupTooOld: { series: (age) => [{ series: "tradeops_backup_last_success_timestamp_seconds", values: `${-age}+60x${SAMPLES}` }] },
  RedisClientsHigh: { series: gauge("redis_connected_clients", { instance: "redis-1:9121" }), alerts: [{ instance: "redis-1:9121" }], breach: 101, safe: 100 },
  HostCPUHigh: {
    series: (busy) => [0, 1].map((cpu) => counter(`node_cpu_seconds_total{instance="${INSTANCE}", cpu="${cpu}", mode="idle"}`, (1 - busy) * 60)),
    alerts: [{ instance: INSTANCE }],
    warmup: RATE_WINDOW,
    // A rate over a window not yet full reads low, so idle looks low and the CPU busy: no quiet minutes to count on.
    safeWarmup: 0,
  },
  HostMemoryHigh: {
    series: (used) => [
      ...gauge("node_memory_MemTotal_bytes", { instance: INSTANCE })(8 * 1024 ** 3),
      ...gauge("node_memory_MemAvailable_bytes", { instance: INSTANCE })(8 * 1024 ** 3 * (1 - used)),
    ],
    alerts: [{ instance: INSTANCE }],
  },
  DiskSpaceLow: {
    series: (free) => {
      const fs = { instance: INSTANCE, mountpoint: "/var/lib/postgresql", fstype: "ext4", device: "/dev/sdb1" };
      return [...gauge("node_filesystem_size_bytes", fs)(100e9), ...gauge("node_filesystem_avail_bytes", fs)(free * 100e9)];
    },
    alerts: [{ instance: INSTANCE, mountpoint: "/var/lib/postgresql" }],
  },
  DrawdownHigh: { series: gauge("trading_drawdown_ratio") },
  DrawdownCritical: { series: gauge("trading_drawdown_ratio") },
  DecisionLatencyHigh: { series: gauge("trading_decision_latency_seconds") },
  DecisionLatencyCritical: { series: gauge("trading_decision_latency_seconds") },
  DailyLossWarning: { series: gauge("trading_daily_loss_ratio") },
  DailyLossCritical: { series: gauge("trading_daily_loss_ratio") },
  CircuitBreakerOpen: { series: gauge("circuit_breaker_state"), breach: 2, safe: 1 }, // 0 closed, 1 half-open, 2 open
  ExchangeErrors: { series: perMinute("exchange_errors_total", { exchange: "binance" }), warmup: RATE_WINDOW },
  ExchangeRateLimited: { series: perMinute("exchange_rate_limited_total", { exchange: "binance" }), warmup: RATE_WINDOW },
  WebsocketDisconnects: { series: perMinute("websocket_disconnects_total", { stream: "klines" }), warmup: 10 },
  KillSwitchActive: { series: gauge("kill_switch_active"), breach: 1, safe: 0 },
  TradingPausedLong: { series: gauge("trading_paused"), breach: 1, safe: 0 },
};

const minutes = (duration: string) => {
  const [, n, unit] = /^(\d+)([smh])$/.exec(duration)!;
  return (Number(n) * { s: 1 / 60, m: 1, h: 60 }[unit as "s" | "m" | "h"]);
};
const expand = (template: string, labels: Record<string, string>) =>
  template.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, key: string) => labels[key] ?? "");

function levels(rule: AlertRule, probe: Probe): { breach: number; safe: number } {
  const step = Math.abs(rule.threshold) * 0.02;
  const past = rule.op === ">" ? 1 : -1;
  return { breach: probe.breach ?? rule.threshold + past * step, safe: probe.safe ?? rule.threshold - past * step };
}

/** The promtool unit test of one rule, against the rule file at `rulesFile`. */
function promtoolTest(rule: AlertRule, rulesFile: string): string {
  const probe = PROBES[rule.alert]!;
  const { breach, safe } = levels(rule, probe);
  const warmup = probe.warmup ?? 0;
  const forMinutes = minutes(rule.for);
  const firing = (probe.alerts ?? [{}]).map((labels) => {
    const all = { ...labels, severity: rule.severity, family: rule.family, feature: rule.feature };
    return {
      exp_labels: all,
      exp_annotations: { summary: expand(rule.summary, all), description: expand(rule.description, all), command: rule.command },
    };
  });
  const notYet = forMinutes > 0 ? [{ eval_time: `${forMinutes + (probe.safeWarmup ?? warmup) - 1}m`, alertname: rule.alert, exp_alerts: [] }] : [];
  const tests = [
    {
      name: `${rule.alert}: breached`,
      interval: "1m",
      input_series: probe.series(breach),
      alert_rule_test: [...notYet, { eval_time: `${forMinutes + warmup}m`, alertname: rule.alert, exp_alerts: firing }],
    },
    {
      name: `${rule.alert}: just short of the threshold`,
      interval: "1m",
      input_series: probe.series(safe),
      alert_rule_test: [{ eval_time: `${SAMPLES - 1}m`, alertname: rule.alert, exp_alerts: [] }],
    },
  ];
  return renderYaml({ rule_files: [rulesFile], evaluation_interval: "1m", tests }, { lineWidth: -1 });
}

function promtool(...args: string[]): { code: number | null; output: string } {
  const result = spawnSync("promtool", args, { encoding: "utf8", timeout: 60_000 });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

function write(name: string, text: string): string {
  const file = join(workDir, name);
  writeFileSync(file, text);
  return file;
}

type RuleFile = { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };

/** The rendered rule file with one rule's threshold replaced in its expression. */
function withThreshold(rendered: string, alert: string, threshold: number): string {
  const parsed = parseYaml(rendered) as RuleFile;
  const rule = parsed.groups[0]!.rules.find((candidate) => candidate.alert === alert)!;
  const mutated = rule.expr.replace(/ ([<>]) -?[\d.e+-]+$/, ` $1 ${threshold}`);
  expect(mutated).not.toBe(rule.expr);
  rule.expr = mutated;
  return renderYaml(parsed, { lineWidth: -1 });
}

const rules = alertRules();
const rendered = renderAlertRules();
const rulesFile = write("rules.yml", rendered);

describe("alert rules (S4, S5, S7, I6–I8, C8, T2)", () => {
  it("S5: promtool check rules accepts every rule, and each has severity, summary, description and a tradeops command", () => {
    const result = promtool("check", "rules", rulesFile);
    expect(result.output).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
    const commands = COMMANDS.map((command) => `tradeops ${command.name}`);
    for (const rule of rules) {
      expect(rule.summary && rule.description, rule.alert).toBeTruthy();
      expect(commands, `${rule.alert}: ${rule.command}`).toContain(rule.command);
    }
    const parsed = parseYaml(rendered) as RuleFile;
    expect(parsed.groups[0]!.rules.map((rule) => rule.alert)).toEqual(rules.map((rule) => rule.alert));
  });

  it("S4, S5, I8, C8: every seed threshold is a rule with the seed's value, duration and severity", () => {
    const byName = Object.fromEntries(rules.map((rule) => [rule.alert, rule]));
    const seed: Array<[string, AlertRule["op"], number, string, AlertRule["severity"]]> = [
      ["HighAPILatency", ">", 1, "5m", "warning"],
      ["APILatencyAboveTarget", ">", 0.5, "10m", "info"],
      ["HighQueueSize", ">", 1000, "10m", "critical"],
      ["LowDatabaseConnections", "<", 5, "5m", "critical"],
      ["DatabaseConnectionsHigh", ">", 0.8, "5m", "warning"],
      ["RedisClientsHigh", ">", 100, "5m", "warning"],
      ["HostCPUHigh", ">", 0.8, "10m", "warning"],
      ["APIMemoryHigh", ">", 2 * 1024 ** 3, "5m", "warning"],
      ["HostMemoryHigh", ">", 0.7, "10m", "warning"],
      ["DiskSpaceLow", "<", 0.2, "5m", "warning"],
      ["DrawdownHigh", ">", 0.1, "1m", "warning"],
      ["DrawdownCritical", ">", 0.15, "1m", "critical"],
      ["APIErrorRateHigh", ">", 0.05, "5m", "warning"],
      ["APIErrorRateCritical", ">", 0.1, "5m", "critical"],
      ["DecisionLatencyHigh", ">", 0.5, "5m", "warning"],
      ["DecisionLatencyCritical", ">", 1, "5m", "critical"],
      ["DailyLossWarning", ">", 0.03, "0m", "warning"],
      ["DailyLossCritical", ">", 0.05, "0m", "critical"],
    ];
    for (const [alert, op, threshold, duration, severity] of seed) {
      expect(byName[alert], alert).toMatchObject({ op, threshold, for: duration, severity });
    }
    expect(alertRules({ replicationMaxLagBytes: 1234 }).find((rule) => rule.alert === "ReplicationLagHigh")!.threshold).toBe(1234);
    expect(alertRules({ maxFor: "10s" }).every((rule) => minutes(rule.for) <= 10 / 60)).toBe(true);
  });

  it("every rule has a promtool probe, and every probe a rule", () => {
    expect(Object.keys(PROBES).sort()).toEqual(rules.map((rule) => rule.alert).sort());
  });

  it("S5: promtool test rules: each rule fires at its threshold after its `for`, not a minute before, and never just short of it", () => {
    const files = rules.map((rule) => write(`${rule.alert}.test.yml`, promtoolTest(rule, rulesFile)));
    const result = promtool("test", "rules", ...files);
    expect(result.output).not.toMatch(/FAILED/);
    expect(result.code).toBe(0);
  });

  it("S5: mutation test: each rule's promtool test fails when its threshold moves past the breach, or past the safe level", () => {
    const mutants = rules.flatMap((rule) => {
      const { breach, safe } = levels(rule, PROBES[rule.alert]!);
      const margin = (breach - safe) / 2;
      return [breach + margin, safe - margin].map((threshold, i) => {
        const mutantRules = write(`${rule.alert}-${i}.rules.yml`, withThreshold(rendered, rule.alert, threshold));
        return { name: `${rule.alert} with threshold ${threshold}`, file: write(`${rule.alert}-${i}.test.yml`, promtoolTest(rule, mutantRules)) };
      });
    });
    // One promtool run for all of them: stdout names each file, followed by SUCCESS only when its tests passed.
    const result = spawnSync("promtool", ["test", "rules", ...mutants.map((mutant) => mutant.file)], { encoding: "utf8", timeout: 120_000 });
    const passed = new Set(result.stdout.split("Unit Testing:").filter((block) => /\n\s*SUCCESS/.test(block)).map((block) => block.trim().split("\n")[0]!.trim()));
    for (const mutant of mutants) expect(result.stdout).toContain(mutant.file);
    expect(mutants.filter((mutant) => passed.has(mutant.file)).map((mutant) => mutant.name)).toEqual([]);
  });
});
