/**
 * Backup sets stored as plain objects in the stack's backup bucket (Redis snapshots, logical table
 * dumps): one data object streamed up with its SHA-256 computed on the way, and a manifest written
 * last under the same id. An upload without its manifest is an interrupted one: never listed,
 * never restored. pgBackRest keeps its own repository; this is the rest of I7's sets.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { PassThrough, Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { z } from "zod";
import { s3Client } from "../clients/s3.ts";
import type { StackOutputs } from "../contract/outputs.ts";

/** Multipart parts of 8 MiB, two in flight: a 1M-key RDB (~100 MB, field notes) is 13 parts. */
const PART_SIZE = 8 * 1024 * 1024;
/** A part or a manifest takes seconds; a stuck request is given this long. */
const S3_TRANSFER_TIMEOUT_MS = 60_000;

export interface Stored {
  sha256: string;
  sizeBytes: number;
}

/** `20261205-170102-123Z`: sortable, one per millisecond. */
export function setId(at: Date): string {
  const iso = at.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, "")}-${iso.slice(11, 19).replace(/:/g, "")}-${iso.slice(20, 23)}Z`;
}

/** Every object under `prefix`, with its size and time. */
export async function listObjects(outputs: StackOutputs, prefix: string, signal?: AbortSignal): Promise<Array<{ key: string; size: number; lastModified: Date }>> {
  const s3 = await s3Client(outputs.backup);
  const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
  try {
    const objects: Array<{ key: string; size: number; lastModified: Date }> = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: outputs.backup.bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal: signal });
      for (const object of page.Contents ?? []) objects.push({ key: object.Key!, size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return objects;
  } finally {
    s3.destroy();
  }
}

/** Every `<prefix>…/manifest.json` that parses with `schema`, in key order (S3 lists keys sorted: sortable ids come oldest first). */
export async function listManifests<T>(outputs: StackOutputs, prefix: string, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T[]> {
  const keys = (await listObjects(outputs, prefix, signal)).map((object) => object.key).filter((key) => key.endsWith("/manifest.json"));
  const s3 = await s3Client(outputs.backup);
  const { GetObjectCommand } = await import("@aws-sdk/client-s3");
  try {
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

/** Streams `source` to `key` as a multipart upload, hashing on the way; resolves with what was stored. */
export async function uploadStream(outputs: StackOutputs, source: Readable, key: string, signal?: AbortSignal): Promise<Stored> {
  const s3 = await s3Client(outputs.backup, { requestTimeoutMs: S3_TRANSFER_TIMEOUT_MS });
  const { Upload } = await import("@aws-sdk/lib-storage");
  const hashing = hashingStream();
  const body = new PassThrough();
  // One read of the source: what is hashed is exactly what is uploaded.
  const reading = pipeline(source, hashing.stream, body);
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

export function uploadFile(outputs: StackOutputs, file: string, key: string, signal?: AbortSignal): Promise<Stored> {
  return uploadStream(outputs, createReadStream(file), key, signal);
}

/** The manifest, written last: only then is the set listed. */
export async function putManifest(outputs: StackOutputs, prefix: string, manifest: { id: string }, signal?: AbortSignal): Promise<string> {
  const key = `${prefix}${manifest.id}/manifest.json`;
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

/** Downloads `key` to `dest` (mode 0600), hashing it; the caller compares with the manifest. */
export async function downloadObject(outputs: StackOutputs, key: string, dest: string, signal?: AbortSignal): Promise<Stored> {
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
function hashingStream(): { stream: Transform; result(): Stored } {
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
