/**
 * The backup sets tradeops keeps in the stack's bucket itself, beside pgBackRest's repository:
 * one kind per prefix (`redis/<id>/…`, `logical/<id>/…`, `models/<version>/…`; a new kind is
 * one more entry of `BUCKET_SET_KINDS`). Each kind says where its sets live, which are complete
 * (their manifest, written last, is there), how long I7 keeps them and, where I6 has one, its
 * freshness rule; listing, expiry and `backups check` are the same code for every kind.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { s3Client } from "../clients/s3.ts";
import { MODEL_VERSION_FILE } from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { Refusal, oneLine } from "./engine/errors.ts";
import { checkBackupRepository } from "./probes.ts";
import { REDIS_PREFIX, listRedisSnapshots } from "./redis-snapshots.ts";
import { LOGICAL_PREFIX, listTableDumps } from "./table-dumps.ts";
import { MODELS_PREFIX, listModelSets } from "./model-sets.ts";
import { listObjects } from "./bucket-objects.ts";

/** One set in the bucket: every object under `<prefix><id>/`. */
export interface BucketSet {
  kind: string;
  id: string;
  /** Its manifest's time when complete; else when its newest object was written (an interrupted upload). */
  at: Date;
  /** Its manifest is there: `backups list` shows it and a restore may use it. */
  complete: boolean;
  /** Every object of the set: exactly what expiring it deletes. */
  keys: string[];
  sizeBytes: number;
}

/** One line of `backups check` (I6). */
export interface Freshness {
  /** What is checked, as the operator names it: "Redis snapshot". */
  item: string;
  ok: boolean;
  /** The newest backup of the item (ISO), null when there is none. */
  newest: string | null;
  ageSeconds: number | null;
  maxAgeSeconds: number | null;
  /** Why it is stale and what to run; "" when fresh. */
  detail: string;
}

export interface BucketSetKind {
  /** The word in reports, facts and --json: "redis". */
  kind: string;
  /** "Redis snapshot". */
  title: string;
  /** Key prefix in the backup bucket; a set is every object under `<prefix><id>/`. */
  prefix: string;
  /** I7: how long a set is kept. */
  keepForMs(outputs: StackOutputs): number;
  /** The complete sets (their manifest is written) with the time each was taken. */
  complete(outputs: StackOutputs, signal?: AbortSignal): Promise<Array<{ id: string; takenAt: Date }>>;
  /** I6: this kind's line in `backups check`; a kind without a freshness rule has none. */
  freshness?(outputs: StackOutputs, sets: BucketSet[], now: Date): Freshness | undefined;
}

const HOUR_MS = 3_600_000;

/** Z6 S8 I7: Redis snapshots of `backup --redis`, hourly, kept 24 h. */
const redisSnapshots: BucketSetKind = {
  kind: "redis",
  title: "Redis snapshot",
  prefix: REDIS_PREFIX,
  keepForMs: (outputs) => outputs.retention.redisSnapshotHours * HOUR_MS,
  complete: async (outputs, signal) => (await listRedisSnapshots(outputs, signal)).map((m) => ({ id: m.id, takenAt: new Date(m.takenAt) })),
  freshness: (outputs, sets, now) => newestWithin("Redis snapshot", sets, outputs.freshness.redisSnapshotMaxAgeSeconds, now, "run `tradeops backup --redis`"),
};

/** Z6: logical dumps of chosen tables (`backup --tables`), kept as long as the PostgreSQL fulls. */
const tableDumps: BucketSetKind = {
  kind: "logical",
  title: "table dump",
  prefix: LOGICAL_PREFIX,
  keepForMs: (outputs) => outputs.retention.pgFullDays * 24 * HOUR_MS,
  complete: async (outputs, signal) => (await listTableDumps(outputs, signal)).map((m) => ({ id: m.id, takenAt: new Date(m.takenAt) })),
};

/** I4, I7: model sets (`backup --models`), one per version, kept 90 d; the live version must have one. */
const modelSets: BucketSetKind = {
  kind: "models",
  title: "model set",
  prefix: MODELS_PREFIX,
  keepForMs: (outputs) => outputs.retention.modelDays * 24 * HOUR_MS,
  complete: async (outputs, signal) => (await listModelSets(outputs, signal)).map((m) => ({ id: m.version, takenAt: new Date(m.takenAt) })),
  freshness: (outputs, sets) => {
    const dir = outputs.app?.models?.dir;
    if (!dir) return undefined;
    let live: string;
    try {
      live = readFileSync(join(dir, MODEL_VERSION_FILE), "utf8").trim();
    } catch (error) {
      return { item: "model set", ok: false, newest: null, ageSeconds: null, maxAgeSeconds: null, detail: `cannot read the live model version in ${dir}: ${oneLine(error)}` };
    }
    const backedUp = sets.find((set) => set.complete && set.id === live);
    return backedUp
      ? { item: "model set", ok: true, newest: backedUp.at.toISOString(), ageSeconds: null, maxAgeSeconds: null, detail: "" }
      : { item: "model set", ok: false, newest: null, ageSeconds: null, maxAgeSeconds: null, detail: `the live model version ${live} has no set in the bucket; run \`tradeops backup --models\`` };
  },
};

/** Every kind of set in the bucket. */
export const BUCKET_SET_KINDS: BucketSetKind[] = [redisSnapshots, tableDumps, modelSets];

/** I6: the newest complete set is at most `maxAgeSeconds` old. */
export function newestWithin(item: string, sets: Array<{ at: Date; complete?: boolean }>, maxAgeSeconds: number, now: Date, remedy: string): Freshness {
  const newest = sets.filter((set) => set.complete !== false).map((set) => set.at).sort((a, b) => b.getTime() - a.getTime())[0];
  if (!newest) return { item, ok: false, newest: null, ageSeconds: null, maxAgeSeconds, detail: `none in the repository; ${remedy}` };
  const ageSeconds = Math.max(0, Math.round((now.getTime() - newest.getTime()) / 1000));
  const ok = ageSeconds <= maxAgeSeconds;
  return { item, ok, newest: newest.toISOString(), ageSeconds, maxAgeSeconds, detail: ok ? "" : `${ageSeconds} s old, the policy allows ${maxAgeSeconds} s; ${remedy}` };
}

/** The bucket answers within 3 s: pgBackRest would retry a dead store for tens of seconds (field notes). */
export async function repositoryAnswers(outputs: StackOutputs, signal?: AbortSignal): Promise<void> {
  await checkBackupRepository(outputs, { timeoutMs: 3_000, signal }).catch((error: unknown) => {
    throw new Refusal(`the backup repository does not answer: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
  });
}

/** Every set of `kind` in the bucket, complete or not, oldest first. */
export async function listBucketSets(outputs: StackOutputs, kind: BucketSetKind, signal?: AbortSignal): Promise<BucketSet[]> {
  const complete = new Map((await kind.complete(outputs, signal)).map((set) => [set.id, set.takenAt]));
  const objects = await listObjects(outputs, kind.prefix, signal);
  const sets = new Map<string, BucketSet>();
  for (const object of objects) {
    const id = object.key.slice(kind.prefix.length).split("/")[0]!;
    const set = sets.get(id) ?? { kind: kind.kind, id, at: new Date(0), complete: complete.has(id), keys: [], sizeBytes: 0 };
    set.keys.push(object.key);
    set.sizeBytes += object.size;
    if (object.lastModified > set.at) set.at = object.lastModified;
    sets.set(id, set);
  }
  for (const set of sets.values()) if (set.complete) set.at = complete.get(set.id)!;
  return [...sets.values()].sort((a, b) => a.at.getTime() - b.at.getTime() || a.id.localeCompare(b.id));
}

/**
 * I7: the sets of one kind that retention removes: complete ones older than the kind keeps them,
 * but never the newest complete one (a kind whose backups stopped keeps its last), and what an
 * interrupted upload left once it is as old (a younger one may still be uploading).
 */
export function expiredSets(sets: BucketSet[], keepForMs: number, now: Date): BucketSet[] {
  const cutoff = now.getTime() - keepForMs;
  const newestComplete = sets.filter((set) => set.complete).at(-1);
  return sets.filter((set) => set !== newestComplete && set.at.getTime() < cutoff);
}

/** Deletes exactly `keys`; resolves with the ones still listed afterwards (none when it worked). */
export async function deleteObjects(outputs: StackOutputs, keys: string[], signal?: AbortSignal): Promise<string[]> {
  const s3 = await s3Client(outputs.backup);
  const { DeleteObjectCommand } = await import("@aws-sdk/client-s3");
  try {
    // One request per object: DeleteObjects needs a checksum header some S3-compatible stores reject; sets are a few objects each.
    for (const key of keys) await s3.send(new DeleteObjectCommand({ Bucket: outputs.backup.bucket, Key: key }), { abortSignal: signal });
  } finally {
    s3.destroy();
  }
  const prefixes = [...new Set(keys.map((key) => key.slice(0, key.indexOf("/") + 1)))];
  const left = new Set((await Promise.all(prefixes.map((prefix) => listObjects(outputs, prefix, signal)))).flat().map((object) => object.key));
  return keys.filter((key) => left.has(key));
}
