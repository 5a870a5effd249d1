/**
 * Alerts end to end in the sandbox (#11): the real Prometheus evaluates the generated rules on the
 * ops API's metrics, the real Alertmanager routes what fires to local fakes of the Telegram, Slack
 * and Discord APIs, and the daily-loss-critical alert engages the kill switch through the ops API.
 * The test profile caps every rule's `for` (TEST_PROFILE_MAX_FOR); scrape 2 s, evaluation 5 s.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { sandboxLayout } from "../../sandbox/layout.ts";
import { readSecrets } from "../../sandbox/secrets.ts";
import { calm, dailyLossBreach, killSwitchActive, enterTestProfile, FAKE_DISCORD_PATH, FAKE_SLACK_PATH, FAKE_TELEGRAM, slowResponses, type AlertDrive } from "../support/alert-drive.ts";
import { startFakeChatApis, type FakeChatApis } from "../support/fake-chat-apis.ts";
import { tradeops } from "../support/tradeops.ts";
import { INTEGRATION_BASE_PORT } from "./global-setup.ts";

const outputs = await loadOutputs({ stack: "sandbox", outputsFile: inject("outputsFile") });
const layout = sandboxLayout({ dir: inject("sandboxDir"), basePort: INTEGRATION_BASE_PORT });
const drive: AlertDrive = {
  opsApiUrl: outputs.opsApi!.url,
  token: outputs.opsApi!.token,
  adminKey: outputs.opsApi!.killSwitchAdminKey!,
  layout,
  secrets: readSecrets(layout)!,
};
const sandbox = await openSandbox({ dir: inject("sandboxDir") });
let fake: FakeChatApis;
let profile: { undo(): Promise<void> };

beforeAll(async () => {
  fake = await startFakeChatApis();
  profile = await enterTestProfile(drive, fake);
});
afterAll(async () => {
  await calm(drive).catch(() => undefined);
  await profile?.undo();
  await fake?.close();
});

describe("alerts end to end (S5, I8, Z3)", () => {
  it("I8: a daily loss past 5 % makes Alertmanager engage the kill switch through the ops API (orders refused, audited) and tell Telegram, Slack and Discord", async () => {
    const run = await dailyLossBreach(drive, fake);
    process.stderr.write(`[alerts] kill switch by alert ${run.killSwitchSeconds.toFixed(2)} s, first chat message ${run.alertSeconds.toFixed(2)} s\n`);
    expect(run.reason).toMatch(/^alert DailyLossCritical: Today's loss is above 5 %/);

    const order = await fetch(`${drive.opsApiUrl}/api/positions`, {
      method: "POST",
      headers: { authorization: `Bearer ${drive.token}` },
      body: JSON.stringify({ symbol: "BTCUSDT", side: "long", quantity: 0.01, entry_price: 50_000 }),
    });
    expect(order.status).toBe(409);

    // Each channel in its own API's shape.
    const about = (api: string) => fake.waitFor((request) => request.api === api && JSON.stringify(request.body).includes("DailyLossCritical"), 30_000);
    const [telegram, slack, discord] = await Promise.all([about("telegram"), about("slack"), about("discord")]);
    expect(telegram.path).toBe(`/bot${FAKE_TELEGRAM.botToken}/sendMessage`);
    expect(Number(telegram.body.chat_id)).toBe(Number(FAKE_TELEGRAM.chatId));
    expect(String(telegram.body.text)).toContain("DailyLossCritical");
    expect(slack.path).toBe(FAKE_SLACK_PATH);
    expect(slack.body).toHaveProperty("attachments");
    expect(discord.path).toBe(FAKE_DISCORD_PATH);
    expect(discord.body).toHaveProperty("embeds");

    // A second delivery (Alertmanager repeats) changes nothing: still one activation.
    const again = await fetch(`${drive.opsApiUrl}/api/alerts/kill-switch`, {
      method: "POST",
      headers: { authorization: `Bearer ${drive.token}` },
      body: JSON.stringify({ version: "4", status: "firing", receiver: "kill-switch", alerts: [{ status: "firing", labels: { alertname: "DailyLossCritical" }, annotations: {} }] }),
    });
    expect(await again.json()).toEqual({ action: "already-active", alerts: ["DailyLossCritical"] });

    // One screen: what fires and what to run; the critical inhibits its own warning, as in the chats.
    const listed = await tradeops(["--outputs", inject("outputsFile"), "alerts", "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    const report = JSON.parse(listed.stdout).report as { source: string; alerts: Array<{ alert: string; severity: string; run: string }> };
    expect(report.source).toBe("alertmanager");
    expect(report.alerts).toContainEqual(expect.objectContaining({ alert: "DailyLossCritical", severity: "critical", run: "tradeops health" }));
    expect(report.alerts.map((alert) => alert.alert)).not.toContain("DailyLossWarning");
    await calm(drive);
  });

  it("S5: slow answers from the ops API raise HighAPILatency, delivered by the real Alertmanager to the chat fakes", async () => {
    const seconds = await slowResponses(drive, fake);
    process.stderr.write(`[alerts] HighAPILatency delivered ${seconds.toFixed(2)} s after the API slowed down\n`);
    await calm(drive);
  });

  it("S5: alerts falls back to Prometheus' firing alerts when Alertmanager is down, and says so", async () => {
    await sandbox.stop("alertmanager");
    try {
      const listed = await tradeops(["--outputs", inject("outputsFile"), "alerts"]);
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(/Alertmanager did not answer .*ECONNREFUSED|Alertmanager did not answer/);
      expect(listed.stdout).toMatch(/no alert is firing \(prometheus\)|SEVERITY/);
    } finally {
      await sandbox.start("alertmanager");
    }
  });

  it("I8: the kill-switch webhook refuses a caller without the ops API token or with a body that is not Alertmanager's; a resolved alert never lifts the switch", async () => {
    const webhook = (body: unknown, token?: string) =>
      fetch(`${drive.opsApiUrl}/api/alerts/kill-switch`, { method: "POST", headers: token ? { authorization: `Bearer ${token}` } : {}, body: JSON.stringify(body) });
    const resolved = { version: "4", status: "resolved", receiver: "kill-switch", alerts: [{ status: "resolved", labels: { alertname: "DailyLossCritical" } }] };
    expect((await webhook(resolved)).status).toBe(401);
    expect((await webhook({ reason: "not a webhook" }, drive.token)).status).toBe(400);
    expect(await (await webhook(resolved, drive.token)).json()).toEqual({ action: "ignored", alerts: [] });
    expect((await killSwitchActive(drive)).active).toBe(false);
  });
});
