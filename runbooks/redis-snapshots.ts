/**
 * Redis snapshots in the stack's backup bucket (Z6, S8, I7: hourly, kept 24 h): `dump.rdb` under
 * `redis/<id>/dump.rdb` and, written last, `redis/<id>/manifest.json` (SHA-256, size, key count).
 * A snapshot without its manifest is an interrupted upload: never listed, never restored.
 * The object helpers (multipart upload with a hash, download with a hash, manifests) serve the
 * model sets too (model-sets.ts).
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { PassThrough, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Redis } from "ioredis";
import { z } from "zod";
import { s3Client } from "../clients/s3.ts";
import type { StackOutputs } from "../contract/outputs.ts";

export const REDIS_PREFIX = "redis/";
/** Multipart parts of 8 MiB, two in flight: a 1M-key RDB (~100 MB, field notes) is 13 parts. */
const PART_SIZE = 8 * 1024 * 1024;
/** A part or a manifest takes seconds; a stuck request is given this long. */
const S3_TRANSFER_TIMEOUT_MS = 60_000;

export const RedisManifest = z.object({
  kind: z.literal("redis-rdb"),
  id: z.string().regex(/^\d{8}-\d{6}-\d{3}Z$/),
  /** Object key of the RDB in the bucket. */
  key: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sizeBytes: z.number().int().nonnegative(),
  /** Keys in every db when BGSAVE was asked, and after it finished: equal when nothing wrote meanwhile. */
  keys: z.object({ atBgsave: z.number().int().nonnegative(), afterBgsave: z.number().int().nonnegative(), withExpiry: z.number().int().nonnegative() }),
  /** Redis's LASTSAVE of this snapshot (unix seconds) and when it was taken (ISO). */
  lastSave: z.number().int(),
  takenAt: z.string(),
  redisVersion: z.string(),
});
export type RedisManifest = z.infer<typeof RedisManifest>;

/** `20261205-170102-123Z`: sortable, one per millisecond. */
export function snapshotId(at: Date): string {
  const iso = at.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, "")}-${iso.slice(11, 19).replace(/:/g, "")}-${iso.slice(20, 23)}Z`;
}

/** `INFO <section>` as a map of its `key:value` lines. */
export async function redisInfo(redis: Redis, section: string): Promise<Record<string, string>> {
  const text = await redis.info(section);
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((line) => line && !line.startsWith("#"))
      .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
  );
}

/** Keys (and keys with a TTL) in every db, from `INFO keyspace` (`db0:keys=…,expires=…`). */
export async function keyCount(redis: Redis): Promise<{ keys: number; expires: number }> {
  const keyspace = await redisInfo(redis, "keyspace");
  let keys = 0;
  let expires = 0;
  for (const value of Object.values(keyspace)) {
    keys += Number(/keys=(\d+)/.exec(value)?.[1] ?? 0);
    expires += Number(/expires=(\d+)/.exec(value)?.[1] ?? 0);
  }
  return { keys, expires };
}

/** Every complete snapshot (with its manifest), oldest first. */
export async function listRedisSnapshots(outputs: StackOutputs, signal?: AbortSignal): Promise<RedisManifest[]> {
  return (await listManifests(outputs, REDIS_PREFIX, RedisManifest, signal)).sort((a, b) => a.id.localeCompare(b.id));
}

/** Every `<prefix>…/manifest.json` in the bucket that parses with `schema` (the model sets share this). */
export async function listManifests<T>(outputs: StackOutputs, prefix: string, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T[]> {
  const s3 = await s3Client(outputs.backup);
  const { ListObjectsV2Command, GetObjectCommand } = await import("@aws-sdk/client-s3");
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: outputs.backup.bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal: signal });
      keys.push(...(page.Contents ?? []).map((object) => object.Key!).filter((key) => key.endsWith("/manifest.json")));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const manifests: T[] = [];
    for (const key of keys) {
      const object = await s3.send(new GetObjectCommand({ Bucket: outputs.backup.bucket, Key: key }), { abortSignal: signal });
      const parsed = schema.safeParse(JSON.parse(await object.Body!.transformToString()));
      if (parsed.success) manifests.push(parsed.data);
    }
    return manifests;
  } finally {
    s3.destroy();
  }
}

/** Streams `file` to `key` as a multipart upload, hashing on the way; resolves with what was uploaded. */
export async function uploadRdb(outputs: StackOutputs, file: string, key: string, signal?: AbortSignal): Promise<{ sha256: string; sizeBytes: number }> {
  const s3 = await s3Client(outputs.backup, { requestTimeoutMs: S3_TRANSFER_TIMEOUT_MS });
  const { Upload } = await import("@aws-sdk/lib-storage");
  const hashing = hashingStream();
  const body = new PassThrough();
  // One read of the file: what is hashed is exactly what is uploaded (a later BGSAVE renames a new file over the path, not into this one).
  const reading = pipeline(createReadStream(file), hashing.stream, body);
  const upload = new Upload({ client: s3, params: { Bucket: outputs.backup.bucket, Key: key, Body: body }, partSize: PART_SIZE, queueSize: 2, leavePartsOnError: false });
  const abort = () => void upload.abort().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  try {
    await Promise.all([upload.done(), reading]);
    return hashing.result();
  } finally {
    signal?.removeEventListener("abort", abort);
    s3.destroy();
  }
}

export async function putManifest(outputs: StackOutputs, manifest: RedisManifest, signal?: AbortSignal): Promise<string> {
  const key = `${REDIS_PREFIX}${manifest.id}/manifest.json`;
  await putJson(outputs, key, manifest, signal);
  return key;
}

/** One small JSON object (a manifest) at `key`. */
export async function putJson(outputs: StackOutputs, key: string, value: unknown, signal?: AbortSignal): Promise<void> {
  const s3 = await s3Client(outputs.backup);
  const { PutObjectCommand } = await import("@aws-sdk/client-s3");
  try {
    await s3.send(new PutObjectCommand({ Bucket: outputs.backup.bucket, Key: key, Body: JSON.stringify(value, null, 2), ContentType: "application/json" }), { abortSignal: signal });
  } finally {
    s3.destroy();
  }
}

/** Downloads the snapshot's RDB to `dest`, hashing it; the caller compares with the manifest. */
export function downloadRdb(outputs: StackOutputs, manifest: RedisManifest, dest: string, signal?: AbortSignal): Promise<{ sha256: string; sizeBytes: number }> {
  return downloadObject(outputs, manifest.key, dest, signal);
}

/** Downloads the object at `key` to `dest`, hashing it on the way. */
export async function downloadObject(outputs: StackOutputs, key: string, dest: string, signal?: AbortSignal): Promise<{ sha256: string; sizeBytes: number }> {
  const s3 = await s3Client(outputs.backup, { requestTimeoutMs: S3_TRANSFER_TIMEOUT_MS });
  const { GetObjectCommand } = await import("@aws-sdk/client-s3");
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: outputs.backup.bucket, Key: key }), { abortSignal: signal });
    const hashing = hashingStream();
    await pipeline(object.Body as NodeJS.ReadableStream, hashing.stream, createWriteStream(dest, { mode: 0o600 }), { signal });
    return hashing.result();
  } finally {
    s3.destroy();
  }
}

/** A pass-through that hashes (SHA-256) and counts what flows through it, for uploads and downloads alike. */
function hashingStream(): { stream: Transform; result(): { sha256: string; sizeBytes: number } } {
  const hash = createHash("sha256");
  let sizeBytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      sizeBytes += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, result: () => ({ sha256: hash.digest("hex"), sizeBytes }) };
}
