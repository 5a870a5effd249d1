/**
 * The stack lock as an object in the backup bucket, for stacks whose operators are on different
 * machines (dev, prod, dr). S3 conditional writes make it a lock: create with `If-None-Match: *`
 * (exactly one of two racing writers gets 200, the other 412), renew and release with
 * `If-Match: <etag>` (a holder that lost the lock finds out at its next renewal).
 *
 * Staleness is judged with the store's clock only (the object's Last-Modified against the Date of
 * the answer), so operators' clocks never matter: a lock not renewed for its TTL can be taken over,
 * atomically (`If-Match` on the stale ETag), and the takeover names the old holder.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import type { BackupRepository } from "../../contract/outputs.ts";
import { s3Client } from "../../clients/s3.ts";
import { Refusal } from "../engine/errors.ts";
import { holderLine, holderOf, type LockAcquired, type LockHolder, type LockRequest } from "../engine/lock.ts";
import { DEFAULT_LEASE_TIMING, RenewedLock, type LeaseTiming } from "./renewed.ts";

type LockBody = LockHolder & { ttlMs: number; renewedAt: string };

export class S3Lock extends RenewedLock {
  readonly where: string;
  private etag?: string;
  private me?: LockHolder;
  private client?: Promise<S3Client>;
  private readonly repo: BackupRepository;
  private readonly key: string;

  constructor(repo: BackupRepository, key: string, timing: LeaseTiming = DEFAULT_LEASE_TIMING) {
    super(timing);
    this.repo = repo;
    this.key = key;
    this.where = `s3://${repo.bucket}/${key}`;
  }

  async acquire(request: LockRequest): Promise<LockAcquired> {
    this.me = holderOf(request);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.put({ IfNoneMatch: "*" })) return this.held({});
      const current = await this.read();
      if (!current) continue; // released in between: try again
      if (current.ageMs <= current.body.ttlMs) {
        const expires = new Date(Date.now() + current.body.ttlMs - current.ageMs).toISOString();
        throw new Refusal(
          `stack is locked by ${holderLine(current.body)} at ${this.where}`,
          `wait for it to finish (if it stopped renewing, its lock expires at ${expires}); a run that is surely gone: \`tradeops unlock --force --yes\``,
        );
      }
      // Stale: replace exactly that version, so two takers cannot both win.
      if (await this.put({ IfMatch: current.etag })) return this.held({ tookOverFrom: current.body });
    }
    throw new Refusal(`could not take the stack lock ${this.where}: it changed hands three times`, "retry in a moment");
  }

  async release(): Promise<void> {
    await this.stopRenewing();
    if (!this.etag) return;
    const etag = this.etag;
    this.etag = undefined;
    const { DeleteObjectCommand } = await import("@aws-sdk/client-s3");
    // If-Match: never delete a lock another run has taken over since.
    await (await this.s3()).send(new DeleteObjectCommand({ Bucket: this.repo.bucket, Key: this.key, IfMatch: etag })).catch(() => {});
    (await this.s3()).destroy();
  }

  async holder(): Promise<LockHolder | undefined> {
    return (await this.read())?.body;
  }

  async breakLock(): Promise<LockHolder | undefined> {
    const current = await this.read();
    const { DeleteObjectCommand } = await import("@aws-sdk/client-s3");
    await (await this.s3()).send(new DeleteObjectCommand({ Bucket: this.repo.bucket, Key: this.key }));
    return current?.body;
  }

  private held(acquired: LockAcquired): LockAcquired {
    this.startRenewing();
    return acquired;
  }

  protected async renewOnce(): Promise<true | string> {
    if (await this.put({ IfMatch: this.etag! })) return true;
    const now = await this.read();
    return now ? `another run holds it now: ${holderLine(now.body)}` : "it was removed (tradeops unlock --force?)";
  }

  protected forget(): void {
    this.etag = undefined;
  }

  /** A conditional PUT of our body: true when written, false when the condition did not hold. */
  private async put(condition: { IfNoneMatch: "*" } | { IfMatch: string }): Promise<boolean> {
    const { PutObjectCommand } = await import("@aws-sdk/client-s3");
    const body: LockBody = { ...this.me!, ttlMs: this.timing.ttlMs, renewedAt: new Date().toISOString() };
    try {
      const written = await (await this.s3()).send(
        new PutObjectCommand({ Bucket: this.repo.bucket, Key: this.key, Body: JSON.stringify(body), ContentType: "application/json", ...condition }),
      );
      this.etag = written.ETag;
      return true;
    } catch (error) {
      if (lostRace(error)) return false;
      throw error;
    }
  }

  /** The lock as the store has it, with its age on the store's own clock. */
  private async read(): Promise<{ body: LockBody; etag: string; ageMs: number } | undefined> {
    const { GetObjectCommand } = await import("@aws-sdk/client-s3");
    try {
      const answer = await (await this.s3()).send(new GetObjectCommand({ Bucket: this.repo.bucket, Key: this.key }));
      const body = JSON.parse(await answer.Body!.transformToString()) as LockBody;
      const serverNow = serverDates.get(answer) ?? Date.now();
      return { body, etag: answer.ETag!, ageMs: serverNow - (answer.LastModified?.getTime() ?? 0) };
    } catch (error) {
      if ((error as { name?: string }).name === "NoSuchKey" || httpStatus(error) === 404) return undefined;
      throw error;
    }
  }

  private s3(): Promise<S3Client> {
    this.client ??= s3Client(this.repo).then((client) => {
      client.middlewareStack.add(
        (next) => async (args) => {
          const result = await next(args);
          const date = (result.response as { headers?: Record<string, string> }).headers?.date;
          if (date && result.output && typeof result.output === "object") serverDates.set(result.output, Date.parse(date));
          return result;
        },
        { step: "deserialize", name: "tradeopsServerDate" },
      );
      return client;
    });
    return this.client;
  }
}

/** The store's clock per answer (its Date header), read by `read()`. */
const serverDates = new WeakMap<object, number>();

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** 412: the condition did not hold; 409: a concurrent conditional request on the key won (AWS docs); 404: If-Match on a lock that is gone. */
function lostRace(error: unknown): boolean {
  const status = httpStatus(error);
  return status === 412 || status === 409 || status === 404 || (error as { name?: string }).name === "PreconditionFailed";
}
