/**
 * What both PostgreSQL nodes share: rendering their config, pg_ctl start/stop as the OS user,
 * psql over the unix socket (peer auth, so no password on any command line), role checks.
 */
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { renderPgHba, renderPostgresqlConf, standardHbaRules } from "../../infra/config-files/postgresql.ts";
import type { RequiredBinary, ComponentContext } from "../component.ts";
import type { PgNodeLayout, SandboxLayout } from "../layout.ts";
import {
  asOsUser,
  assertPortFree,
  belongsToSandbox,
  chownToOsUser,
  isAlive,
  livePid,
  logTail,
  osUserIds,
  processesWorkingIn,
  readPidFile,
  removeFile,
  run,
  runOrThrow,
  sendSignal,
  stopAll,
  stopProcess,
  waitUntil,
  writePidFile,
} from "../processes.ts";

export const PG_START_TIMEOUT_MS = 60_000;

export const pgBin = (layout: SandboxLayout, name: string) => join(layout.pgBinDir, name);

/** PostgreSQL binaries under pgBinDir, with the package of that major version (postgresql-15 by default). */
export function pgBinaries(layout: SandboxLayout, ...names: string[]): RequiredBinary[] {
  const major = /postgresql\/(\d+)\/bin\/?$/.exec(layout.pgBinDir)?.[1] ?? "15";
  return names.map((name) => ({ binary: pgBin(layout, name), debianPackage: `postgresql-${major}` }));
}

/** A complete data dir: initdb / pg_basebackup write into `<dir>.partial` and rename on success. */
export function isInitialised(node: PgNodeLayout): boolean {
  return existsSync(join(node.dataDir, "PG_VERSION"));
}

/**
 * Starts one node: refuses a port another process holds, creates its data dir on the first start
 * (`create` fills it: initdb on pg-a, pg_basebackup on pg-b), renders its config, then pg_ctl start.
 */
export async function startNode(
  sandbox: ComponentContext,
  node: PgNodeLayout,
  opts: { create: (dataDir: string) => Promise<void>; synchronousStandby?: string; fromRepository?: boolean },
): Promise<void> {
  const { layout } = sandbox;
  await assertPortFree(layout.host, node.port, node.name);
  if (!isInitialised(node)) await createDataDir(layout, node, opts.create);
  writePgConfig(layout, node, opts.synchronousStandby, { fromRepository: opts.fromRepository });
  await startCluster(layout, node, sandbox.log);
}

/** `fill` writes into an empty `<dir>.partial` (0700, the OS user's); it becomes the data dir only when `fill` succeeds. */
async function createDataDir(layout: SandboxLayout, node: PgNodeLayout, fill: (dataDir: string) => Promise<void>): Promise<void> {
  const partial = `${node.dataDir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true, mode: 0o700 });
  chownToOsUser(layout, dirname(partial), partial);
  await fill(partial);
  renameSync(partial, node.dataDir);
}

/** Writes a file the server reads, owned by its OS user, 0600 (pg_hba and conf hold no secret, but the data dir is 0700 anyway). */
export function writeOwned(layout: SandboxLayout, file: string, text: string, mode = 0o600): void {
  writeFileSync(file, text, { mode });
  chownToOsUser(layout, file);
}

/**
 * A segment with a commit in it is archived at least this often (the stacks render 60 s too): point-
 * in-time restore and `backups check` see recent WAL on a quiet database. With a DR site, 10 s: the
 * DR node, fed from the repository alone, never lacks more (its RPO bound).
 */
export const ARCHIVE_TIMEOUT_SECONDS = 60;
export const DR_ARCHIVE_TIMEOUT_SECONDS = 10;

/**
 * postgresql.conf + pg_hba.conf of one node, rendered at every start so ports and paths always
 * match the layout (field notes: pg_rewind copies postgresql.conf from its source). Without
 * restore_command unless asked: each node streams on a slot, and the lookup slows every promotion.
 * `fromRepository`: the DR node, a standby fed by archive-get alone, asking the repository every second.
 */
export function writePgConfig(layout: SandboxLayout, node: PgNodeLayout, synchronousStandby?: string, opts: { restoreCommand?: boolean; fromRepository?: boolean } = {}): void {
  const extra = {
    archive_timeout: `${layout.dr ? DR_ARCHIVE_TIMEOUT_SECONDS : ARCHIVE_TIMEOUT_SECONDS}s`,
    ...(opts.fromRepository ? { wal_retrieve_retry_interval: "1s" } : {}),
  };
  const conf = renderPostgresqlConf({
    listenAddresses: layout.host,
    port: node.port,
    unixSocketDirectories: layout.pgSocketDir,
    clusterName: node.name,
    synchronousStandby,
    maxConnections: 50,
    archive: { pgbackrestConfig: layout.pgbackrest.config, stanza: layout.pgbackrest.stanza, pgPath: node.dataDir, restoreCommand: (opts.restoreCommand ?? false) || (opts.fromRepository ?? false) },
    extra,
  });
  writeOwned(layout, join(node.dataDir, "postgresql.conf"), conf);
  const hba = renderPgHba(standardHbaRules({ replicationUser: layout.database.replicationUser, osSuperuser: layout.osUser }));
  writeOwned(layout, join(node.dataDir, "pg_hba.conf"), hba);
}

/** The postmaster's pid when it is alive and ours (postmaster.pid may outlive a SIGKILL). */
export function postmasterPid(node: PgNodeLayout, layout: SandboxLayout): number | undefined {
  const pid = readPidFile(join(node.dataDir, "postmaster.pid"));
  return pid !== undefined && isAlive(pid) && belongsToSandbox(pid, layout.dir) ? pid : undefined;
}

export async function pgReady(layout: SandboxLayout, node: PgNodeLayout): Promise<boolean> {
  const result = await run(layout, [pgBin(layout, "pg_isready"), "-q", "-h", layout.host, "-p", String(node.port), "-t", "1"]);
  return result.exitCode === 0;
}

export async function isUp(layout: SandboxLayout, node: PgNodeLayout): Promise<boolean> {
  return postmasterPid(node, layout) !== undefined && (await pgReady(layout, node));
}

/** Runs SQL as the OS superuser over the socket; returns unaligned, tuples-only output. */
export async function psql(layout: SandboxLayout, node: PgNodeLayout, sql: string, database = "postgres"): Promise<string> {
  const argv = asOsUser(layout, pgBin(layout, "psql"), [
    // terse: an error must not echo the failing statement, which may carry a password.
    "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=terse",
    "-h", layout.pgSocketDir, "-p", String(node.port), "-d", database, "-f", "-",
  ]);
  const output = await runOrThrow(layout, argv, { input: sql, what: `psql on ${node.name}`, timeoutMs: 30_000 });
  return output.trim();
}

/** `true` standby, `false` primary, `undefined` not reachable. */
export async function inRecovery(layout: SandboxLayout, node: PgNodeLayout): Promise<boolean | undefined> {
  if (!(await isUp(layout, node))) return undefined;
  return (await psql(layout, node, "SELECT pg_is_in_recovery()")) === "t";
}

export async function startCluster(layout: SandboxLayout, node: PgNodeLayout, log: (line: string) => void = () => {}): Promise<void> {
  await clearStaleLock(layout, node, log);
  touchOwned(layout, node.log);
  const argv = asOsUser(layout, pgBin(layout, "pg_ctl"), [
    "start", "-D", node.dataDir, "-l", node.log, "-w", "-t", String(PG_START_TIMEOUT_MS / 1000), "-s",
  ]);
  const result = await run(layout, argv, { timeoutMs: PG_START_TIMEOUT_MS + 5_000 });
  const pid = readPidFile(join(node.dataDir, "postmaster.pid"));
  if (pid !== undefined) writePidFile(node.pidFile, pid);
  const tail = () => logTail(node.log) || result.stderr.trim() || "empty";
  if (result.exitCode !== 0) {
    throw new Error(`${node.name} failed to start (pg_ctl exit ${result.exitCode}; log: ${tail()}); see ${node.log}`);
  }
  if (!(await waitUntil(() => pgReady(layout, node), 10_000))) {
    throw new Error(`${node.name} started but does not accept connections on port ${node.port} (log: ${tail()}); see ${node.log}`);
  }
}

/**
 * Field notes: after a SIGKILL of the postmaster, postmaster.pid and its backends linger a few
 * seconds, and an unreaped (zombie) postmaster still answers kill(pid, 0) — some init processes reap
 * orphans only every second or so: PostgreSQL then refuses to start, and pg_rewind's single-user
 * run fails ("lock file already exists"). With the postmaster dead, stop its backends and drop the
 * lock files: the data dir's, and the socket's, which outlives a data dir deleted for a fresh clone.
 */
export async function clearStaleLock(layout: SandboxLayout, node: PgNodeLayout, log: (line: string) => void): Promise<void> {
  const dead = (pid: number | undefined): pid is number => pid !== undefined && !isAlive(pid);
  const lockFile = join(node.dataDir, "postmaster.pid");
  const pid = readPidFile(lockFile);
  if (dead(pid)) {
    const backends = clusterProcesses(layout, node);
    log(`${node.name}: postmaster ${pid} is gone; clearing its lock file${backends.length ? ` and ${backends.length} orphaned backend(s)` : ""}`);
    await stopAll(backends);
    removeFile(lockFile);
  }
  const socket = join(layout.pgSocketDir, `.s.PGSQL.${node.port}`);
  if (dead(readPidFile(`${socket}.lock`))) for (const file of [`${socket}.lock`, socket]) removeFile(file);
}

export async function reloadCluster(layout: SandboxLayout, node: PgNodeLayout): Promise<void> {
  await runOrThrow(layout, asOsUser(layout, pgBin(layout, "pg_ctl"), ["reload", "-D", node.dataDir, "-s"]), {
    what: `pg_ctl reload of ${node.name}`,
  });
}

/** A fast shutdown that takes longer is stuck (an archive-push retrying a dead store): immediate shutdown then. */
const FAST_SHUTDOWN_MS = 30_000;

/**
 * Fast shutdown — SIGINT to the postmaster, what `pg_ctl stop -m fast` sends — waited for at 20 ms
 * (pg_ctl polls at 100 ms: that is inside a switchover's write gap); then an immediate shutdown
 * (SIGQUIT), then SIGKILL; then its backends are waited out (field notes: postmaster.pid and
 * shared memory linger a few seconds after a SIGKILL).
 */
export async function stopCluster(layout: SandboxLayout, node: PgNodeLayout, log: (line: string) => void): Promise<void> {
  const pid = postmasterPid(node, layout) ?? ownPid(node, layout);
  if (pid !== undefined) {
    sendSignal(pid, "SIGINT");
    if (!(await waitUntil(async () => !isAlive(pid), FAST_SHUTDOWN_MS, 20))) {
      log(`${node.name}: fast shutdown did not finish within ${FAST_SHUTDOWN_MS / 1000} s; immediate shutdown of pid ${pid}`);
      sendSignal(pid, "SIGQUIT");
      if (!(await waitUntil(async () => !isAlive(pid), 5_000, 20))) await stopProcess(pid, 0);
    }
  }
  const leftovers = clusterProcesses(layout, node);
  if (leftovers.length) log(`${node.name}: stopping ${leftovers.length} leftover backend(s) ${leftovers.join(", ")}`);
  await stopAll(leftovers);
  removeFile(node.pidFile);
}

function ownPid(node: PgNodeLayout, layout: SandboxLayout): number | undefined {
  return livePid(node.pidFile, layout.dir);
}

/** The cluster's processes, a killed postmaster's orphaned backends included. */
export function clusterProcesses(layout: SandboxLayout, node: PgNodeLayout): number[] {
  return processesWorkingIn(node.dataDir, osUserUid(layout));
}

function osUserUid(layout: SandboxLayout): number | undefined {
  return process.getuid?.() === 0 ? osUserIds(layout.osUser).uid : process.getuid?.();
}

function touchOwned(layout: SandboxLayout, file: string): void {
  closeSync(openSync(file, "a", 0o600));
  chownToOsUser(layout, file);
}

/** The replication state of `standby` as seen from the primary's pg_stat_replication. */
export async function replicationState(
  layout: SandboxLayout,
  primary: PgNodeLayout,
  standby: PgNodeLayout,
): Promise<{ state: string; syncState: string } | undefined> {
  const row = await psql(
    layout,
    primary,
    `SELECT state || ',' || sync_state FROM pg_stat_replication WHERE application_name = '${standby.name}'`,
  );
  if (!row) return undefined;
  const [state = "", syncState = ""] = row.split("\n")[0]!.split(",");
  return { state, syncState };
}
