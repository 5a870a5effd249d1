/**
 * Every command of the CLI, in the order --help lists them. Adding a runbook: write its file
 * (steps, summary, features, args with their flags), then add one line here.
 */
import { backup } from "./backup.ts";
import { diagnose } from "./diagnose.ts";
import { failback } from "./failback.ts";
import { failover } from "./failover.ts";
import { drill } from "./drill.ts";
import type { Runbook } from "./engine/runbook.ts";
import { health } from "./health.ts";
import { sandboxDown, sandboxStatus, sandboxUp } from "./sandbox.ts";
import { switchover } from "./switchover.ts";
import { unlock } from "./unlock.ts";
import { restore } from "./restore.ts";
import { backupsList } from "./backups-list.ts";
import { notifyTest } from "./notify.ts";
import { alerts } from "./alerts.ts";

// Each entry keeps its own args and target types; the CLI only needs their common shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Entry = Runbook<any, any>;

export const COMMANDS: Entry[] = [health, alerts, diagnose, backup, backupsList, restore, failover, switchover, failback, unlock, drill, notifyTest, sandboxUp, sandboxDown, sandboxStatus];

/** The words that group several commands (`tradeops sandbox up|down|status`). */
export const GROUPS: Record<string, string> = {
  backups: "the backup sets in the stack's repository",
  notify: "the stack's notification channels (Telegram, Slack, Discord)",
  sandbox: "the local sandbox: the whole stack as real processes on 127.0.0.1",
};
