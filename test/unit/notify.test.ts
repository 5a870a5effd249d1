/**
 * `tradeops notify test` and the runbook events (Z3, I8) against local fakes of the Telegram, Slack
 * and Discord APIs: the request shape each API wants, the spacing between messages, and a scanner
 * over everything tradeops wrote (stdout, stderr, the state dir) that finds no token.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackOutputs } from "../../contract/outputs.ts";
import { CHANNEL_SPACING_MS, Notifier } from "../../runbooks/notify.ts";
import { startFakeChatApis, type FakeChatApis } from "../support/fake-chat-apis.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";
import { tradeops, type CliRun } from "../support/tradeops.ts";

const work = mkdtempSync(join(tmpdir(), "tradeops-notify-"));
const env = { TRADEOPS_HOME: join(work, "home"), TRADEOPS_LOCK_DIR: join(work, "locks") };
const TOKENS = { bot: "777001:notify-Bot-TOKEN-a1b2c3", slack: "slack-HOOK-secret-d4e5f6", discord: "discord-HOOK-secret-0a9b8c" };
let fake: FakeChatApis;
let outputsFile: string;
const runs: CliRun[] = [];

beforeAll(async () => {
  fake = await startFakeChatApis();
  const notifications = {
    telegram: { botToken: TOKENS.bot, chatId: "-100777", apiUrl: fake.url },
    slack: { webhookUrl: `${fake.url}/slack/services/T1/B1/${TOKENS.slack}` },
    discord: { webhookUrl: `${fake.url}/discord/api/webhooks/9/${TOKENS.discord}` },
  };
  outputsFile = join(work, "outputs.json");
  writeFileSync(outputsFile, JSON.stringify(sampleOutputs({ notifications, lock: { kind: "file" } })));
});
afterAll(async () => {
  await fake?.close();
  rmSync(work, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<CliRun> {
  const run = await tradeops(["--outputs", outputsFile, ...args], env);
  runs.push(run);
  return run;
}

describe("notify (Z3, I8)", () => {
  it("Z3: notify test sends each channel its own API's request shape", async () => {
    const run = await cli("notify", "test", "--json");
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).report).toEqual({ sent: ["telegram", "slack", "discord"] });
    const [telegram, slack, discord] = (["telegram", "slack", "discord"] as const).map((api) => fake.requests.find((request) => request.api === api)!);
    expect(telegram).toMatchObject({ path: `/bot${TOKENS.bot}/sendMessage`, contentType: "application/json", body: { chat_id: "-100777", parse_mode: "HTML" } });
    expect(telegram!.body.text).toMatch(/^<b>tradeops test message for unit<\/b>\nchannel: telegram/);
    expect(slack).toMatchObject({ path: `/slack/services/T1/B1/${TOKENS.slack}`, body: { text: expect.stringContaining("tradeops test message"), blocks: [{ type: "section", text: { type: "mrkdwn" } }] } });
    expect(discord).toMatchObject({ path: `/discord/api/webhooks/9/${TOKENS.discord}`, body: { username: "tradeops", embeds: [{ title: "tradeops test message for unit" }] } });
  });

  it("Z3: --channel sends to that channel only; a channel the outputs lack is refused (exit 3)", async () => {
    const before = fake.requests.length;
    const run = await cli("notify", "test", "--channel", "discord");
    expect(run.code, run.stderr).toBe(0);
    expect(fake.requests.slice(before).map((request) => request.api)).toEqual(["discord"]);

    const bare = join(work, "bare.json");
    writeFileSync(bare, JSON.stringify(sampleOutputs()));
    const refused = await tradeops(["--outputs", bare, "notify", "test", "--channel", "slack"], env);
    runs.push(refused);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/no slack channel/);
    expect(refused.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect((await tradeops(["--outputs", bare, "notify", "test", "--channel", "pager"], env)).code).toBe(2);
  });

  it("Z3: a changing runbook announces its start and success, and a failure with the failed step and what to do next", async () => {
    const before = fake.requests.length;
    expect((await cli("unlock", "--force", "--yes")).code).toBe(0);
    const refused = await cli("unlock", "--yes");
    expect(refused.code).toBe(3);
    const titles = fake.requests.slice(before).filter((request) => request.api === "discord").map((request) => (request.body.embeds as Array<{ title: string; description: string }>)[0]!);
    expect(titles.map((embed) => embed.title)).toEqual([
      "▶ unlock on unit started",
      "✔ unlock on unit finished",
      "▶ unlock on unit started",
      expect.stringMatching(/^✖ unlock on unit stopped at "Read the stack lock/),
    ]);
    expect(titles[3]!.description).toMatch(/pass --force[\s\S]*\nnext: check the holder first/);
  });

  it("Z3: messages to one channel are spaced by its API's limit; another channel does not wait for it", async () => {
    const waits: number[] = [];
    const frozen = { now: () => 1_000_000, sleep: async (ms: number) => void waits.push(ms) };
    const outputs = sampleOutputs({ notifications: { slack: { webhookUrl: `${fake.url}/slack/spacing/${TOKENS.slack}` }, discord: { webhookUrl: `${fake.url}/discord/spacing/${TOKENS.discord}` } } });
    const notifier = new Notifier(StackOutputs.parse(outputs), frozen);
    for (let i = 0; i < 3; i++) await notifier.send("slack", { level: "info", title: `spacing ${i}`, lines: [] });
    await notifier.send("discord", { level: "info", title: "spacing", lines: [] });
    expect(waits).toEqual([CHANNEL_SPACING_MS.slack, 2 * CHANNEL_SPACING_MS.slack]);
    expect(fake.requests.filter((request) => request.path.includes("/spacing/"))).toHaveLength(4);
  });

  it("Z3: no token or webhook secret appears in any output, log or audit line", () => {
    const files = (dir: string): string[] => readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
    const written = [...runs.flatMap((run) => [run.stdout, run.stderr]), ...files(env.TRADEOPS_HOME).map((file) => readFileSync(file, "utf8"))];
    expect(files(env.TRADEOPS_HOME).some((file) => file.endsWith("audit.jsonl"))).toBe(true);
    for (const token of Object.values(TOKENS)) {
      expect(written.filter((text) => text.includes(token))).toEqual([]);
    }
  });
});
