/**
 * The Grafana dashboards the seeds name, as code (I8: trading P&L/positions, system health, model
 * performance; S4: PostgreSQL and Redis), rendered to Grafana's dashboard JSON and provisioned from
 * files. Every query names a metric the sandbox's Prometheus holds (test/integration/dashboards.test.ts).
 * Dashboards that read an exporter open with its `up`, so a dead exporter shows as "exporter down"
 * rather than as empty graphs.
 */
import { dump as renderYaml } from "js-yaml";

/** The datasource uid the provisioning file gives Prometheus (grafana.ts) and every panel names. */
export const DASHBOARD_DATASOURCE_UID = "prometheus";
/** Where the dashboard JSON files are mounted; the provider file points there. */
export const DASHBOARDS_DIR = "/etc/grafana/dashboards";

interface Target {
  expr: string;
  legend?: string;
}

interface PanelSpec {
  title: string;
  type: "timeseries" | "stat";
  targets: Target[];
  /** Grafana unit id. @example "percentunit", "s", "bytes" */
  unit?: string;
  /** Value → text (and colour) for state gauges. */
  mappings?: Array<{ value: number; text: string; color: string }>;
  /** Ascending steps where the colour turns: the alert thresholds. */
  thresholds?: Array<{ value: number; color: string }>;
  /** Grid width (of 24). @default 8 for stats, 12 for time series */
  width?: number;
}

export interface DashboardSpec {
  uid: string;
  title: string;
  feature: string;
  panels: PanelSpec[];
}

const percent = "percentunit";
const exporterUp = (job: string, what: string): PanelSpec => ({
  title: `${what} exporter`,
  type: "stat",
  targets: [{ expr: `max(up{job="${job}"}) or vector(0)` }],
  mappings: [
    { value: 0, text: "exporter down: panels below are blind", color: "red" },
    { value: 1, text: "up", color: "green" },
  ],
  width: 24,
});
const OPS_API_UP = exporterUp("ops-api", "Ops API");

export const DASHBOARDS: DashboardSpec[] = [
  {
    uid: "tradeops-trading",
    title: "Trading: P&L, positions, drawdown",
    feature: "I8",
    panels: [
      OPS_API_UP,
      { title: "Today's loss (5 % stops trading)", type: "stat", targets: [{ expr: "max(trading_daily_loss_ratio)" }], unit: percent, thresholds: [{ value: 0.03, color: "orange" }, { value: 0.05, color: "red" }] },
      { title: "Drawdown", type: "stat", targets: [{ expr: "max(trading_drawdown_ratio)" }], unit: percent, thresholds: [{ value: 0.1, color: "orange" }, { value: 0.15, color: "red" }] },
      { title: "Open positions", type: "stat", targets: [{ expr: "sum(open_positions)" }] },
      {
        title: "Kill switch",
        type: "stat",
        targets: [{ expr: "max(kill_switch_active)" }],
        mappings: [{ value: 0, text: "off", color: "green" }, { value: 1, text: "ACTIVE: trading stopped", color: "red" }],
      },
      {
        title: "Circuit breaker",
        type: "stat",
        targets: [{ expr: "max(circuit_breaker_state)" }],
        mappings: [{ value: 0, text: "closed", color: "green" }, { value: 1, text: "half-open", color: "orange" }, { value: 2, text: "OPEN", color: "red" }],
      },
      { title: "Trading paused", type: "stat", targets: [{ expr: "max(trading_paused)" }], mappings: [{ value: 0, text: "trading", color: "green" }, { value: 1, text: "paused", color: "orange" }] },
      { title: "Today's loss and drawdown", type: "timeseries", targets: [{ expr: "max(trading_daily_loss_ratio)", legend: "daily loss" }, { expr: "max(trading_drawdown_ratio)", legend: "drawdown" }], unit: percent, width: 24 },
    ],
  },
  {
    uid: "tradeops-system-health",
    title: "System health",
    feature: "I8",
    panels: [
      exporterUp("node", "Host"),
      { title: "CPU busy", type: "timeseries", targets: [{ expr: '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', legend: "{{instance}}" }], unit: percent, thresholds: [{ value: 0.8, color: "red" }] },
      { title: "Memory used", type: "timeseries", targets: [{ expr: "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", legend: "{{instance}}" }], unit: percent, thresholds: [{ value: 0.7, color: "red" }] },
      { title: "Disk free", type: "timeseries", targets: [{ expr: 'min by (instance, mountpoint) (node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs"})', legend: "{{mountpoint}}" }], unit: percent },
      { title: "Network", type: "timeseries", targets: [{ expr: 'sum by (instance) (rate(node_network_receive_bytes_total{device!="lo"}[5m]))', legend: "in" }, { expr: 'sum by (instance) (rate(node_network_transmit_bytes_total{device!="lo"}[5m]))', legend: "out" }], unit: "Bps" },
      { title: "API p95 latency", type: "timeseries", targets: [{ expr: "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))", legend: "p95" }], unit: "s", thresholds: [{ value: 0.5, color: "orange" }, { value: 1, color: "red" }] },
      { title: "API error rate", type: "timeseries", targets: [{ expr: "sum(rate(http_request_errors_total[5m])) / sum(rate(http_request_duration_seconds_count[5m]))", legend: "5xx" }], unit: percent, thresholds: [{ value: 0.05, color: "orange" }, { value: 0.1, color: "red" }] },
      { title: "API memory", type: "timeseries", targets: [{ expr: 'process_resident_memory_bytes{job="ops-api"}', legend: "{{instance}}" }], unit: "bytes" },
    ],
  },
  {
    uid: "tradeops-model-performance",
    title: "Model performance and work queues",
    feature: "I8",
    panels: [
      OPS_API_UP,
      { title: "Decision latency", type: "timeseries", targets: [{ expr: "max(trading_decision_latency_seconds)", legend: "decision" }], unit: "s", thresholds: [{ value: 0.5, color: "orange" }, { value: 1, color: "red" }] },
      { title: "Queue depth (C3, S7)", type: "timeseries", targets: [{ expr: "max by (queue) (tradeops_queue_length)", legend: "{{queue}}" }], thresholds: [{ value: 1000, color: "red" }] },
      {
        title: "Exchange errors, 429s, websocket drops per minute",
        type: "timeseries",
        targets: [
          { expr: "sum(rate(exchange_errors_total[5m])) * 60", legend: "errors" },
          { expr: "sum(rate(exchange_rate_limited_total[5m])) * 60", legend: "429" },
          { expr: "sum(rate(websocket_disconnects_total[10m])) * 60", legend: "websocket drops" },
        ],
      },
    ],
  },
  {
    uid: "tradeops-postgres-redis",
    title: "PostgreSQL and Redis",
    feature: "S4",
    panels: [
      exporterUp("postgres", "PostgreSQL"),
      exporterUp("redis", "Redis"),
      { title: "Connections in use", type: "timeseries", targets: [{ expr: "sum by (instance) (pg_stat_activity_count) / max by (instance) (pg_settings_max_connections)", legend: "{{instance}}" }], unit: percent, thresholds: [{ value: 0.8, color: "red" }] },
      { title: "Replication lag", type: "timeseries", targets: [{ expr: "max by (application_name) (pg_stat_replication_pg_wal_lsn_diff)", legend: "{{application_name}}" }], unit: "bytes" },
      { title: "Since the last archived WAL", type: "timeseries", targets: [{ expr: "max(pg_stat_archiver_last_archive_age)", legend: "age" }], unit: "s", thresholds: [{ value: 900, color: "red" }] },
      { title: "Redis clients", type: "timeseries", targets: [{ expr: "max(redis_connected_clients)", legend: "clients" }], thresholds: [{ value: 100, color: "red" }] },
      { title: "Redis memory", type: "timeseries", targets: [{ expr: "max(redis_memory_used_bytes)", legend: "used" }, { expr: "max(redis_memory_max_bytes)", legend: "maxmemory" }], unit: "bytes" },
    ],
  },
];

/** One dashboard as Grafana's JSON model (the file a dashboard provider loads). */
export function renderDashboard(spec: DashboardSpec): string {
  let x = 0;
  let y = 0;
  const panels = spec.panels.map((panel, i) => {
    const w = panel.width ?? (panel.type === "stat" ? 8 : 12);
    const h = panel.type === "stat" ? 4 : 8;
    if (x + w > 24) {
      x = 0;
      y += 8;
    }
    const gridPos = { x, y, w, h };
    x += w;
    return {
      id: i + 1,
      type: panel.type,
      title: panel.title,
      gridPos,
      datasource: { type: "prometheus", uid: DASHBOARD_DATASOURCE_UID },
      targets: panel.targets.map((target, t) => ({
        refId: String.fromCharCode(65 + t),
        datasource: { type: "prometheus", uid: DASHBOARD_DATASOURCE_UID },
        expr: target.expr,
        ...(target.legend ? { legendFormat: target.legend } : {}),
      })),
      fieldConfig: {
        defaults: {
          ...(panel.unit ? { unit: panel.unit } : {}),
          mappings: (panel.mappings ?? []).map((mapping) => ({ type: "value", options: { [String(mapping.value)]: { text: mapping.text, color: mapping.color } } })),
          thresholds: { mode: "absolute", steps: [{ value: null, color: "green" }, ...(panel.thresholds ?? [])] },
          ...(panel.mappings ? { color: { mode: "thresholds" } } : {}),
        },
        overrides: [],
      },
      options: panel.type === "stat" ? { colorMode: "background", reduceOptions: { calcs: ["lastNotNull"] } } : {},
    };
  });
  const dashboard = {
    uid: spec.uid,
    title: spec.title,
    tags: ["tradeops", spec.feature],
    editable: false,
    schemaVersion: 39,
    time: { from: "now-6h", to: "now" },
    refresh: "30s",
    panels,
  };
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}

/** Grafana's dashboard provider file (`provisioning/dashboards/<any>.yml`): load every JSON under `dir`. */
export function renderDashboardProviderYml(dir: string = DASHBOARDS_DIR): string {
  const provider = { name: "tradeops", folder: "tradeops", type: "file", disableDeletion: true, allowUiUpdates: false, options: { path: dir } };
  return "# Generated by tradeops (infra/config-files/grafana-dashboards.ts); edits are overwritten.\n" + renderYaml({ apiVersion: 1, providers: [provider] });
}
