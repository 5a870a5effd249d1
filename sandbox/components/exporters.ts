/**
 * S4's exporters, from Debian's packages: PostgreSQL (through the traffic endpoint, so it follows
 * the primary), Redis, and the host. Prometheus scrapes them beside the ops API. Nothing depends on
 * them: `health` and the runbooks work with every exporter down, and the dashboards show it (each
 * opens with its exporter's `up`).
 */
import { mkdirSync } from "node:fs";
import type { SandboxComponent } from "../component.ts";
import type { ComponentName, SandboxLayout, SandboxPorts } from "../layout.ts";
import type { SandboxSecrets } from "../secrets.ts";
import { assertPortFree, httpStatus, livePid, notReady, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";

const READY_TIMEOUT_MS = 15_000;
const VERIFY_TIMEOUT_MS = 10_000;

interface ExporterSpec {
  name: ComponentName & `${string}-exporter`;
  port: keyof SandboxPorts;
  binary: string;
  what: string;
  /** A metric that proves it reads its source, not just that it serves HTTP. */
  provingMetric: string;
  args(layout: SandboxLayout, listen: string): string[];
  /** Credentials go through the environment, never argv (visible in `ps`). */
  env?(layout: SandboxLayout, secrets: SandboxSecrets): Record<string, string>;
}

function exporter(spec: ExporterSpec): SandboxComponent {
  const listen = (layout: SandboxLayout) => `${layout.host}:${layout.ports[spec.port]}`;
  const files = (layout: SandboxLayout) => layout.exporters[spec.name];
  return {
    name: spec.name,
    startStep: () => `Start the ${spec.what} exporter`,
    stopStep: () => `Stop the ${spec.what} exporter`,
    port: (layout) => layout.ports[spec.port],
    requires: () => [{ binary: spec.binary, debianPackage: spec.binary }],
    logFile: (layout) => files(layout).log,
    pid: (layout) => livePid(files(layout).pidFile, layout.dir),
    // Its landing page, not /metrics: a scrape waits on the source (a PostgreSQL down behind HAProxy holds it for seconds).
    isUp: async (layout) => livePid(files(layout).pidFile, layout.dir) !== undefined && (await httpStatus(`http://${listen(layout)}/`)) === 200,

    async start({ layout, secrets }) {
      await assertPortFree(layout.host, layout.ports[spec.port], `the ${spec.what} exporter`);
      spawnDaemon(layout, { name: spec.name, command: spec.binary, args: spec.args(layout, listen(layout)), env: spec.env?.(layout, secrets), log: files(layout).log, pidFile: files(layout).pidFile });
      const ready = await waitUntil(async () => (await httpStatus(`http://${listen(layout)}/`)) === 200, READY_TIMEOUT_MS, 200);
      if (!ready) throw notReady(`the ${spec.what} exporter`, "answer / with 200", READY_TIMEOUT_MS, files(layout).log);
    },

    async verify({ layout }) {
      // After a switchover the exporter's connection went with the old primary: it reconnects on a later scrape.
      const reads = async () => {
        const body = await (await fetch(`http://${listen(layout)}/metrics`, { signal: AbortSignal.timeout(5_000) })).text().catch(() => "");
        return new RegExp(`^${spec.provingMetric}[ {]`, "m").test(body);
      };
      if (!(await waitUntil(reads, VERIFY_TIMEOUT_MS, 500))) throw new Error(`the ${spec.what} exporter serves no ${spec.provingMetric} within ${VERIFY_TIMEOUT_MS / 1000} s: see ${files(layout).log}`);
    },

    stop: (layout) => stopDaemon(layout, files(layout)),
  };
}

export const pgExporter = exporter({
  name: "pg-exporter",
  port: "pgExporter",
  binary: "prometheus-postgres-exporter",
  what: "PostgreSQL",
  provingMetric: "pg_settings_max_connections",
  args: (_layout, listen) => [`--web.listen-address=${listen}`],
  // The active site's database: while the DR site takes traffic, the primary site's endpoint is down.
  env: (layout, secrets) => ({
    DATA_SOURCE_NAME: `postgresql://${layout.database.user}:${encodeURIComponent(secrets.pgPassword)}@${layout.host}:${layout.dr?.activeSite === "dr" ? layout.dr.node.port : layout.ports.traffic}/${layout.database.name}?sslmode=disable`,
  }),
});

export const redisExporter = exporter({
  name: "redis-exporter",
  port: "redisExporter",
  binary: "prometheus-redis-exporter",
  what: "Redis",
  provingMetric: "redis_connected_clients",
  args: (layout, listen) => [`-web.listen-address=${listen}`, `-redis.addr=redis://${layout.host}:${layout.ports.redis}`],
  env: (_layout, secrets) => ({ REDIS_PASSWORD: secrets.redisPassword }),
});

export const nodeExporter = exporter({
  name: "node-exporter",
  port: "nodeExporter",
  binary: "prometheus-node-exporter",
  what: "host",
  provingMetric: "node_memory_MemAvailable_bytes",
  args: (layout, listen) => {
    mkdirSync(layout.metricsTextfileDir, { recursive: true });
    return [`--web.listen-address=${listen}`, `--collector.textfile.directory=${layout.metricsTextfileDir}`];
  },
});

export const EXPORTERS = [pgExporter, redisExporter, nodeExporter];
