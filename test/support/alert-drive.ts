/**
 * Drives a running sandbox into the breaches the alert rules watch, end to end through the real
 * Prometheus and Alertmanager: the test profile (every rule's `for` capped, channels pointed at the
 * local chat fakes), then a daily loss past 5 % (I8) or slow answers (S5), timed from the change to
 * what arrives. Used by test/integration/alerts.test.ts and bench/alerts.ts.
 */
import { writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { renderAlertRules } from "../../infra/config-files/alert-rules.ts";
import { sandboxAlertmanagerYml } from "../../sandbox/components/alertmanager.ts";
import type { SandboxLayout } from "../../sandbox/layout.ts";
import type { SandboxSecrets } from "../../sandbox/secrets.ts";
import type { ChatRequest, FakeChatApis } from "./fake-chat-apis.ts";

/** The test profile: no rule waits longer than this before it fires. */
export const TEST_PROFILE_MAX_FOR = "5s";
export const FAKE_TELEGRAM = { botToken: "424242:fake-Bot-TOKEN-e2e-7f3a9c", chatId: "-1004242" };
export const FAKE_SLACK_PATH = "/slack/services/T0/B0/fake-slack-SECRET-e2e";
export const FAKE_DISCORD_PATH = "/discord/api/webhooks/42/fake-discord-SECRET-e2e";

export interface AlertDrive {
  opsApiUrl: string;
  token: string;
  adminKey: string;
  layout: SandboxLayout;
  secrets: SandboxSecrets;
}

async function post(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
}

async function reload(baseUrl: string, what: string): Promise<void> {
  const response = await post(`${baseUrl}/-/reload`, {});
  if (!response.ok) throw new Error(`${what} refused the reload: ${response.status} ${await response.text()}`);
}

const prometheusUrl = (layout: SandboxLayout) => `http://${layout.host}:${layout.ports.prometheus}`;
const alertmanagerUrl = (layout: SandboxLayout) => `http://${layout.host}:${layout.ports.alertmanager}`;

/** Short `for`s and the three channels on the fakes; `undo` puts the sandbox's own files back. */
export async function enterTestProfile(drive: AlertDrive, fake: FakeChatApis): Promise<{ undo(): Promise<void> }> {
  const { layout, secrets } = drive;
  writeFileSync(layout.prometheus.rules, renderAlertRules({ maxFor: TEST_PROFILE_MAX_FOR }));
  writeFileSync(
    layout.alertmanager.config,
    sandboxAlertmanagerYml(layout, secrets, {
      telegram: { ...FAKE_TELEGRAM, apiUrl: fake.url },
      slack: { webhookUrl: `${fake.url}${FAKE_SLACK_PATH}` },
      discord: { webhookUrl: `${fake.url}${FAKE_DISCORD_PATH}` },
    }),
    { mode: 0o600 },
  );
  await Promise.all([reload(prometheusUrl(layout), "Prometheus"), reload(alertmanagerUrl(layout), "Alertmanager")]);
  return {
    async undo() {
      writeFileSync(layout.prometheus.rules, renderAlertRules());
      writeFileSync(layout.alertmanager.config, sandboxAlertmanagerYml(layout, secrets), { mode: 0o600 });
      await Promise.all([reload(prometheusUrl(layout), "Prometheus"), reload(alertmanagerUrl(layout), "Alertmanager")]);
    },
  };
}

export async function simulate(drive: AlertDrive, change: Record<string, number>): Promise<void> {
  const response = await post(`${drive.opsApiUrl}/api/simulation`, change, drive.token);
  if (!response.ok) throw new Error(`POST /api/simulation: ${response.status} ${await response.text()}`);
}

export async function killSwitchActive(drive: AlertDrive): Promise<{ active: boolean; reason?: string }> {
  const response = await fetch(`${drive.opsApiUrl}/api/kill-switch/status`, { headers: { authorization: `Bearer ${drive.token}` }, signal: AbortSignal.timeout(5_000) });
  return (await response.json()) as { active: boolean; reason?: string };
}

/** Back to a calm market with trading allowed (the kill switch force-deactivated when an alert set it). */
export async function calm(drive: AlertDrive): Promise<void> {
  await simulate(drive, { daily_loss_ratio: 0, drawdown_ratio: 0, response_delay_ms: 0, decision_latency_seconds: 0.05 });
  if ((await killSwitchActive(drive)).active) await post(`${drive.opsApiUrl}/api/kill-switch/force-deactivate`, { admin_key: drive.adminKey }, drive.token);
  await post(`${drive.opsApiUrl}/api/trading/resume`, {}, drive.token);
}

const mentions = (alert: string) => (request: ChatRequest) => JSON.stringify(request.body).includes(alert);

export interface DailyLossRun {
  /** From the simulated loss to the kill switch being active. */
  killSwitchSeconds: number;
  /** From the simulated loss to the first chat API request naming the alert. */
  alertSeconds: number;
  reason: string;
}

/** I8: today's loss goes past 5 %; the kill-switch route acts and the people are told. */
export async function dailyLossBreach(drive: AlertDrive, fake: FakeChatApis, timeoutMs = 90_000): Promise<DailyLossRun> {
  const since = fake.requests.length;
  const started = performance.now();
  await simulate(drive, { daily_loss_ratio: 0.06 });
  const told = fake.waitFor((request) => fake.requests.indexOf(request) >= since && mentions("DailyLossCritical")(request), timeoutMs);
  told.catch(() => undefined); // awaited below; a throw before then must not leave it unhandled
  let killSwitchSeconds: number | undefined;
  let reason = "";
  while (performance.now() - started < timeoutMs) {
    const status = await killSwitchActive(drive);
    if (status.active) {
      killSwitchSeconds = (performance.now() - started) / 1000;
      reason = status.reason ?? "";
      break;
    }
    await sleep(50);
  }
  if (killSwitchSeconds === undefined) throw new Error(`the kill switch was not engaged within ${timeoutMs / 1000} s of the daily loss`);
  const alertSeconds = ((await told).at - started) / 1000;
  return { killSwitchSeconds, alertSeconds, reason };
}

/** S5: every `/api/*` answer takes 1.2 s under steady traffic until HighAPILatency reaches the chats. */
export async function slowResponses(drive: AlertDrive, fake: FakeChatApis, timeoutMs = 90_000): Promise<number> {
  const since = fake.requests.length;
  const started = performance.now();
  await simulate(drive, { response_delay_ms: 1_200 });
  const told = fake.waitFor((request) => fake.requests.indexOf(request) >= since && mentions("HighAPILatency")(request), timeoutMs);
  let done = false;
  void told.finally(() => (done = true)).catch(() => undefined);
  // Enough slow answers that they, not /health and /metrics, make the p95.
  const traffic = async () => {
    while (!done && performance.now() - started < timeoutMs) {
      await fetch(`${drive.opsApiUrl}/api/trading/status`, { headers: { authorization: `Bearer ${drive.token}` }, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
    }
  };
  await Promise.all([told, ...Array.from({ length: 8 }, traffic)]);
  return ((await told).at - started) / 1000;
}
