/**
 * pg-b, the streaming standby: a physical slot on pg-a, `pg_basebackup -R -X stream -c fast`
 * as `replicator` with application_name `pg-b`, then synchronous (default, I5 RPO 0) or async.
 */
import { synchronousStandbyNames } from "../../infra/config-files/postgresql.ts";
import type { ComponentContext, SandboxComponent } from "../component.ts";
import type { SandboxLayout } from "../layout.ts";
import { asOsUser, runOrThrow, waitUntil } from "../processes.ts";
import {
  inRecovery,
  isUp,
  pgBin,
  pgBinaries,
  postmasterPid,
  psql,
  reloadCluster,
  replicationState,
  startNode,
  stopCluster,
  writePgConfig,
} from "./postgres.ts";

const STREAMING_TIMEOUT_MS = 30_000;

const standby = (layout: SandboxLayout) => layout.pg["pg-b"];
const primary = (layout: SandboxLayout) => layout.pg["pg-a"];

export const pgStandby: SandboxComponent = {
  name: "pg-b",
  startStep: (layout) => `Start the streaming standby pg-b (${layout.mode === "sync" ? "synchronous" : "asynchronous"})`,
  stopStep: () => "Stop the streaming standby pg-b (pg_ctl stop -m fast)",
  port: (layout) => standby(layout).port,
  requires: (layout) => pgBinaries(layout, "pg_basebackup", "pg_ctl", "psql", "pg_isready"),
  logFile: (layout) => standby(layout).log,
  pid: (layout) => postmasterPid(standby(layout), layout),
  isUp: (layout) => isUp(layout, standby(layout)),

  /** Up is not enough: a `--sync` up after an `--async` one must still switch the mode. */
  async isDone({ layout }) {
    if (!(await isUp(layout, standby(layout)))) return false;
    return (await replicationModeOf(layout)) === layout.mode;
  },

  async start(sandbox) {
    const { layout } = sandbox;
    if (!(await isUp(layout, standby(layout)))) {
      await startNode(sandbox, standby(layout), { create: (dataDir) => cloneFromPrimary(sandbox, dataDir) });
    }
    await waitForStreaming(sandbox);
    await applyReplicationMode(sandbox);
  },

  async verify({ layout }) {
    if ((await inRecovery(layout, standby(layout))) !== true) throw new Error("pg-b is not in recovery: it is not a standby");
    const mode = await replicationModeOf(layout);
    if (mode !== layout.mode) {
      throw new Error(`pg-b replicates ${mode ?? "not at all"} but ${layout.mode} was asked; see ${standby(layout).log}`);
    }
  },

  stop: (layout, log) => stopCluster(layout, standby(layout), log),

  async describe(layout) {
    const role = await inRecovery(layout, standby(layout));
    if (role === undefined) return undefined;
    if (!role) return "primary (promoted)";
    const replication = await replicationState(layout, primary(layout), standby(layout)).catch(() => undefined);
    return replication ? `standby, ${replication.state}, ${replication.syncState}` : "standby, not streaming";
  },
};

/** `sync` / `async` as pg-a reports pg-b in pg_stat_replication, or undefined when not streaming. */
async function replicationModeOf(layout: SandboxLayout): Promise<"sync" | "async" | undefined> {
  const replication = await replicationState(layout, primary(layout), standby(layout)).catch(() => undefined);
  if (replication?.state !== "streaming") return undefined;
  return replication.syncState === "sync" ? "sync" : replication.syncState === "async" ? "async" : undefined;
}

async function cloneFromPrimary({ layout, secrets, log }: ComponentContext, dataDir: string): Promise<void> {
  const slot = layout.replicationSlot;
  await psql(
    layout,
    primary(layout),
    `SELECT pg_create_physical_replication_slot('${slot}') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '${slot}')`,
  );
  const conninfo = `host=${layout.host} port=${primary(layout).port} user=${layout.database.replicationUser} application_name=pg-b`;
  log(`pg_basebackup from pg-a into ${standby(layout).dataDir} (slot ${slot})`);
  const basebackup = asOsUser(layout, pgBin(layout, "pg_basebackup"), [
    "-D", dataDir, "-R", "-X", "stream", "-c", "fast", "-S", slot, "-d", conninfo,
  ]);
  // The password travels in the environment, never on the command line; -R writes it into
  // primary_conninfo (postgresql.auto.conf, inside the 0700 data dir) with the slot name.
  await runOrThrow(layout, basebackup, { what: "pg_basebackup of pg-b", env: { PGPASSWORD: secrets.replicatorPassword }, timeoutMs: 300_000 });
}

async function waitForStreaming({ layout }: ComponentContext): Promise<void> {
  const streaming = await waitUntil(
    async () => (await replicationState(layout, primary(layout), standby(layout)))?.state === "streaming",
    STREAMING_TIMEOUT_MS,
    200,
  );
  if (!streaming) {
    throw new Error(`pg-b does not stream from pg-a within ${STREAMING_TIMEOUT_MS / 1000} s; see ${standby(layout).log}`);
  }
}

/**
 * I5: in sync mode every commit on pg-a waits for pg-b (RPO 0; field notes: 0 of ~23k commits
 * lost at a SIGKILL, vs 5,271 of 24,920 async). Rendered into pg-a's postgresql.conf, then reloaded.
 */
async function applyReplicationMode({ layout, log }: ComponentContext): Promise<void> {
  if ((await inRecovery(layout, primary(layout))) !== false) {
    log("pg-a is not the primary (roles were switched): leaving synchronous_standby_names to the failover runbooks");
    return;
  }
  const wanted = layout.mode === "sync" ? "pg-b" : undefined;
  writePgConfig(layout, primary(layout), wanted);
  await reloadCluster(layout, primary(layout));
  const applied = await waitUntil(async () => (await replicationModeOf(layout)) === layout.mode, 10_000, 100);
  if (!applied) {
    throw new Error(`pg-a did not report pg-b as ${layout.mode} after reload (synchronous_standby_names = '${synchronousStandbyNames(wanted)}')`);
  }
}
