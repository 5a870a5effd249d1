/**
 * Which stack lock a stack's outputs name (contract: `lock`), keyed by the cluster's identity, not
 * by the path of an outputs file: every copy of one cluster's outputs maps to one lock.
 *
 *   sandbox              a file in the machine-wide lock dir, `sandbox-<cluster key>.lock`
 *   dev / prod / dr      an object in the backup bucket (`locks<prefix>/<stanza>.json`), or a Lease
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { StackOutputs } from "../../contract/outputs.ts";
import { FileLock, type StackLock } from "../engine/lock.ts";
import { KubernetesLeaseLock } from "./kubernetes-lease.ts";
import { S3Lock } from "./s3.ts";

/**
 * The cluster behind the outputs: its backup repository (endpoint, bucket, prefix, stanza) names
 * one PostgreSQL cluster, whatever dir or file the outputs were copied to.
 */
export function clusterKey(outputs: StackOutputs): string {
  const { endpoint, port, bucket, prefix, stanza } = outputs.backup;
  const identity = `${outputs.stack}|${endpoint}:${port}|${bucket}${prefix}|${stanza}`;
  return createHash("sha256").update(identity).digest("hex").slice(0, 16);
}

/** Machine-wide, so two operators (or two TRADEOPS_HOMEs) on one host meet at the same lock file. */
function lockDir(): string {
  const dir = resolve(process.env.TRADEOPS_LOCK_DIR || join(tmpdir(), "tradeops-locks"));
  mkdirSync(dir, { recursive: true, mode: 0o1777 });
  return dir;
}

/** The default S3 key: next to the pgBackRest repository, one lock per stanza. */
export function defaultS3LockKey(outputs: StackOutputs): string {
  return `locks${outputs.backup.prefix.replace(/\/+$/, "")}/${outputs.backup.stanza}.json`;
}

export function lockFor(outputs: StackOutputs): StackLock {
  const location = outputs.lock ?? (outputs.platform.kind === "sandbox" ? { kind: "file" as const } : { kind: "s3" as const, key: defaultS3LockKey(outputs) });
  switch (location.kind) {
    case "file":
      return new FileLock(join(lockDir(), `${outputs.stack}-${clusterKey(outputs)}.lock`));
    case "s3":
      return new S3Lock(outputs.backup, location.key);
    case "kubernetes-lease":
      return new KubernetesLeaseLock(location);
  }
}
