/**
 * The files the dev (Docker) and prod/dr (Kubernetes) stacks put next to their processes, rendered
 * by the same generators the sandbox uses (`infra/config-files/`). This module only chooses the
 * options a container needs (listen on the pod network, paths inside the image, TimescaleDB, Docker's
 * DNS) and adds what only a container needs: the node start script and the primary's init script.
 */
import { renderAlertRules } from "../config-files/alert-rules.ts";
import { renderAlertmanagerYml, type AlertReceivers } from "../config-files/alertmanager.ts";
import { renderGrafanaDatasourceYml } from "../config-files/grafana.ts";
import { DASHBOARD_DATASOURCE_UID, DASHBOARDS, DASHBOARDS_DIR, renderDashboard, renderDashboardProviderYml } from "../config-files/grafana-dashboards.ts";
import { renderHaproxyCfg } from "../config-files/haproxy.ts";
import { renderPgbackrestConf, type PgbackrestRepoOptions } from "../config-files/pgbackrest.ts";
import { renderPgHba, renderPostgresqlConf, standardHbaRules } from "../config-files/postgresql.ts";
import { renderPrometheusYml, type ScrapeTarget } from "../config-files/prometheus.ts";
import { renderRedisConf } from "../config-files/redis.ts";

/** Paths inside the TimescaleDB HA image (uid 1000 `postgres`, PGDATA below its home). */
export const PG_PATHS = {
  home: "/home/postgres/pgdata",
  dataDir: "/home/postgres/pgdata/data",
  passfile: "/home/postgres/pgdata/.pgpass",
  socketDir: "/var/run/postgresql",
  configDir: "/etc/tradeops",
  postgresqlConf: "/etc/tradeops/postgresql.conf",
  pgHbaConf: "/etc/tradeops/pg_hba.conf",
  startScript: "/etc/tradeops/start-node.sh",
  /** Kubernetes: the pod the stack records as primary (the ConfigMap's `primary-node` key; failover rewrites it). */
  primaryNodeFile: "/etc/tradeops/primary-node",
  initScript: "/docker-entrypoint-initdb.d/50-tradeops.sh",
  pgbackrestDir: "/etc/pgbackrest",
  pgbackrestConf: "/etc/pgbackrest/pgbackrest.conf",
  secretsDir: "/run/secrets/tradeops",
} as const;
export const PG_PORT = 5432;
export const REDIS_PORT = 6379;
export const PROMETHEUS_PORT = 9090;
export const ALERTMANAGER_PORT = 9093;
export const GRAFANA_PORT = 3000;
export const PG_EXPORTER_PORT = 9187;

/** Files holding credentials inside DB containers/pods; scripts read them, nothing puts them in env. */
export const PG_SECRET_FILES = {
  /** Also the `postgres` superuser's password at initdb (POSTGRES_PASSWORD_FILE). */
  dbPassword: `${PG_PATHS.secretsDir}/db-password`,
  replicationPassword: `${PG_PATHS.secretsDir}/replication-password`,
} as const;

// ---- PostgreSQL -------------------------------------------------------------------------------

export interface NodeConfOptions {
  /** Network the clients and the other node come from (pg_hba). @example "172.28.0.0/16" */
  clientNetwork: string;
  replicationUser: string;
  /** application_name of the synchronous standby; unset = asynchronous (I5). */
  synchronousStandby?: string;
  stanza: string;
  clusterName: string;
  maxConnections?: number;
}

/** postgresql.conf for a node in a container: listens on the container network; WAL goes to pgBackRest (I7). */
export function timescaleNodeConf(opts: NodeConfOptions): string {
  return renderPostgresqlConf({
    // Inside a container/pod; what reaches it is decided by Docker port bindings / NetworkPolicies.
    listenAddresses: "*",
    port: PG_PORT,
    unixSocketDirectories: PG_PATHS.socketDir,
    clusterName: opts.clusterName,
    maxConnections: opts.maxConnections ?? 200,
    synchronousStandby: opts.synchronousStandby,
    archive: { pgbackrestConfig: PG_PATHS.pgbackrestConf, stanza: opts.stanza },
    sharedPreloadLibraries: ["timescaledb", "pg_stat_statements"],
    extra: {
      // A standby bootstrapped from the repository fetches WAL it has not streamed (I5, I6).
      restore_command: `pgbackrest --config=${PG_PATHS.pgbackrestConf} --stanza=${opts.stanza} archive-get %f "%p"`,
      // Archive at least every minute when idle, so the DR copy is never more than a minute behind (I5 site RPO 15 min).
      archive_timeout: 60,
    },
  });
}

export function timescaleHba(opts: { clientNetwork: string; replicationUser: string }): string {
  return renderPgHba(standardHbaRules({ network: opts.clientNetwork, replicationUser: opts.replicationUser }));
}

export interface RepositoryOptions {
  stanza: string;
  repo: PgbackrestRepoOptions;
  retention: { pgFullDays: number; walDays: number };
}

/**
 * pgbackrest.conf for one node (pg1 = the local data dir; the primary is whichever node runs the
 * command). `archive-copy` also stores the WAL each backup needs inside the backup, so each of the
 * 30 days of full backups restores from its own files even if the WAL archive is damaged (I7).
 * (Expiring WAL after 7 backups never removes what a kept backup needs to be consistent.)
 */
export function pgbackrestNodeConf(opts: RepositoryOptions): string {
  return renderPgbackrestConf({
    stanza: opts.stanza,
    repo: opts.repo,
    retention: opts.retention,
    nodes: [{ path: PG_PATHS.dataDir, port: PG_PORT, socketPath: PG_PATHS.socketDir, user: "postgres" }],
    logPath: "/tmp/pgbackrest-log",
    lockPath: "/tmp/pgbackrest-lock",
    spoolPath: "/tmp/pgbackrest-spool",
    archiveCopy: true,
  });
}

export interface StartScriptOptions {
  dbName: string;
  dbUser: string;
  replicationUser: string;
  stanza: string;
  /** Replication slots the primary creates at initdb, one per standby. @example ["pg_b"] */
  standbySlots: string[];
  /**
   * `ordinal` mode (StatefulSet): a file naming the pod that is primary. That pod starts as
   * primary and every other pod follows it — one with data (a former primary) comes back as its
   * standby, an empty one clones it — through its own slot, created on the primary when missing.
   * @default unset: pod -0 is the primary, and a node with data starts as it was
   * @example "/etc/tradeops/primary-node"
   */
  recordedPrimaryFile?: string;
}

/**
 * Start script of every database node, Docker and Kubernetes alike. Existing data: start as it
 * was (standby.signal decides the role, so a promoted node stays primary). Empty data dir, by
 * `TRADEOPS_BOOTSTRAP`:
 *   primary     initdb through the image's entrypoint (which runs the init script below);
 *   standby     pg_basebackup from PRIMARY_HOST through slot SLOT_NAME, then follow it;
 *   repository  restore the newest backup as a standby from the (replicated) pgBackRest repository,
 *               replaying WAL from it and, when PRIMARY_HOST is set, streaming too (DR, I5/I6);
 *   ordinal     StatefulSet: pod -0 is `primary`, the others `standby` of pod -0.
 */
export function nodeStartScript(opts: StartScriptOptions): string {
  const p = PG_PATHS;
  return `#!/bin/bash
# Generated by tradeops (infra/components/rendered-files.ts); edits are overwritten.
set -euo pipefail
export PGDATA="${p.dataDir}"
node_name="\${NODE_NAME:-$(hostname)}"
mode="\${TRADEOPS_BOOTSTRAP:-primary}"
start() { exec postgres -c config_file=${p.postgresqlConf} -c hba_file=${p.pgHbaConf} "$@"; }

write_passfile() {
  umask 077
  printf '*:*:*:%s:%s\\n' "${opts.replicationUser}" "$(cat ${PG_SECRET_FILES.replicationPassword})" > ${p.passfile}
}

follow_primary() {
  touch "$PGDATA/standby.signal"
  {
    echo "primary_conninfo = 'host=$PRIMARY_HOST port=\${PRIMARY_PORT:-${PG_PORT}} user=${opts.replicationUser} passfile=${p.passfile} application_name=$node_name'"
    if [ -n "\${SLOT_NAME:-}" ]; then echo "primary_slot_name = '$SLOT_NAME'"; fi
  } >> "$PGDATA/postgresql.auto.conf"
}

${opts.recordedPrimaryFile ? recordedPrimaryPart(opts, opts.recordedPrimaryFile) : ordinalPart}

case "$mode" in
  primary)
    for entrypoint in /docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh; do
      if [ -x "$entrypoint" ]; then
        exec "$entrypoint" postgres -c config_file=${p.postgresqlConf} -c hba_file=${p.pgHbaConf} "$@"
      fi
    done
    echo "no docker-entrypoint.sh in this image: cannot initdb" >&2; exit 1 ;;
  standby)
    until pg_isready -q -h "$PRIMARY_HOST" -p "\${PRIMARY_PORT:-${PG_PORT}}"; do echo "waiting for primary $PRIMARY_HOST"; sleep 2; done
${opts.recordedPrimaryFile ? "    ensure_slot\n" : ""}    pg_basebackup -d "host=$PRIMARY_HOST port=\${PRIMARY_PORT:-${PG_PORT}} user=${opts.replicationUser} passfile=${p.passfile}" \\
      -D "$PGDATA" -X stream -c fast -S "$SLOT_NAME" --no-password
    follow_primary
    start "$@" ;;
  repository)
    pgbackrest --config=${p.pgbackrestConf} --stanza=${opts.stanza} --type=standby restore
    if [ -n "\${PRIMARY_HOST:-}" ]; then
      SLOT_NAME="\${SLOT_NAME:-}"
      if [ -n "$SLOT_NAME" ]; then
        pg_receivewal --create-slot --if-not-exists --slot="$SLOT_NAME" -d "host=$PRIMARY_HOST port=\${PRIMARY_PORT:-${PG_PORT}} user=${opts.replicationUser} passfile=${p.passfile}" || true
      fi
      follow_primary
    fi
    start "$@" ;;
  *) echo "unknown TRADEOPS_BOOTSTRAP=$mode" >&2; exit 1 ;;
esac
`;
}

/** Pod -0 is the primary; a node with data starts as it was (standby.signal decides). */
const ordinalPart = `if [ "$mode" = ordinal ]; then
  if [ "\${node_name##*-}" = 0 ]; then mode=primary; else
    mode=standby; PRIMARY_HOST="\${PRIMARY_HOST:-\${node_name%-*}-0.\${HEADLESS_SERVICE}}"; SLOT_NAME="\${node_name//-/_}"
  fi
fi

write_passfile
if [ -s "$PGDATA/PG_VERSION" ]; then start "$@"; fi`;

/**
 * The pod named in `file` is the primary. A pod with data never promotes itself here — a runbook
 * does, with pg_promote, before it records the new primary; a pod that restarts between the two
 * (the fenced old primary, restarted by the kubelet with standby.signal) must not come back as a
 * primary from a record not yet rewritten. Every other pod with data is made a standby of the
 * recorded one, whatever it was: a former primary never becomes a second primary.
 */
function recordedPrimaryPart(opts: StartScriptOptions, file: string): string {
  const p = PG_PATHS;
  return `ensure_slot() {
  pg_receivewal --create-slot --if-not-exists --slot="$SLOT_NAME" --no-password \\
    -d "host=$PRIMARY_HOST port=\${PRIMARY_PORT:-${PG_PORT}} user=${opts.replicationUser} passfile=${p.passfile}" || echo "could not create slot $SLOT_NAME on $PRIMARY_HOST yet" >&2
}

if [ "$mode" = ordinal ]; then
  primary_node="$(cat ${file} 2>/dev/null || true)"
  primary_node="\${primary_node:-\${node_name%-*}-0}"
  if [ "$node_name" = "$primary_node" ]; then mode=primary; else
    mode=standby; PRIMARY_HOST="\${PRIMARY_HOST:-$primary_node.\${HEADLESS_SERVICE}}"; SLOT_NAME="\${node_name//-/_}"
  fi
fi

write_passfile
if [ -s "$PGDATA/PG_VERSION" ]; then
  if [ "$mode" = standby ]; then
    if [ -f "$PGDATA/postgresql.auto.conf" ]; then sed -i -e '/^primary_conninfo/d' -e '/^primary_slot_name/d' "$PGDATA/postgresql.auto.conf"; fi
    ensure_slot
    follow_primary
  fi
  start "$@"
fi`;
}

/**
 * Runs once, at initdb of the primary (docker-entrypoint-initdb.d): the ops role, the replication
 * role and slots, the application database with TimescaleDB, and the pgBackRest stanza.
 */
export function primaryInitScript(opts: StartScriptOptions): string {
  const slots = opts.standbySlots.map((slot) => `SELECT pg_create_physical_replication_slot('${slot}') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '${slot}');`);
  return `#!/bin/bash
# Generated by tradeops (infra/components/rendered-files.ts); runs once, when the primary is initialised.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username postgres --dbname postgres \\
  --set=db_password="$(cat ${PG_SECRET_FILES.dbPassword})" \\
  --set=replication_password="$(cat ${PG_SECRET_FILES.replicationPassword})" <<'SQL'
CREATE ROLE "${opts.dbUser}" LOGIN SUPERUSER PASSWORD :'db_password';
CREATE ROLE "${opts.replicationUser}" LOGIN REPLICATION PASSWORD :'replication_password';
CREATE DATABASE "${opts.dbName}" OWNER "${opts.dbUser}";
${slots.join("\n")}
SQL
psql -v ON_ERROR_STOP=1 --username postgres --dbname "${opts.dbName}" <<'SQL'
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
# The repository may still be starting: try for a minute, then leave it to \`tradeops backup\`'s check.
for attempt in 1 2 3 4 5 6; do
  if pgbackrest --config=${PG_PATHS.pgbackrestConf} --stanza=${opts.stanza} stanza-create; then exit 0; fi
  sleep 10
done
echo "pgbackrest stanza-create did not succeed; WAL archiving will fail until it does" >&2
`;
}

// ---- traffic proxy, Redis ---------------------------------------------------------------------

export const TRAFFIC_PORT = 5000;
export const HAPROXY_ADMIN_SOCKET = "/var/lib/haproxy/admin.sock";

/** Docker's embedded DNS server, inside every container on a user-defined network. */
const DOCKER_DNS = "127.0.0.11:53";

/**
 * haproxy.cfg for the dev stack's proxy. Servers are container names: HAProxy must start even
 * when one of them is down (after a failover the old primary may be gone), and follow their
 * addresses through Docker's DNS.
 */
export function trafficProxyCfg(servers: Array<{ name: string; host: string; enabled: boolean }>): string {
  return renderHaproxyCfg({
    bind: { host: "0.0.0.0", port: TRAFFIC_PORT },
    servers: servers.map((server) => ({ ...server, port: PG_PORT })),
    statsSocket: HAPROXY_ADMIN_SOCKET,
    dnsResolution: { name: "docker", nameservers: [DOCKER_DNS] },
  });
}

export function redisNodeConf(opts: { password: string; maxmemory: string; maxmemoryPolicy: string }): string {
  // Listens on the container network; Docker port bindings / NetworkPolicies decide who reaches it.
  return renderRedisConf({ bind: "0.0.0.0", port: REDIS_PORT, password: opts.password, dir: "/data", maxmemory: opts.maxmemory, maxmemoryPolicy: opts.maxmemoryPolicy });
}

// ---- Prometheus, Alertmanager, Grafana --------------------------------------------------------

export const PROMETHEUS_FILES = { config: "/etc/prometheus/prometheus.yml", rules: "/etc/prometheus/rules.yml" } as const;

export function prometheusFiles(opts: { apiTarget: string; alertmanager: string; extraTargets: ScrapeTarget[] }): { config: string; rules: string } {
  return {
    config: renderPrometheusYml({
      opsApiTarget: opts.apiTarget,
      selfTarget: `localhost:${PROMETHEUS_PORT}`,
      ruleFiles: [PROMETHEUS_FILES.rules],
      alertmanagers: [opts.alertmanager],
      extraTargets: opts.extraTargets,
    }),
    rules: renderAlertRules(),
  };
}

export type { AlertReceivers };

/**
 * alertmanager.yml (I8 channels: Telegram and Slack; Z3 Discord). It carries credentials, so the
 * stacks keep it in a Kubernetes Secret / a secret upload, never a ConfigMap.
 */
export function alertmanagerYml(receivers: AlertReceivers): string {
  return renderAlertmanagerYml({ receivers });
}

export function grafanaDatasourceYml(prometheusUrl: string): string {
  // The uid every provisioned dashboard's panels name.
  return renderGrafanaDatasourceYml({ prometheusUrl, uid: DASHBOARD_DATASOURCE_UID });
}

export { DASHBOARDS_DIR };

/** Where Grafana reads the dashboard provider file; the provider points at DASHBOARDS_DIR. */
export const GRAFANA_DASHBOARD_PROVIDER_DIR = "/etc/grafana/provisioning/dashboards";

/** I8/S4 dashboards as code: the provider file and one JSON file per dashboard (`<uid>.json`). */
export function grafanaDashboardFiles(): { providerYml: string; dashboards: Record<string, string> } {
  return {
    providerYml: renderDashboardProviderYml(DASHBOARDS_DIR),
    dashboards: Object.fromEntries(DASHBOARDS.map((dashboard) => [`${dashboard.uid}.json`, renderDashboard(dashboard)])),
  };
}
