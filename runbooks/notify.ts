/**
 * Notifications to the channels the seeds use (Z3 Telegram and Discord, I8 Telegram and Slack),
 * from the stack's outputs only: `tradeops notify test [--channel …]` (the seed's "test send"), and
 * the runbook events (start, success, failure with the failed step and what to do next).
 *
 * Each channel gets its own API's message shape. Sends to one channel are spaced by that API's
 * published limit, and a 429 is retried once after its Retry-After. Tokens live in the Telegram URL
 * path and in the webhook URLs, so no error here ever carries a URL: it names the channel.
 */
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { Refusal, StepFailure } from "./engine/errors.ts";
import type { RunEvent } from "./engine/run.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { flag } from "./flags.ts";

export const CHANNELS = ["telegram", "slack", "discord"] as const;
export type Channel = (typeof CHANNELS)[number];

export interface Notice {
  /** One line: what happened. */
  title: string;
  /** Detail lines (the failed step, the reason, what to do next). */
  lines: string[];
  level: "info" | "success" | "failure";
}

const TELEGRAM_API = "https://api.telegram.org";
const SEND_TIMEOUT_MS = 10_000;
const MAX_RETRY_AFTER_S = 10;

/**
 * Minimum gap between two messages to one channel: Telegram asks for at most one a second per
 * chat, Slack's incoming webhooks allow one a second, Discord's webhooks 5 per 2 s.
 */
export const CHANNEL_SPACING_MS: Record<Channel, number> = { telegram: 1_000, slack: 1_000, discord: 400 };

interface Delivery {
  url: string;
  body: unknown;
}

const escapeHtml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const DISCORD_COLOR: Record<Notice["level"], number> = { info: 0x3b82f6, success: 0x22c55e, failure: 0xef4444 };

/** The request each API wants for one notice. */
function deliveryOf(channel: Channel, notifications: StackOutputs["notifications"], notice: Notice): Delivery {
  const text = [notice.title, ...notice.lines].join("\n");
  switch (channel) {
    case "telegram": {
      const { botToken, chatId, apiUrl } = notifications.telegram!;
      const html = [`<b>${escapeHtml(notice.title)}</b>`, ...notice.lines.map(escapeHtml)].join("\n");
      return { url: `${apiUrl ?? TELEGRAM_API}/bot${botToken}/sendMessage`, body: { chat_id: chatId, text: html, parse_mode: "HTML", disable_web_page_preview: true } };
    }
    case "slack":
      return { url: notifications.slack!.webhookUrl, body: { text, blocks: [{ type: "section", text: { type: "mrkdwn", text: [`*${notice.title}*`, ...notice.lines].join("\n") } }] } };
    case "discord":
      // Discord refuses an embed description over 4096 characters.
      return { url: notifications.discord!.webhookUrl, body: { username: "tradeops", embeds: [{ title: notice.title.slice(0, 256), description: notice.lines.join("\n").slice(0, 4096), color: DISCORD_COLOR[notice.level] }] } };
  }
}

export function configuredChannels(outputs: Pick<StackOutputs, "notifications">): Channel[] {
  return CHANNELS.filter((channel) => outputs.notifications[channel] !== undefined);
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = { now: Date.now, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };

/** Sends notices to one stack's channels, spaced per channel. */
export class Notifier {
  private readonly nextSlot = new Map<Channel, number>();
  private readonly notifications: StackOutputs["notifications"];
  private readonly clock: Clock;

  constructor(outputs: Pick<StackOutputs, "notifications">, clock: Clock = realClock) {
    this.notifications = outputs.notifications;
    this.clock = clock;
  }

  async send(channel: Channel, notice: Notice, signal?: AbortSignal): Promise<void> {
    if (!this.notifications[channel]) throw new Refusal(`no ${channel} channel in the stack's outputs (notifications.${channel})`);
    await this.waitForSlot(channel, signal);
    const delivery = deliveryOf(channel, this.notifications, notice);
    let response = await this.post(channel, delivery, signal);
    if (response.status === 429) {
      const wait = Math.min(MAX_RETRY_AFTER_S, Number(response.headers.get("retry-after") ?? 1) || 1);
      await this.clock.sleep(wait * 1000);
      response = await this.post(channel, delivery, signal);
    }
    if (!response.ok) {
      throw new StepFailure(`${channel} answered HTTP ${response.status}`, `check notifications.${channel} in the stack's outputs (${response.status === 401 || response.status === 404 ? "the token or webhook looks wrong or revoked" : "the API refused the message"})`);
    }
  }

  private async waitForSlot(channel: Channel, signal?: AbortSignal): Promise<void> {
    const now = this.clock.now();
    const slot = Math.max(now, this.nextSlot.get(channel) ?? 0);
    this.nextSlot.set(channel, slot + CHANNEL_SPACING_MS[channel]);
    if (slot > now) await this.clock.sleep(slot - now);
    signal?.throwIfAborted();
  }

  private async post(channel: Channel, delivery: Delivery, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(SEND_TIMEOUT_MS);
    try {
      return await fetch(delivery.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(delivery.body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (error) {
      // fetch's own message may quote the URL, and with it the token: only its kind is kept.
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (timeout.aborted ? `no answer within ${SEND_TIMEOUT_MS / 1000} s` : (error as Error).name);
      throw new StepFailure(`cannot reach the ${channel} API (${cause})`, `check that this machine reaches ${channel} and notifications.${channel} in the stack's outputs`);
    }
  }
}

// ---- Runbook events --------------------------------------------------------------------------

export function noticeOf(event: RunEvent): Notice {
  const where = `${event.runbook} on ${event.stack}`;
  switch (event.kind) {
    case "start":
      return { level: "info", title: `▶ ${where} started`, lines: [] };
    case "success":
      return { level: "success", title: `✔ ${where} finished`, lines: event.durationMs === undefined ? [] : [`in ${(event.durationMs / 1000).toFixed(1)} s`] };
    case "failure":
      return {
        level: "failure",
        title: `✖ ${where} stopped${event.step ? ` at "${event.step}"` : ""}`,
        lines: [...(event.message ? [event.message] : []), ...(event.next ? [`next: ${event.next}`] : [])],
      };
  }
}

/**
 * The step engine's hook: every configured channel hears of a changing runbook's start and end. A
 * channel that fails is reported, never allowed to fail the runbook itself.
 */
export function runbookEventNotifier(outputs: Pick<StackOutputs, "notifications">): ((event: RunEvent) => Promise<string[]>) | undefined {
  const channels = configuredChannels(outputs);
  if (channels.length === 0) return undefined;
  const notifier = new Notifier(outputs);
  return async (event) => {
    const notice = noticeOf(event);
    const results = await Promise.allSettled(channels.map((channel) => notifier.send(channel, notice)));
    return results.flatMap((result) => (result.status === "rejected" ? [(result.reason as Error).message] : []));
  };
}

// ---- tradeops notify test --------------------------------------------------------------------

export const notifyTest = defineRunbook({
  command: ["notify", "test"],
  name: "notify-test",
  summary: "send a test message to the stack's Telegram, Slack and Discord channels (or one --channel)",
  features: ["Z3", "I8"],
  mutates: false,
  args: z.object({
    channel: flag(z.enum(CHANNELS).optional(), { description: "only this channel", defaultText: "every channel in the stack's outputs" }),
  }),
  steps: ({ channel }, { outputs }) => {
    const configured = configuredChannels(outputs);
    const notifier = new Notifier(outputs);
    const chosen = channel ? [channel] : configured;
    if (chosen.length === 0) {
      return [
        {
          name: "Find the notification channels in the stack's outputs",
          readOnly: true,
          precondition: async () => {
            throw new Refusal("the stack's outputs name no notification channel (notifications.telegram, .slack, .discord)", "set them in the stack's config (Pulumi: telegramBotToken + telegramChatId, slackWebhookUrl, discordWebhookUrl) and `pulumi up`");
          },
          action: async () => undefined,
        },
      ];
    }
    return chosen.map((name) => ({
      name: `Send a test message to ${name}`,
      precondition: async () => {
        if (!configured.includes(name)) throw new Refusal(`the stack's outputs have no ${name} channel (notifications.${name})`, `configured: ${configured.join(", ") || "none"}`);
      },
      action: async (ctx) => {
        await notifier.send(name, { level: "info", title: `tradeops test message for ${outputs.stack}`, lines: [`channel: ${name}`, `sent ${new Date().toISOString()}`] }, ctx.signal);
        ctx.record(name, "sent");
      },
    }));
  },
  report: (facts) => {
    const sent = CHANNELS.filter((channel) => facts[channel] === "sent");
    return { text: sent.length ? `test message sent to ${sent.join(", ")}` : "no test message sent", json: { sent } };
  },
});
