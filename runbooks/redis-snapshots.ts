/**
 * Redis snapshots in the stack's backup bucket (Z6, S8, I7: hourly, kept 24 h): `dump.rdb` under
 * `redis/<id>/dump.rdb` and, written last, `redis/<id>/manifest.json` (SHA-256, size, key count).
 * A snapshot without its manifest is an interrupted upload: never listed, never restored.
 */
import type { Redis } from "ioredis";
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { downloadObject, listManifests, putManifest as putSetManifest, setId, uploadFile, type Stored } from "./bucket-objects.ts";

export const REDIS_PREFIX = "redis/";

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

export const snapshotId = setId;

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
export function listRedisSnapshots(outputs: StackOutputs, signal?: AbortSignal): Promise<RedisManifest[]> {
  return listManifests(outputs, REDIS_PREFIX, RedisManifest, signal);
}

/** Streams `file` to `key` as a multipart upload, hashing on the way (a later BGSAVE renames a new file over the path, not into this one). */
export function uploadRdb(outputs: StackOutputs, file: string, key: string, signal?: AbortSignal): Promise<Stored> {
  return uploadFile(outputs, file, key, signal);
}

export function putManifest(outputs: StackOutputs, manifest: RedisManifest, signal?: AbortSignal): Promise<string> {
  return putSetManifest(outputs, REDIS_PREFIX, manifest, signal);
}

/** Downloads the snapshot's RDB to `dest`, hashing it; the caller compares with the manifest. */
export function downloadRdb(outputs: StackOutputs, manifest: RedisManifest, dest: string, signal?: AbortSignal): Promise<Stored> {
  return downloadObject(outputs, manifest.key, dest, signal);
}
