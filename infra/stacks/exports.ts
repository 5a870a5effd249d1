/**
 * What a stack program returns: the outputs contract with Pulumi values inside. `pulumi stack
 * output --json --show-secrets` of the stack is then exactly a contract document.
 */
import * as pulumi from "@pulumi/pulumi";
import type { StackOutputsInput } from "../../contract/outputs.ts";

/** T, with an Output/Promise allowed at every level. */
export type DeepInput<T> = T extends string | number | boolean | undefined | null
  ? pulumi.Input<T>
  : T extends Array<infer Item>
    ? pulumi.Input<Array<DeepInput<Item>>>
    : pulumi.Input<{ [K in keyof T]: DeepInput<T[K]> }>;

export type StackExports = { [K in keyof StackOutputsInput]: DeepInput<StackOutputsInput[K]> };

/** The contract's `backup.prefix`: where in the bucket pgBackRest keeps its repository (repo1-path). */
export const PGBACKREST_PREFIX = "/pgbackrest";

/**
 * The contract's `lock`: an object in the site's backup bucket, next to the pgBackRest repository
 * (`locks/pgbackrest/<stanza>.json`, the runbooks' default key). Each site's bucket holds its own:
 * prod's replication leaves `locks/` out, so DR's lock is never overwritten by prod's.
 */
export function stackLockOf(stanza: string): StackExports["lock"] {
  return { kind: "s3", key: `locks${PGBACKREST_PREFIX}/${stanza}.json` };
}

/**
 * The role standbys connect as (pg_basebackup, an old primary rejoining after failback), for the
 * contract's `database.replication`; the password leaves as a Pulumi secret whatever it came in as.
 */
export function replicationRoleOf(user: string, password: pulumi.Input<string>): { user: string; password: pulumi.Output<string> } {
  return { user, password: pulumi.secret(password) };
}

/** Notification targets (Z3, I8) from config; secrets stay secrets. */
export function notificationsOf(config: {
  telegramBotToken?: string;
  telegramChatId?: string;
  slackWebhookUrl?: string;
  discordWebhookUrl?: string;
}): StackExports["notifications"] {
  return {
    ...(config.telegramBotToken && config.telegramChatId
      ? { telegram: { botToken: pulumi.secret(config.telegramBotToken), chatId: config.telegramChatId } }
      : {}),
    ...(config.slackWebhookUrl ? { slack: { webhookUrl: pulumi.secret(config.slackWebhookUrl) } } : {}),
    ...(config.discordWebhookUrl ? { discord: { webhookUrl: pulumi.secret(config.discordWebhookUrl) } } : {}),
  };
}

/** The same targets as Alertmanager receivers, plus I8's kill-switch webhook (the ops API's own route and token). */
export function alertReceiversOf(config: Parameters<typeof notificationsOf>[0], killSwitch: { url: string; bearerToken: pulumi.Input<string> }) {
  return {
    killSwitch: pulumi.output(killSwitch.bearerToken).apply((bearerToken) => ({ url: killSwitch.url, bearerToken })),
    ...(config.telegramBotToken && config.telegramChatId ? { telegram: { botToken: config.telegramBotToken, chatId: config.telegramChatId } } : {}),
    ...(config.slackWebhookUrl ? { slack: { webhookUrl: config.slackWebhookUrl } } : {}),
    ...(config.discordWebhookUrl ? { discord: { webhookUrl: config.discordWebhookUrl } } : {}),
  };
}

/**
 * The contract's `app` (I4, Z7): the release is the API image's tag, and `tradeops:apiImage` is the
 * key `rollback app` / `upgrade app` set (`pulumi config set`), so the next `pulumi up` keeps what runs.
 */
export function appReleaseOf(apiImage: string): StackExports["app"] {
  const at = apiImage.lastIndexOf(":");
  const tagged = at > apiImage.lastIndexOf("/");
  return { current: tagged ? apiImage.slice(at + 1) : "latest", image: tagged ? apiImage.slice(0, at) : apiImage, imageConfigKey: "tradeops:apiImage" };
}
