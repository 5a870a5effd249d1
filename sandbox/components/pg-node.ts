/**
 * A PostgreSQL node of the pair, in the role the sandbox records for it (sandbox.json `primary`):
 *
 *  - the primary: initdb with data checksums the first time (only pg-a is ever initialised), the
 *    ops role `tradeops` (superuser, scram), the `replicator` role, the `trading` database with
 *    pg_stat_statements (S13);
 *  - the standby: a clone of the primary (`pg_basebackup -R -X stream -c fast -S <slot>`) the
 *    first time; it starts in recovery, streams, and is then made synchronous (I5) or not.
 *
 * After a failover the roles swap (pg-b primary, pg-a its standby once failback rejoined it), and
 * `up`, `status`, `health` follow. A node recorded as standby that has no standby.signal is never
 * started: it would come up as a second primary.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { synchronousStandbyNames } from "../../infra/config-files/postgresql.ts";
import type { ComponentContext, SandboxComponent } from "../component.ts";
import { nodeOf, slotOf, type PgNodeName, type SandboxLayout, type SiteNodeName } from "../layout.ts";
import { asOsUser, assertPortFree, chownToOsUser, run, runOrThrow, stopAll, waitUntil } from "../processes.ts";
import {
  clearStaleLock,
  clusterProcesses,
  inRecovery,
  isInitialised,
  isUp,
  pgBin,
  pgBinaries,
  postmasterPid,
  psql,
  reloadCluster,
  replicationState,
  startCluster,
  startNode,
  stopCluster,
  writeOwned,
  writePgConfig,
} from "./postgres.ts";

const STREAMING_TIMEOUT_MS = 30_000;

const isPrimary = (layout: SandboxLayout, name: PgNodeName) => layout.primary === name;

export function pgNode(name: PgNodeName): SandboxComponent {
  const node = (layout: SandboxLayout) => layout.pg[name];
  return {
    name,
    startStep: (layout) =>
      isPrimary(layout, name)
        ? `Start the PostgreSQL primary ${name}`
        : `Start the streaming standby ${name} (${layout.mode === "sync" ? "synchronous" : "asynchronous"})`,
    stopStep: (layout) => `Stop the PostgreSQL ${isPrimary(layout, name) ? "primary" : "standby"} ${name} (pg_ctl stop -m fast)`,
    port: (layout) => node(layout).port,
    requires: (layout) => pgBinaries(layout, "initdb", "pg_basebackup", "pg_ctl", "psql", "pg_isready"),
    logFile: (layout) => node(layout).log,
    pid: (layout) => postmasterPid(node(layout), layout),
    isUp: (layout) => isUp(layout, node(layout)),

    /** A standby is done when it streams in the mode asked (a `--sync` up after an `--async` one switches it). */
    async isDone({ layout }) {
      if (!(await isUp(layout, node(layout)))) return false;
      return isPrimary(layout, name) || (await replicationModeOf(layout, name)) === layout.mode;
    },

    async start(context) {
      if (isPrimary(context.layout, name)) await startPrimary(context, name);
      else await startStandby(context, name);
    },

    async verify({ layout }) {
      const role = await inRecovery(layout, node(layout));
      if (role === undefined) throw new Error(`${name} does not accept connections on port ${node(layout).port}`);
      if (isPrimary(layout, name)) {
        if (role) throw new Error(`${name} is recorded as the primary but is in recovery; see ${node(layout).log}`);
        const hasDatabase = await psql(layout, node(layout), `SELECT count(*) FROM pg_database WHERE datname = '${layout.database.name}'`);
        if (hasDatabase !== "1") throw new Error(`${name} has no database ${layout.database.name}; its bootstrap did not finish — run \`sandbox down --purge\` and \`up\` again`);
        return;
      }
      if (!role) throw new Error(`${name} is not in recovery: it is not a standby`);
      const mode = await replicationModeOf(layout, name);
      if (mode !== layout.mode) throw new Error(`${name} replicates ${mode ?? "not at all"} but ${layout.mode} was asked; see ${node(layout).log}`);
    },

    stop: (layout, log) => stopCluster(layout, node(layout), log),

    async describe(layout) {
      const role = await inRecovery(layout, node(layout));
      if (role === undefined) return undefined;
      if (!role) return isPrimary(layout, name) ? "primary" : "primary (NOT the recorded one: split brain?)";
      const replication = await replicationState(layout, layout.pg[layout.primary], node(layout)).catch(() => undefined);
      return replication ? `standby, ${replication.state}, ${replication.syncState}` : "standby, not streaming";
    },
  };
}

// ---- the primary --------------------------------------------------------------------------------

async function startPrimary(context: ComponentContext, name: PgNodeName): Promise<void> {
  const { layout } = context;
  const node = layout.pg[name];
  if (!isInitialised(node) && name !== "pg-a") {
    throw new Error(`${name} is recorded as the primary but has no data dir: restore it (\`tradeops restore\`) or purge the sandbox`);
  }
  // Synchronous replication is switched on once the standby streams (startStandby): naming it
  // here would make every commit wait for a standby that may not come back (a fenced old primary).
  await startNode(context, node, { create: (dataDir) => initPrimary(context, dataDir) });
  if ((await inRecovery(layout, node)) === false) await bootstrapRoles(context, name);
}

async function initPrimary({ layout, log }: ComponentContext, dataDir: string): Promise<void> {
  log(`initdb ${layout.pg["pg-a"].dataDir} (data checksums on)`);
  const initdb = asOsUser(layout, pgBin(layout, "initdb"), [
    "-D", dataDir, "--data-checksums", "--encoding=UTF8", "--locale=C",
    "--auth-local=peer", "--auth-host=scram-sha-256", `--username=${layout.osUser}`,
  ]);
  await runOrThrow(layout, initdb, { what: "initdb of pg-a", timeoutMs: 120_000 });
}

/**
 * Idempotent: safe at every start, and re-applies the passwords of secrets.json. Passwords go in
 * through psql variables on stdin, never on a command line; `synchronous_commit = local` because
 * the standby may be named as synchronous while it is still down.
 */
async function bootstrapRoles({ layout, secrets }: ComponentContext, name: PgNodeName): Promise<void> {
  const { name: database, user, replicationUser } = layout.database;
  const sql = `
\\set ops_password '${secrets.pgPassword}'
\\set replicator_password '${secrets.replicatorPassword}'
SET synchronous_commit = local;
SELECT 'CREATE ROLE ${user}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${user}') \\gexec
ALTER ROLE ${user} WITH LOGIN SUPERUSER PASSWORD :'ops_password';
SELECT 'CREATE ROLE ${replicationUser}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${replicationUser}') \\gexec
ALTER ROLE ${replicationUser} WITH LOGIN REPLICATION PASSWORD :'replicator_password';
SELECT 'CREATE DATABASE ${database} OWNER ${user}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${database}') \\gexec
\\c ${database}
SET synchronous_commit = local;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
`;
  await psql(layout, layout.pg[name], sql);
}

// ---- the standby --------------------------------------------------------------------------------

async function startStandby(context: ComponentContext, name: PgNodeName): Promise<void> {
  const { layout } = context;
  const node = layout.pg[name];
  if (!(await isUp(layout, node))) {
    if (isInitialised(node) && !existsSync(join(node.dataDir, "standby.signal"))) {
      throw new Error(
        `${name} is recorded as ${layout.primary}'s standby but was a primary (no standby.signal): starting it would make a second primary; ` +
          "rejoin it with `tradeops failback`",
      );
    }
    if (isInitialised(node)) await ensureSlot(layout, layout.primary, slotOf(name));
    await startNode(context, node, { create: (dataDir) => cloneFromPrimary(context, name, dataDir) });
  }
  await waitForStreaming(context, name);
  await applyReplicationMode(context, name);
}

async function cloneFromPrimary({ layout, secrets, log }: ComponentContext, name: PgNodeName, dataDir: string): Promise<void> {
  const primary = layout.pg[layout.primary];
  const slot = slotOf(name);
  await ensureSlot(layout, layout.primary, slot);
  const conninfo = `host=${layout.host} port=${primary.port} user=${layout.database.replicationUser} application_name=${name}`;
  log(`pg_basebackup from ${layout.primary} into ${layout.pg[name].dataDir} (slot ${slot})`);
  const basebackup = asOsUser(layout, pgBin(layout, "pg_basebackup"), ["-D", dataDir, "-R", "-X", "stream", "-c", "fast", "-S", slot, "-d", conninfo]);
  // The password travels in the environment, never on the command line; -R writes it into
  // primary_conninfo (postgresql.auto.conf, inside the 0700 data dir) with the slot name.
  await runOrThrow(layout, basebackup, { what: `pg_basebackup of ${name}`, env: { PGPASSWORD: secrets.replicatorPassword }, timeoutMs: 300_000 });
}

/** The physical slot `slot` exists on `on` (idempotent). */
export async function ensureSlot(layout: SandboxLayout, on: SiteNodeName, slot: string): Promise<void> {
  await psql(layout, nodeOf(layout, on), `SELECT pg_create_physical_replication_slot('${slot}') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '${slot}')`);
}

async function waitForStreaming({ layout }: ComponentContext, name: PgNodeName): Promise<void> {
  const streaming = await waitUntil(async () => (await replicationState(layout, layout.pg[layout.primary], layout.pg[name]))?.state === "streaming", STREAMING_TIMEOUT_MS, 50);
  if (!streaming) {
    throw new Error(
      `${name} does not stream from ${layout.primary} within ${STREAMING_TIMEOUT_MS / 1000} s (a former primary must be rewound first: \`tradeops failback\`); see ${layout.pg[name].log}`,
    );
  }
}

/** `sync` / `async` as the primary reports `name` in pg_stat_replication, or undefined when not streaming. */
async function replicationModeOf(layout: SandboxLayout, name: PgNodeName): Promise<"sync" | "async" | undefined> {
  const replication = await replicationState(layout, layout.pg[layout.primary], layout.pg[name]).catch(() => undefined);
  if (replication?.state !== "streaming") return undefined;
  return replication.syncState === "sync" ? "sync" : replication.syncState === "async" ? "async" : undefined;
}

/**
 * I5: in sync mode every commit on the primary waits for the standby (RPO 0; field notes: 0 of
 * ~23k commits lost at a SIGKILL, vs 5,271 of 24,920 async). Rendered into the primary's
 * postgresql.conf, then reloaded — only once the standby streams.
 */
async function applyReplicationMode({ layout, log }: ComponentContext, name: PgNodeName): Promise<void> {
  const primary = layout.pg[layout.primary];
  if ((await inRecovery(layout, primary)) !== false) {
    log(`${layout.primary} is not accepting writes: leaving synchronous_standby_names to the failover runbooks`);
    return;
  }
  const wanted = layout.mode === "sync" ? name : undefined;
  writePgConfig(layout, primary, wanted);
  await reloadCluster(layout, primary);
  const applied = await waitUntil(async () => (await replicationModeOf(layout, name)) === layout.mode, 10_000, 50);
  if (!applied) {
    throw new Error(`${layout.primary} did not report ${name} as ${layout.mode} after reload (synchronous_standby_names = '${synchronousStandbyNames(wanted)}')`);
  }
}

// ---- role changes (failover, switchover, failback) ------------------------------------------------

/**
 * Makes the stopped `name` a standby of `primary` for its next start: standby.signal, and
 * primary_conninfo (as `replicator`, application_name = the node) with its slot in
 * postgresql.auto.conf — so a fenced old primary that comes back can never take writes.
 */
export async function demoteNode({ layout, secrets }: ComponentContext, name: SiteNodeName, primary: SiteNodeName): Promise<void> {
  const node = nodeOf(layout, name);
  if (postmasterPid(node, layout) !== undefined) throw new Error(`${name} is running: stop it before making it a standby`);
  if (!isInitialised(node)) throw new Error(`${name} has no data dir to make a standby of`);
  const conninfo = [
    `host=${layout.host}`,
    `port=${nodeOf(layout, primary).port}`,
    `user=${layout.database.replicationUser}`,
    `password=${secrets.replicatorPassword}`,
    `application_name=${name}`,
  ].join(" ");
  const autoConf = join(node.dataDir, "postgresql.auto.conf");
  // restore_command goes too: pg_rewind copies the source's auto.conf, and one pgBackRest wrote there names the source's pg1-path.
  const kept = existsSync(autoConf) ? readFileSync(autoConf, "utf8").split("\n").filter((line) => line.trim() && !/^\s*(primary_conninfo|primary_slot_name|restore_command)\s*=/.test(line)) : [];
  writeOwned(layout, autoConf, `${[...kept, `primary_conninfo = '${conninfo.replaceAll("'", "''")}'`, `primary_slot_name = '${slotOf(name)}'`].join("\n")}\n`);
  writeOwned(layout, join(node.dataDir, "standby.signal"), "");
  writePgConfig(layout, node, undefined);
  // Its slot on `primary` is made when it starts as a standby (startStandby): a failover demotes
  // the old primary before the new one is promoted, and must not wait on it.
}

/**
 * pg_rewind of the stopped `name` from `source` (field notes: CHECKPOINT on the source first;
 * --restore-target-wal fetches WAL the target recycled; it copies the source's config files, so
 * the node's own are rendered again), leaving it a standby of `source`.
 */
export async function rewindNode(context: ComponentContext, name: SiteNodeName, source: SiteNodeName): Promise<"rewound" | "no rewind required"> {
  const { layout, secrets, log } = context;
  const node = nodeOf(layout, name);
  if (postmasterPid(node, layout) !== undefined) throw new Error(`${name} is running: stop it before pg_rewind`);
  // A SIGKILLed postmaster's backends linger a moment (field notes); pg_rewind wants the dir to itself.
  await stopAll(clusterProcesses(layout, node));
  await clearStaleLock(layout, node, log);
  // --restore-target-wal runs the target's restore_command; demoteNode renders the config without it again.
  writePgConfig(layout, node, undefined, { restoreCommand: true });
  // pg_rewind finishes a crashed node's recovery in single-user mode, which refuses standby mode.
  for (const signal of ["standby.signal", "recovery.signal"]) rmSync(join(node.dataDir, signal), { force: true });
  await psql(layout, nodeOf(layout, source), "CHECKPOINT");
  const sourceServer = `host=${layout.host} port=${nodeOf(layout, source).port} user=${layout.database.user} dbname=postgres`;
  const argv = asOsUser(layout, pgBin(layout, "pg_rewind"), ["-D", node.dataDir, `--source-server=${sourceServer}`, "--restore-target-wal"]);
  const rewind = await run(layout, argv, { env: { PGPASSWORD: secrets.pgPassword }, timeoutMs: 600_000 });
  if (rewind.exitCode !== 0) {
    // Still fenced: whatever pg_rewind left, the node comes back as a standby, never a primary.
    writeOwned(layout, join(node.dataDir, "standby.signal"), "");
    throw new Error(`pg_rewind of ${name} from ${source} failed (exit ${rewind.exitCode}): ${(rewind.stderr || rewind.stdout).trim().split("\n").slice(-2).join(" | ")}`);
  }
  const result = /no rewind required/.test(rewind.stdout + rewind.stderr) ? "no rewind required" : "rewound";
  log(`pg_rewind: ${result}`);
  await demoteNode(context, name, source);
  return result;
}

/** Deletes the stopped `name`'s data dir, so its next start clones it fresh from the primary. */
export async function discardNode({ layout }: ComponentContext, name: PgNodeName): Promise<void> {
  const node = layout.pg[name];
  if (postmasterPid(node, layout) !== undefined) throw new Error(`${name} is running: stop it before discarding its data`);
  await stopAll(clusterProcesses(layout, node));
  rmSync(node.dataDir, { recursive: true, force: true });
}

// ---- restore (tradeops restore) -----------------------------------------------------------------

/**
 * The quick undo of a restore: the stopped `name`'s data dir is renamed (never deleted) to
 * `<dataDir>.before-restore-<UTC stamp>`, and an empty 0700 dir of the OS user takes its place for
 * pgBackRest to restore into. Returns the path it was renamed to.
 */
export async function setAsideNode({ layout }: ComponentContext, name: PgNodeName): Promise<string> {
  const node = layout.pg[name];
  if (postmasterPid(node, layout) !== undefined) throw new Error(`${name} is running: stop it before moving its data dir aside`);
  if (!isInitialised(node)) throw new Error(`${name} has no data dir (${node.dataDir}) to keep aside`);
  await stopAll(clusterProcesses(layout, node));
  const aside = `${node.dataDir}.before-restore-${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}`;
  renameSync(node.dataDir, aside);
  mkdirSync(node.dataDir, { mode: 0o700 });
  chownToOsUser(layout, node.dataDir);
  return aside;
}

/** Undoes `setAsideNode`: the stopped `name`'s restored (or half-restored) data dir is deleted and `aside` renamed back. */
export async function putBackNode({ layout }: ComponentContext, name: PgNodeName, aside: string): Promise<void> {
  const node = layout.pg[name];
  if (postmasterPid(node, layout) !== undefined) throw new Error(`${name} is running: stop it before putting its data dir back`);
  if (!existsSync(join(aside, "PG_VERSION"))) throw new Error(`${aside} is not a data dir: nothing to put back`);
  await stopAll(clusterProcesses(layout, node));
  rmSync(node.dataDir, { recursive: true, force: true });
  renameSync(aside, node.dataDir);
}

/**
 * Starts the freshly restored `name` (recovery.signal and restore_command written by pgBackRest):
 * its own config rendered over the backup's, no synchronous standby (the standby is rebuilt
 * after), pg_ctl start. Recovery may still be replaying when this returns.
 */
export async function startRestoredNode({ layout, log }: ComponentContext, name: PgNodeName): Promise<void> {
  const node = layout.pg[name];
  await assertPortFree(layout.host, node.port, name);
  writePgConfig(layout, node, undefined);
  await startCluster(layout, node, log);
}

/** Free bytes on the filesystem of `name`'s data dir. */
export function freeBytesFor({ layout }: ComponentContext, name: PgNodeName): number {
  const fs = statfsSync(dirname(layout.pg[name].dataDir));
  return Number(fs.bavail) * Number(fs.bsize);
}
