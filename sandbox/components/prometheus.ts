/**
 * Prometheus (S4, S5): scrapes the ops API, the exporters and itself, evaluates the generated alert rules and
 * sends what fires to the sandbox's Alertmanager.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { renderAlertRules } from "../../infra/config-files/alert-rules.ts";
import { renderPrometheusYml } from "../../infra/config-files/prometheus.ts";
import type { SandboxComponent } from "../component.ts";
import type { SandboxLayout } from "../layout.ts";
import { assertPortFree, httpStatus, livePid, notReady, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";

const READY_TIMEOUT_MS = 30_000;

const baseUrl = (layout: SandboxLayout) => `http://${layout.host}:${layout.ports.prometheus}`;

export const prometheus: SandboxComponent = {
  name: "prometheus",
  startStep: () => "Start Prometheus with the alert rules",
  stopStep: () => "Stop Prometheus",
  port: (layout) => layout.ports.prometheus,
  requires: () => [{ binary: "prometheus", debianPackage: "prometheus" }],
  logFile: (layout) => layout.prometheus.log,
  pid: (layout) => livePid(layout.prometheus.pidFile, layout.dir),
  isUp: async (layout) => livePid(layout.prometheus.pidFile, layout.dir) !== undefined && (await httpStatus(`${baseUrl(layout)}/-/ready`)) === 200,

  async start({ layout }) {
    await assertPortFree(layout.host, layout.ports.prometheus, "Prometheus");
    mkdirSync(layout.prometheus.dataDir, { recursive: true, mode: 0o755 });
    writeFileSync(layout.prometheus.rules, renderAlertRules(), { mode: 0o644 });
    const yml = renderPrometheusYml({
      opsApiTarget: `${layout.host}:${layout.ports.opsApi}`,
      selfTarget: `${layout.host}:${layout.ports.prometheus}`,
      ruleFiles: [layout.prometheus.rules],
      alertmanagers: [`${layout.host}:${layout.ports.alertmanager}`],
      extraTargets: [
        { jobName: "postgres", targets: [`${layout.host}:${layout.ports.pgExporter}`] },
        { jobName: "redis", targets: [`${layout.host}:${layout.ports.redisExporter}`] },
        { jobName: "node", targets: [`${layout.host}:${layout.ports.nodeExporter}`] },
      ],
      scrapeInterval: "2s",
      evaluationInterval: "5s",
    });
    writeFileSync(layout.prometheus.config, yml, { mode: 0o644 });
    spawnDaemon(layout, {
      name: "prometheus",
      command: "prometheus",
      args: [
        `--config.file=${layout.prometheus.config}`,
        `--storage.tsdb.path=${layout.prometheus.dataDir}`,
        "--storage.tsdb.retention.time=2d",
        `--web.listen-address=${layout.host}:${layout.ports.prometheus}`,
        "--web.enable-lifecycle",
      ],
      log: layout.prometheus.log,
      pidFile: layout.prometheus.pidFile,
    });
    const ready = await waitUntil(async () => (await httpStatus(`${baseUrl(layout)}/-/ready`)) === 200, READY_TIMEOUT_MS, 200);
    if (!ready) throw notReady("Prometheus", "answer /-/ready with 200", READY_TIMEOUT_MS, layout.prometheus.log);
  },

  async verify({ layout }) {
    const response = await fetch(`${baseUrl(layout)}/api/v1/rules`, { signal: AbortSignal.timeout(2_000) });
    const body = await response.text();
    if (!body.includes('"HighAPILatency"')) throw new Error(`Prometheus did not load the S5 rules from ${layout.prometheus.rules}`);
  },

  stop: (layout) => stopDaemon(layout, layout.prometheus),
};
