/**
 * How far the DR site is behind (I5, I6), as `dr status`, `dr activate` and `dr failback` measure
 * it: the DR node's replay position and the time of the last transaction it replayed, against the
 * primary's current WAL position when the primary answers, else against the last WAL segment in
 * the repository — all the DR site could ever replay once the primary site is gone.
 */
import type { DrSite, PgNode, StackOutputs } from "../contract/outputs.ts";
import type { OutputsSource, Target } from "./engine/runbook.ts";
import { loadOutputs } from "./outputs.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { currentArchive, readStanzaInfo, walPosition } from "./backup-sets.ts";
import { onPg } from "./connect.ts";
import { oneLine } from "./engine/errors.ts";
import { lsnDiff } from "./role-change.ts";

/** A silent primary gets this long: a site that is down must not slow the measure down. */
const PRIMARY_TIMEOUT_MS = 1_000;

export interface DrNodeState {
  answers: boolean;
  /** Why it did not answer. */
  error?: string;
  inRecovery?: boolean;
  /** Where replay stands (a standby) or the current WAL position (once promoted). */
  lsn?: string;
  replayPaused?: boolean;
  /** Commit time of the last transaction replayed (the primary's clock): the DR site has every commit up to it. */
  lastReplayAt?: Date;
}

export interface PrimaryWalState {
  answers: boolean;
  currentLsn?: string;
  lastArchivedWal?: string;
  lastArchivedAt?: Date;
  /** The archiver's last failure, when it is newer than its last success. */
  archiveFailing?: string;
  /** Completed segments still waiting for archive-push. */
  readySegments?: number;
  /** The primary's archive_timeout (0: none). */
  archiveTimeoutSeconds?: number;
}

export interface DrLag {
  node: DrNodeState;
  primary: PrimaryWalState;
  /** The last segment in the repository (asked of pgBackRest only when the primary does not answer). */
  repositoryLastWal?: string;
  /** WAL the primary has that the DR node has not replayed (null: the primary does not answer). */
  behindBytes: number | null;
  /** The DR node replayed the last segment the repository has (null: unknown). */
  caughtUpWithArchive: boolean | null;
  /**
   * Seconds of commits the DR site lacks — the RPO of an activation now: 0 when it has everything
   * there is to have; else how long ago the oldest commit it lacks can have happened: after the last
   * one it replayed, and — when it replayed the last archived segment — after that segment was
   * archived. Null when it does not answer, or nothing bounds it (no commit replayed since a restart).
   */
  lagSeconds: number | null;
}

export async function drNodeState(outputs: StackOutputs, node: PgNode, signal?: AbortSignal): Promise<DrNodeState> {
  try {
    const row = await onPg(
      outputs,
      node,
      async (client) =>
        (
          await client.query<{ in_recovery: boolean; lsn: string | null; paused: boolean; last_replay: Date | null }>(
            `select pg_is_in_recovery() as in_recovery,
                    case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end::text as lsn,
                    case when pg_is_in_recovery() then pg_get_wal_replay_pause_state() <> 'not paused' else false end as paused,
                    pg_last_xact_replay_timestamp() as last_replay`,
          )
        ).rows[0]!,
      { signal, timeoutMs: 3_000 },
    );
    return { answers: true, inRecovery: row.in_recovery, lsn: row.lsn ?? undefined, replayPaused: row.paused, lastReplayAt: row.last_replay ?? undefined };
  } catch (error) {
    return { answers: false, error: oneLine(error) };
  }
}

export async function primaryWalState(outputs: StackOutputs, primary: PgNode, signal?: AbortSignal): Promise<PrimaryWalState> {
  try {
    const row = await onPg(
      outputs,
      primary,
      async (client) =>
        (
          await client.query<{ in_recovery: boolean; lsn: string | null; wal: string | null; archived_at: Date | null; failed: string | null; failed_at: Date | null; ready: string; timeout: string }>(
            `select pg_is_in_recovery() as in_recovery,
                    case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as lsn,
                    last_archived_wal as wal, last_archived_time as archived_at, last_failed_wal as failed, last_failed_time as failed_at,
                    (select count(*) from pg_ls_archive_statusdir() where name like '%.ready') as ready,
                    current_setting('archive_timeout') as timeout
               from pg_stat_archiver`,
          )
        ).rows[0]!,
      { signal, timeoutMs: PRIMARY_TIMEOUT_MS },
    );
    // A node in recovery is not the primary any more (a fenced one): it has nothing to give the DR site.
    if (row.in_recovery || !row.lsn) return { answers: false };
    const failing = row.failed_at && (!row.archived_at || row.failed_at > row.archived_at) ? `${row.failed} failed at ${row.failed_at.toISOString()}` : undefined;
    return {
      answers: true,
      currentLsn: row.lsn,
      lastArchivedWal: row.wal ?? undefined,
      lastArchivedAt: row.archived_at ?? undefined,
      archiveFailing: failing,
      readySegments: Number(row.ready),
      archiveTimeoutSeconds: durationSeconds(row.timeout),
    };
  } catch {
    return { answers: false };
  }
}

/** The last WAL segment of the stanza's current archive, as pgBackRest lists it. */
export async function repositoryLastWal(outputs: StackOutputs, signal?: AbortSignal): Promise<string | undefined> {
  return currentArchive(await readStanzaInfo(outputs, signal))?.max ?? undefined;
}

export async function measureDrLag(outputs: StackOutputs, dr: DrSite & { database: PgNode }, signal?: AbortSignal, now = new Date()): Promise<DrLag> {
  const [node, primary] = await Promise.all([drNodeState(outputs, dr.database, signal), primaryWalState(outputs, outputs.database.primary, signal)]);
  const repositoryWal = primary.answers ? primary.lastArchivedWal : await repositoryLastWal(outputs, signal).catch(() => undefined);
  const behindBytes = primary.answers && node.lsn ? Math.max(0, lsnDiff(primary.currentLsn!, node.lsn)) : null;
  const caughtUpWithArchive = node.lsn && repositoryWal ? replayedPast(node.lsn, repositoryWal) : null;
  return { node, primary, repositoryLastWal: repositoryWal, behindBytes, caughtUpWithArchive, lagSeconds: lagOf(node, primary, behindBytes, caughtUpWithArchive, now) };
}

function lagOf(node: DrNodeState, primary: PrimaryWalState, behindBytes: number | null, caughtUpWithArchive: boolean | null, now: Date): number | null {
  if (!node.answers) return null;
  if (node.inRecovery === false || behindBytes === 0) return 0;
  // The primary is gone: what the repository has is all there is to have.
  if (!primary.answers && caughtUpWithArchive) return 0;
  // An idle primary: archive_timeout has passed since the last switch, nothing waits to be archived,
  // and no switch came — so it wrote nothing that counts (a commit would have forced one), only
  // records PostgreSQL never switches for (running-transaction snapshots), which the DR node lacks harmlessly.
  if (caughtUpWithArchive && idleSinceArchive(primary, now)) return 0;
  const bounds = [node.lastReplayAt, caughtUpWithArchive ? primary.lastArchivedAt : undefined].filter((at): at is Date => at !== undefined);
  if (!bounds.length) return null;
  const since = Math.max(...bounds.map((at) => at.getTime()));
  return Math.max(0, (now.getTime() - since) / 1000);
}

function idleSinceArchive(primary: PrimaryWalState, now: Date): boolean {
  const timeout = primary.archiveTimeoutSeconds ?? 0;
  if (!timeout || !primary.lastArchivedAt || primary.archiveFailing || primary.readySegments !== 0) return false;
  return now.getTime() - primary.lastArchivedAt.getTime() > timeout * 1000;
}

/** `current_setting('archive_timeout')`: "10s", "1min", "0". */
function durationSeconds(setting: string): number {
  const match = /^(\d+)\s*(ms|s|min|h|d)?$/.exec(setting.trim());
  if (!match) return 0;
  const unit = { ms: 0.001, s: 1, min: 60, h: 3600, d: 86_400 }[(match[2] ?? "s") as "ms" | "s" | "min" | "h" | "d"];
  return Number(match[1]) * unit;
}

/**
 * Replay went past `segment`: its position is in a later segment (replaying a segment's last
 * record, a switch or a full segment, leaves the position at the next segment's start).
 */
export function replayedPast(lsn: string, segment: string): boolean {
  return lsnSegment(lsn) > walPosition(segment);
}

/** The WAL segment position of an LSN (16 MB segments), comparable with `walPosition`. */
export function lsnSegment(lsn: string): number {
  const [high, low] = lsn.split("/").map((part) => Number.parseInt(part, 16));
  return high! * 256 + Math.floor(low! / 0x1000000);
}

/** The DR site's API answers /health (it is out of pilot light). */
export async function drAppUp(dr: DrSite, signal?: AbortSignal): Promise<boolean> {
  if (!dr.opsApi) return false;
  return opsApiRequest(dr.opsApi, "/health", { signal, timeoutMs: 1_000 }).then(
    (answer) => answer.status === 200,
    () => false,
  );
}

/** The stack's outputs as seen from the DR site: its node is the primary, its endpoint the traffic endpoint, its API the ops API. */
export function drSiteOutputs(outputs: StackOutputs, dr: DrSite & { database: PgNode }): StackOutputs {
  return {
    ...outputs,
    database: { ...outputs.database, primary: { ...dr.database, role: "primary" }, standby: undefined, traffic: dr.traffic ?? dr.database },
    opsApi: dr.opsApi ?? outputs.opsApi,
  };
}

/** The `dr` runbooks' target: the stack's outputs, with the DR site read from the stack prod names (`dr.stack`). */
export async function drTarget<Args>(_args: Args, source: OutputsSource): Promise<Target> {
  return { outputs: await loadOutputs(source, undefined, { drSite: true }) };
}
