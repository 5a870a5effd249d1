/**
 * Every command of the CLI, in the order --help lists them. Adding a runbook: write its file
 * (steps, summary, features, args with their flags), then add one line here.
 */
import { backup } from "./backup.ts";
import { diagnose } from "./diagnose.ts";
import { doctor } from "./doctor.ts";
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
import { backupsCheck } from "./backups-check.ts";
import { backupsExpire } from "./backups-expire.ts";
import { backupsVerify } from "./backups-verify.ts";
import { maintenanceAnalyze, maintenanceCreateIndex, maintenanceReindex, maintenanceTerminate, maintenanceVacuum } from "./maintenance/db.ts";
import { redisBigKeys, redisClearQueue, redisQueues, redisTtlCheck } from "./maintenance/redis.ts";
import { maintenanceRetention } from "./maintenance/retention.ts";
import { maintenanceSlowQueries, maintenanceUnusedIndexes } from "./maintenance/views.ts";
import { supportBundle } from "./support-bundle.ts";
import { logs } from "./logs.ts";
import { cleanupLogs, cleanupResults } from "./cleanup.ts";
import { killSwitchOff, killSwitchOn, killSwitchStatus } from "./kill-switch.ts";
import { rollbackApp, rollbackMigration, rollbackModel } from "./rollback.ts";
import { start, stop } from "./stop-start.ts";
import { circuitBreakerReset, circuitBreakerStatus, positionsCloseAll, positionsList, tradingPause, tradingResume, tradingStatus } from "./trading.ts";
import { upgradeApp } from "./upgrade.ts";
import { notifyTest } from "./notify.ts";
import { alerts } from "./alerts.ts";
import { drStatus } from "./dr-status.ts";
import { drActivate } from "./dr-activate.ts";
import { drFailback } from "./dr-failback.ts";

// Each entry keeps its own args and target types; the CLI only needs their common shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Entry = Runbook<any, any>;

export const COMMANDS: Entry[] = [
  health,
  alerts,
  diagnose,
  doctor,
  logs,
  supportBundle,
  backup,
  backupsList,
  backupsCheck,
  backupsExpire,
  backupsVerify,
  restore,
  failover,
  switchover,
  failback,
  unlock,
  drill,
  // The DR site (issue 9).
  drStatus,
  drActivate,
  drFailback,
  notifyTest,
  // Trading controls, stop/start, rollback and upgrade (issue 10).
  killSwitchOn,
  killSwitchOff,
  killSwitchStatus,
  tradingPause,
  tradingResume,
  tradingStatus,
  positionsList,
  positionsCloseAll,
  circuitBreakerStatus,
  circuitBreakerReset,
  stop,
  start,
  rollbackApp,
  rollbackMigration,
  rollbackModel,
  upgradeApp,
  // Database and Redis care (issue 12): each change shows its exact SQL or Redis command in --dry-run.
  maintenanceVacuum,
  maintenanceAnalyze,
  maintenanceReindex,
  maintenanceRetention,
  maintenanceSlowQueries,
  maintenanceUnusedIndexes,
  maintenanceCreateIndex,
  maintenanceTerminate,
  redisQueues,
  redisClearQueue,
  redisBigKeys,
  redisTtlCheck,
  cleanupResults,
  cleanupLogs,
  sandboxUp,
  sandboxDown,
  sandboxStatus,
];

/** The words that group several commands (`tradeops sandbox up|down|status`). */
export const GROUPS: Record<string, string> = {
  backups: "the backup sets in the stack's repository",
  "circuit-breaker": "the trading bot's circuit breaker (I2)",
  dr: "the DR site (I5, I6): its lag, activating it, and coming back from it",
  cleanup: "old result files and rotated logs",
  "kill-switch": "the emergency stop of all trading (I1)",
  maintenance: "database care: vacuum, retention, indexes, slow queries, stuck sessions (each --dry-run prints its SQL)",
  notify: "the stack's notification channels (Telegram, Slack, Discord)",
  positions: "the bot's open positions (I3)",
  redis: "Redis care: queues, big keys, TTLs",
  rollback: "put the app, its migrations or its model back (I4), together in the safe order",
  trading: "pause and resume trading (I9)",
  upgrade: "roll the app forward, watched, with automatic rollback (Z7)",
  sandbox: "the local sandbox: the whole stack as real processes on 127.0.0.1",
};
