/**
 * Alertmanager (I8, Z3): Prometheus' alerts routed by severity, and the daily-loss-critical alert to
 * the ops API's kill-switch webhook. The sandbox has no chat channels; `notify test` and the
 * end-to-end test point the channels at local fakes of the Telegram, Slack and Discord APIs.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { renderAlertmanagerYml, type AlertReceivers } from "../../infra/config-files/alertmanager.ts";
import type { SandboxComponent } from "../component.ts";
import type { SandboxLayout } from "../layout.ts";
import type { SandboxSecrets } from "../secrets.ts";
import { assertPortFree, httpStatus, livePid, notReady, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";

const READY_TIMEOUT_MS = 30_000;

const baseUrl = (layout: SandboxLayout) => `http://${layout.host}:${layout.ports.alertmanager}`;

/**
 * The sandbox's alertmanager.yml: short waits, since it is where alerts are drilled. `channels` are
 * none by default; tests point them at local fakes of the chat APIs.
 */
export function sandboxAlertmanagerYml(layout: SandboxLayout, secrets: SandboxSecrets, channels: Omit<AlertReceivers, "killSwitch"> = {}): string {
  return renderAlertmanagerYml({
    receivers: { ...channels, killSwitch: { url: `http://${layout.host}:${layout.ports.opsApi}/api/alerts/kill-switch`, bearerToken: secrets.opsApiToken } },
    groupWait: "1s",
    groupInterval: "10s",
  });
}

export const alertmanager: SandboxComponent = {
  name: "alertmanager",
  startStep: () => "Start Alertmanager with the severity routes and the kill-switch webhook",
  stopStep: () => "Stop Alertmanager",
  port: (layout) => layout.ports.alertmanager,
  requires: () => [{ binary: "prometheus-alertmanager", debianPackage: "prometheus-alertmanager" }],
  logFile: (layout) => layout.alertmanager.log,
  pid: (layout) => livePid(layout.alertmanager.pidFile, layout.dir),
  isUp: async (layout) => livePid(layout.alertmanager.pidFile, layout.dir) !== undefined && (await httpStatus(`${baseUrl(layout)}/-/ready`)) === 200,

  async start({ layout, secrets }) {
    await assertPortFree(layout.host, layout.ports.alertmanager, "Alertmanager");
    mkdirSync(layout.alertmanager.dataDir, { recursive: true, mode: 0o700 });
    // It holds the ops API token: readable by the sandbox's user only.
    writeFileSync(layout.alertmanager.config, sandboxAlertmanagerYml(layout, secrets), { mode: 0o600 });
    spawnDaemon(layout, {
      name: "alertmanager",
      command: "prometheus-alertmanager",
      args: [
        `--config.file=${layout.alertmanager.config}`,
        `--storage.path=${layout.alertmanager.dataDir}`,
        `--web.listen-address=${layout.host}:${layout.ports.alertmanager}`,
        // No gossip: its default port (9094) is machine-wide and two sandboxes would meet there.
        "--cluster.listen-address=",
      ],
      log: layout.alertmanager.log,
      pidFile: layout.alertmanager.pidFile,
    });
    const ready = await waitUntil(async () => (await httpStatus(`${baseUrl(layout)}/-/ready`)) === 200, READY_TIMEOUT_MS, 200);
    if (!ready) throw notReady("Alertmanager", "answer /-/ready with 200", READY_TIMEOUT_MS, layout.alertmanager.log);
  },

  async verify({ layout }) {
    const response = await fetch(`${baseUrl(layout)}/api/v2/status`, { signal: AbortSignal.timeout(2_000) });
    const body = await response.text();
    if (!body.includes("kill-switch")) throw new Error(`Alertmanager did not load the kill-switch route from ${layout.alertmanager.config}`);
  },

  stop: (layout) => stopDaemon(layout, layout.alertmanager),
};
