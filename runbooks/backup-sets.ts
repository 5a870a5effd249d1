/**
 * The PostgreSQL backup sets of a stack's pgBackRest repository and its restorable window, as
 * `backups list` shows them and `restore` checks a target against them (S8, I4, I6).
 *
 * The window runs from the stop time of the oldest backup from which every WAL segment up to the
 * last is archived (the first consistent point; expiry leaves older ones restorable to their own
 * end only) to the time the last WAL segment reached the repository: a target outside it ends in pgBackRest's / PostgreSQL's
 * "recovery target not reached" half-way through a restore, so `restore` refuses it up front.
 * The WAL time is the archived object's LastModified in the bucket, not the primary's
 * pg_stat_archiver: the primary may be the thing that is lost.
 */
import { z } from "zod";
import { s3Client } from "../clients/s3.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { listObjects } from "./bucket-objects.ts";
import { pgbackrest } from "./platform/db-node.ts";

/** `pgbackrest info --output=json`, the parts the restore side reads. */
export const PgbackrestStanzaInfo = z.array(
  z.object({
    name: z.string(),
    status: z.object({ code: z.number(), message: z.string() }),
    archive: z.array(z.object({ id: z.string(), min: z.string().nullable(), max: z.string().nullable() })).default([]),
    backup: z
      .array(
        z.object({
          label: z.string(),
          type: z.enum(["full", "diff", "incr"]),
          prior: z.string().nullable().optional(),
          timestamp: z.object({ start: z.number(), stop: z.number() }),
          info: z.object({ size: z.number(), delta: z.number().optional(), repository: z.object({ size: z.number().optional(), delta: z.number() }) }),
          archive: z.object({ start: z.string().nullable(), stop: z.string().nullable() }),
          error: z.boolean().optional(),
        }),
      )
      .default([]),
  }),
);

export interface PgBackupSet {
  label: string;
  type: "full" | "diff" | "incr";
  /** The backup it depends on (diff/incr). */
  prior: string | null;
  startedAt: Date;
  /** The first moment a restore of this set can stop at. */
  stoppedAt: Date;
  /** Size of the cluster it restores. */
  sizeBytes: number;
  /** What it takes in the repository. */
  repositoryBytes: number;
  walStart: string | null;
  walStop: string | null;
}

export interface RestorableWindow {
  /** The oldest backup's stop time; undefined without a backup. */
  from?: Date;
  /** When the last archived WAL segment reached the repository; undefined when none did. */
  to?: Date;
  lastArchivedWal?: string;
}

export interface Repository {
  sets: PgBackupSet[];
  window: RestorableWindow;
}

type StanzaInfo = z.infer<typeof PgbackrestStanzaInfo>[number];

/** The stack's stanza as `pgbackrest info` reports it; undefined when the repository has none. */
export async function readStanzaInfo(outputs: StackOutputs, signal?: AbortSignal): Promise<StanzaInfo | undefined> {
  const raw = await pgbackrest(outputs)("info", ["--output=json"], signal);
  return PgbackrestStanzaInfo.parse(JSON.parse(raw)).find((s) => s.name === outputs.backup.stanza);
}

/** The archive of the cluster as it is now: the last one pgBackRest lists with a segment in it. */
export function currentArchive(info: StanzaInfo | undefined) {
  return info?.archive.filter((a) => a.max).at(-1);
}

/** The stanza's backup sets (oldest first) and its restorable window. */
export async function readRepository(outputs: StackOutputs, signal?: AbortSignal): Promise<Repository> {
  const info = await readStanzaInfo(outputs, signal);
  const sets: PgBackupSet[] = (info?.backup ?? [])
    .filter((set) => !set.error)
    .map((set) => ({
      label: set.label,
      type: set.type,
      prior: set.prior ?? null,
      startedAt: new Date(set.timestamp.start * 1000),
      stoppedAt: new Date(set.timestamp.stop * 1000),
      sizeBytes: set.info.size,
      repositoryBytes: set.info.repository.size ?? set.info.repository.delta,
      walStart: set.archive.start,
      walStop: set.archive.stop,
    }));
  const archive = currentArchive(info);
  const lastArchivedWal = archive?.max ?? undefined;
  const to = archive?.max ? await archivedAt(outputs, archive.id, archive.max, signal) : undefined;
  if (!archive?.max) return { sets, window: { from: sets[0]?.stoppedAt, to, lastArchivedWal } };
  // The window starts at the oldest backup from which every WAL segment up to the last is still
  // archived: expiry (I7: WAL for the newest fulls only) leaves older backups restorable to their
  // own end but not beyond, and a target in such a gap would fail half-way ("recovery target not reached").
  const archived = await archivedPositions(outputs, archive.id, signal);
  const last = walPosition(archive.max);
  const from = sets.find((set) => set.walStart && continuous(archived, walPosition(set.walStart), last))?.stoppedAt;
  return { sets, window: { from: from ?? sets.at(-1)?.stoppedAt, to, lastArchivedWal } };
}

/** A WAL segment's place in the WAL stream (log × 256 + segment, 16 MB segments), whatever its timeline. */
export function walPosition(segment: string): number {
  return Number.parseInt(segment.slice(8, 16), 16) * 256 + Number.parseInt(segment.slice(16, 24), 16);
}

function continuous(archived: Set<number>, from: number, to: number): boolean {
  for (let position = from; position <= to; position++) if (!archived.has(position)) return false;
  return true;
}

/** The positions of every WAL segment in the archive (`<id>/<first 16>/<segment>-<sha1>.<ext>`). */
async function archivedPositions(outputs: StackOutputs, archiveId: string, signal?: AbortSignal): Promise<Set<number>> {
  const { backup } = outputs;
  const root = backup.prefix.replace(/^\/+|\/+$/g, "");
  const objects = await listObjects(outputs, `${root ? `${root}/` : ""}archive/${backup.stanza}/${archiveId}/`, signal);
  const positions = new Set<number>();
  for (const { key } of objects) {
    const segment = /\/([0-9A-F]{24})-[0-9a-f]{40}/.exec(key)?.[1];
    if (segment) positions.add(walPosition(segment));
  }
  return positions;
}

/** LastModified of WAL segment `wal` in the repository (`<prefix>/archive/<stanza>/<id>/<first 16>/<wal>-<sha1>.<ext>`). */
async function archivedAt(outputs: StackOutputs, archiveId: string, wal: string, signal?: AbortSignal): Promise<Date | undefined> {
  const { backup } = outputs;
  const root = backup.prefix.replace(/^\/+|\/+$/g, "");
  const prefix = `${root ? `${root}/` : ""}archive/${backup.stanza}/${archiveId}/${wal.slice(0, 16)}/${wal}`;
  const s3 = await s3Client(backup);
  const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
  try {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: backup.bucket, Prefix: prefix }), { abortSignal: signal });
    const times = (listed.Contents ?? []).map((object) => object.LastModified?.getTime()).filter((t): t is number => t !== undefined);
    return times.length ? new Date(Math.max(...times)) : undefined;
  } finally {
    s3.destroy();
  }
}

export interface SetVerification {
  status: "valid" | "invalid" | string;
  /** "checksum invalid: 1, missing: 0 …" as pgBackRest counts them. */
  counts: string;
  /** Repository files pgBackRest named as damaged, e.g. `pg_data/base/5/2610.zst`. */
  damaged: string[];
}

/**
 * `pgbackrest verify` (checksums and sizes of every file in the repository against the backup
 * manifests), read per backup set. pgBackRest 2.45 exits 0 whatever it found and has no `--set`:
 * its text output is the answer.
 */
export async function verifyRepository(outputs: StackOutputs, signal?: AbortSignal): Promise<Map<string, SetVerification>> {
  const text = await pgbackrest(outputs)("verify", ["--output=text", "--verbose", "--log-level-console=info", `--process-max=${VERIFY_PROCESSES}`], signal);
  const sets = new Map<string, SetVerification>();
  const seen = new Set<string>();
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const backup = /^\s*backup: (\S+), status: (\w+)/.exec(line);
    if (backup && !seen.has(backup[1]!)) {
      seen.add(backup[1]!);
      sets.set(backup[1]!, { status: backup[2]!, counts: (lines[i + 1] ?? "").trim(), damaged: [] });
    }
  });
  for (const match of text.matchAll(/(?:invalid checksum|invalid size|missing file|file missing)[^']*'([^'/]+)\/([^']+)'/g)) {
    const set = sets.get(match[1]!);
    if (set && !set.damaged.includes(match[2]!)) set.damaged.push(match[2]!);
  }
  return sets;
}

/** Verify reads the whole repository; two workers keep it to about the time of one download of it. */
const VERIFY_PROCESSES = 2;

/** `set` and the backups it is built on (a diff needs its full, an incr its chain). */
export function chainOf(set: PgBackupSet, sets: PgBackupSet[]): PgBackupSet[] {
  const chain = [set];
  for (let prior = set.prior; prior; ) {
    const found = sets.find((s) => s.label === prior);
    if (!found) break;
    chain.push(found);
    prior = found.prior;
  }
  return chain;
}

/** "2026-12-05 16:45:00Z" — what the operator reads, to the second. */
export function utc(date: Date | undefined): string {
  return date ? date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "-";
}

/** "3 h 12 min", "45 s". */
export function age(since: Date, now = new Date()): string {
  const s = Math.max(0, Math.round((now.getTime() - since.getTime()) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}
