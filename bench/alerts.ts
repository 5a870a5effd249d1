/**
 * Alert figures (issue #11) on a fresh sandbox in a temp dir (base port 28700 unless BENCH_BASE_PORT
 * is set), in the test profile (every rule's `for` capped at 5 s; scrape 2 s, evaluation 5 s, the
 * kill-switch route's group_wait 0 s), BENCH_CYCLES cycles (default 5) of:
 *
 *   kill switch by alert   the daily-loss gauge past 5 % → the kill switch active (ops API status)
 *   alert to the chats     the same change → the first request at the Telegram/Slack/Discord fakes
 *
 * and once (its p95 needs the 5-minute rate window to forget): slow answers → HighAPILatency at the fakes.
 *
 *   npm run bench:alerts
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { spread } from "../runbooks/drill/report.ts";
import { table } from "../runbooks/format.ts";
import { loadOutputs } from "../runbooks/outputs.ts";
import { sandboxLayout } from "../sandbox/layout.ts";
import { readSecrets } from "../sandbox/secrets.ts";
import { calm, dailyLossBreach, enterTestProfile, slowResponses, TEST_PROFILE_MAX_FOR, type AlertDrive } from "../test/support/alert-drive.ts";
import { startFakeChatApis } from "../test/support/fake-chat-apis.ts";
import { tradeops } from "../test/support/tradeops.ts";

const cycles = Number(process.env.BENCH_CYCLES ?? 5);
const basePort = Number(process.env.BENCH_BASE_PORT ?? 28700);
const parent = mkdtempSync(join(tmpdir(), "tradeops-bench-alerts-"));
chmodSync(parent, 0o755);
const dir = join(parent, "sandbox");
const env = { TRADEOPS_HOME: join(parent, "home") };
const samples = { killSwitch: [] as number[], chat: [] as number[], latency: [] as number[] };

/** Until Alertmanager holds no DailyLossCritical, plus its group_interval: the next cycle starts a fresh group. */
async function alertGone(alertmanagerUrl: string): Promise<void> {
  for (let i = 0; i < 120; i++) {
    const alerts = (await (await fetch(`${alertmanagerUrl}/api/v2/alerts?filter=alertname%3D%22DailyLossCritical%22`)).json()) as unknown[];
    if (alerts.length === 0) break;
    await sleep(500);
  }
  await sleep(11_000);
}

const fake = await startFakeChatApis();
try {
  const up = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", String(basePort)], env);
  if (up.code !== 0) throw new Error(`sandbox up: ${up.stderr.trim().split("\n").pop()}`);
  const outputs = await loadOutputs({ stack: "sandbox", outputsFile: join(dir, "outputs.json") });
  const layout = sandboxLayout({ dir, basePort });
  const drive: AlertDrive = { opsApiUrl: outputs.opsApi!.url, token: outputs.opsApi!.token, adminKey: outputs.opsApi!.killSwitchAdminKey!, layout, secrets: readSecrets(layout)! };
  await enterTestProfile(drive, fake);
  for (let cycle = 1; cycle <= cycles; cycle++) {
    const run = await dailyLossBreach(drive, fake);
    samples.killSwitch.push(run.killSwitchSeconds);
    samples.chat.push(run.alertSeconds);
    await calm(drive);
    await alertGone(outputs.monitoring!.alertmanagerUrl!);
    process.stderr.write(`[bench] cycle ${cycle}/${cycles}\n`);
  }
  samples.latency.push(await slowResponses(drive, fake));
  await calm(drive);
} finally {
  await tradeops(["sandbox", "down", "--purge", "--yes", "--dir", dir], env);
  await fake.close();
  rmSync(parent, { recursive: true, force: true });
}

const s = (seconds: number | undefined) => (seconds === undefined ? "-" : `${seconds.toFixed(2)} s`);
const rows = [
  ["kill switch by alert: daily loss > 5 % → kill switch active", samples.killSwitch, "scrape 2 s + eval 5 s + send"],
  ["DailyLossCritical: daily loss > 5 % → first chat API request", samples.chat, "scrape 2 s + eval 5 s + group_wait 1 s"],
  ["HighAPILatency: API slowed to 1.2 s → first chat API request", samples.latency, `for ${TEST_PROFILE_MAX_FOR} + scrape 2 s + eval 5 s + group_wait 1 s`],
].map(([label, values, bound]) => {
  const stat = spread(values as number[]);
  return [label as string, String((values as number[]).length), s(stat?.min), s(stat?.median), s(stat?.max), bound as string];
});
console.log(table(["ALERT BENCH (test profile)", "N", "MIN", "MEDIAN", "MAX", "BOUND"], rows));
