/**
 * The DR site's PostgreSQL node `pg-dr` (I5, I6): created with `pgbackrest restore --type=standby`
 * from the S3 repository — never from the primary — and kept current by `restore_command =
 * pgbackrest archive-get`, WAL shipped through the bucket as a cross-region site gets it. It lags
 * by at most the primary's archive_timeout plus one second of polling.
 *
 * `dr activate` promotes it; from then on it starts as the site's primary (its data dir decides,
 * not the layout). `dr failback` makes it a standby fed from the repository again.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { ComponentContext, SandboxComponent } from "../component.ts";
import { DR_NODE, slotOf, type PgNodeLayout, type PgNodeName, type SandboxLayout } from "../layout.ts";
import { chownToOsUser, runOrThrow, stopAll, waitUntil } from "../processes.ts";
import { pgbackrestArgv, stanzaInfo } from "./backup-stanza.ts";
import { demoteNode, ensureSlot, rewindNode } from "./pg-node.ts";
import {
  clusterProcesses,
  inRecovery,
  isInitialised,
  isUp,
  pgBinaries,
  postmasterPid,
  psql,
  replicationState,
  startCluster,
  startNode,
  stopCluster,
  writeOwned,
  writePgConfig,
} from "./postgres.ts";

const STREAMING_TIMEOUT_MS = 30_000;

const drNode = (layout: SandboxLayout): PgNodeLayout => {
  if (!layout.dr) throw new Error(`the sandbox at ${layout.dir} has no DR site (\`tradeops sandbox up --with-dr\`)`);
  return layout.dr.node;
};

export const pgDr: SandboxComponent = {
  name: "pg-dr",
  startStep: (layout) =>
    layout.dr?.activeSite === "dr" ? "Start pg-dr, the DR site's primary" : "Start the DR site's standby pg-dr (restored from the repository, fed by archive-get)",
  stopStep: () => "Stop the DR site's PostgreSQL pg-dr (pg_ctl stop -m fast)",
  port: (layout) => drNode(layout).port,
  requires: (layout) => [...pgBinaries(layout, "pg_ctl", "psql", "pg_isready"), { binary: "pgbackrest", debianPackage: "pgbackrest" }],
  logFile: (layout) => drNode(layout).log,
  pid: (layout) => postmasterPid(drNode(layout), layout),
  isUp: (layout) => isUp(layout, drNode(layout)),

  async start(context) {
    const node = drNode(context.layout);
    // A standby (a new node is restored as one) replays from the repository; a promoted one archives into it.
    const fromRepository = !isInitialised(node) || existsSync(join(node.dataDir, "standby.signal"));
    await startNode(context, node, { create: (dataDir) => restoreFromRepository(context, dataDir), fromRepository });
  },

  async verify({ layout }) {
    const node = drNode(layout);
    const role = await inRecovery(layout, node);
    if (role === undefined) throw new Error(`pg-dr does not accept connections on port ${node.port}`);
    if (layout.dr!.activeSite === "dr" && role) throw new Error(`the DR site is active but pg-dr is in recovery; see ${node.log}`);
    if (layout.dr!.activeSite === "primary" && !role) {
      throw new Error("pg-dr accepts writes while the primary site is active (two primaries): `tradeops dr failback` makes it a standby again");
    }
  },

  stop: (layout, log) => stopCluster(layout, drNode(layout), log),

  async describe(layout) {
    const node = drNode(layout);
    const role = await inRecovery(layout, node);
    if (role === undefined) return undefined;
    if (!role) return "primary (DR site active)";
    const replayed = await psql(layout, node, "SELECT coalesce(pg_last_wal_replay_lsn()::text, '-') || ',' || coalesce(round(extract(epoch FROM now() - pg_last_xact_replay_timestamp()))::text, '-')");
    const [lsn, age] = replayed.split(",");
    return `standby (WAL from the repository), replayed to ${lsn}, last transaction ${age === "-" ? "none yet" : `${age} s ago`}`;
  },
};

/**
 * `pgbackrest restore --type=standby` of the newest backup into `dataDir`; a repository without a
 * backup gets a full one first (a new sandbox). The restore_command pgBackRest writes names the
 * dir it restored into (the `.partial` one), so it is dropped: the node's own config renders it.
 */
async function restoreFromRepository({ layout, log }: ComponentContext, dataDir: string): Promise<void> {
  const info = await stanzaInfo(layout);
  if (!info) throw new Error(`the repository does not answer (stanza ${layout.pgbackrest.stanza}); pg-dr is restored from it`);
  if (!info.backup.length) {
    log("the repository has no backup yet: taking a full one to seed the DR site");
    await runOrThrow(layout, pgbackrestArgv(layout, "--log-level-console=warn", "backup", "--type=full"), { what: "pgbackrest backup (seeding the DR site)", timeoutMs: 600_000 });
  }
  log(`pgbackrest restore --type=standby into ${drNode(layout).dataDir}`);
  await runOrThrow(layout, pgbackrestArgv(layout, "--log-level-console=warn", `--pg1-path=${dataDir}`, "restore", "--type=standby"), {
    what: "pgbackrest restore of pg-dr",
    timeoutMs: 600_000,
  });
  dropRestoreCommand(layout, dataDir);
}

function dropRestoreCommand(layout: SandboxLayout, dataDir: string): void {
  const autoConf = join(dataDir, "postgresql.auto.conf");
  if (!existsSync(autoConf)) return;
  const kept = readFileSync(autoConf, "utf8")
    .split("\n")
    .filter((line) => line.trim() && !/^\s*(restore_command|primary_conninfo|primary_slot_name)\s*=/.test(line));
  writeOwned(layout, autoConf, kept.length ? `${kept.join("\n")}\n` : "");
}

/**
 * `dr failback`'s last step: the stopped pg-dr becomes a standby fed from the repository again
 * (standby.signal; no primary_conninfo, so it never streams; archive-get on the latest timeline).
 * Its data must not be ahead of the primary's: `dr failback` rewinds it from the primary first.
 */
export async function drToStandby({ layout }: ComponentContext): Promise<void> {
  const node = drNode(layout);
  if (postmasterPid(node, layout) !== undefined) throw new Error("pg-dr is running: stop it before making it a standby");
  await stopAll(clusterProcesses(layout, node));
  dropRestoreCommand(layout, node.dataDir);
  rmSync(join(node.dataDir, "recovery.signal"), { force: true });
  writeOwned(layout, join(node.dataDir, "standby.signal"), "");
  writePgConfig(layout, node, undefined, { fromRepository: true });
}

/** How a node of the pair was re-seeded from the DR site. */
export type Reseeded = "rewound" | "no rewind required" | "restored from a fresh backup of pg-dr";

/**
 * `dr failback`: the stopped (or crashed) `name` of the pair follows pg-dr — pg_rewind from it, or,
 * when that cannot work (its data dir is gone, its WAL history too), `pgbackrest restore
 * --type=standby --delta` of a fresh backup taken from pg-dr — made its standby on a slot of its own
 * there, and started; resolves once it streams.
 */
export async function followDrNode(context: ComponentContext, name: PgNodeName): Promise<Reseeded> {
  const { layout, log } = context;
  const node = layout.pg[name];
  if (postmasterPid(node, layout) !== undefined) await stopCluster(layout, node, log);
  let reseeded: Reseeded;
  try {
    if (!isInitialised(node)) throw new Error(`${name} has no data dir (${node.dataDir})`);
    reseeded = await rewindNode(context, name, DR_NODE);
  } catch (error) {
    log(`pg_rewind of ${name} from pg-dr cannot work (${error instanceof Error ? error.message : String(error)}): restoring it from a fresh backup of pg-dr`);
    await restoreFromDrBackup(context, name);
    reseeded = "restored from a fresh backup of pg-dr";
  }
  await ensureSlot(layout, DR_NODE, slotOf(name));
  await startCluster(layout, node, log);
  const streaming = await waitUntil(async () => (await replicationState(layout, drNode(layout), node))?.state === "streaming", STREAMING_TIMEOUT_MS, 50);
  if (!streaming) throw new Error(`${name} does not stream from pg-dr within ${STREAMING_TIMEOUT_MS / 1000} s; see ${node.log}`);
  return reseeded;
}

/**
 * A backup of pg-dr (the repository's pg1 pointed at it, the pair's pg2 left out: both are down),
 * restored over `name`'s data dir with `--delta` (files that match stay), as a standby of pg-dr.
 */
async function restoreFromDrBackup(context: ComponentContext, name: PgNodeName): Promise<void> {
  const { layout, log } = context;
  const node = layout.pg[name];
  const dr = drNode(layout);
  await stopAll(clusterProcesses(layout, node));
  log("pgbackrest backup of pg-dr (incremental when the repository allows)");
  const fromDr = [`--pg1-path=${dr.dataDir}`, `--pg1-port=${dr.port}`, "--reset-pg2-path", "--reset-pg2-port", "--reset-pg2-socket-path"];
  await runOrThrow(layout, pgbackrestArgv(layout, "--log-level-console=warn", ...fromDr, "backup", "--type=incr"), { what: "pgbackrest backup of pg-dr", timeoutMs: 1_800_000 });
  if (!existsSync(node.dataDir)) {
    mkdirSync(node.dataDir, { recursive: true, mode: 0o700 });
    chownToOsUser(layout, node.dataDir);
  }
  // A crashed postmaster's lock file would stop the restore ("postmaster.pid exists").
  rmSync(join(node.dataDir, "postmaster.pid"), { force: true });
  log(`pgbackrest restore --type=standby --delta into ${node.dataDir}`);
  await runOrThrow(layout, pgbackrestArgv(layout, "--log-level-console=warn", `--pg1-path=${node.dataDir}`, "restore", "--type=standby", "--delta"), { what: `pgbackrest restore of ${name}`, timeoutMs: 1_800_000 });
  await demoteNode(context, name, DR_NODE);
}

/**
 * `dr failback`'s end: pg-dr (stopped by the switch back, or still running) is rewound from
 * `source` when its WAL went past the switch point, made a standby fed from the repository, and
 * started; it then follows `source`'s new timeline through the archive.
 */
export async function drBackToStandby(context: ComponentContext, source: PgNodeName): Promise<"rewound" | "no rewind required"> {
  const { layout, log } = context;
  const node = drNode(layout);
  if (postmasterPid(node, layout) !== undefined) await stopCluster(layout, node, log);
  const rewound = await rewindNode(context, DR_NODE, source);
  await drToStandby(context);
  await startCluster(layout, node, log);
  return rewound;
}
