/**
 * What the runbooks keep on the operator's machine, under `$TRADEOPS_HOME` (contract/home.ts):
 *
 *   stacks/<stack>/audit.jsonl   every run against that stack (one JSON line per step)
 *   active-sandbox.json          the sandbox `tradeops sandbox up` last brought up
 *
 * and the stack lock, keyed by the cluster's identity (its backup repository), not by the path of
 * an outputs file: every copy of one cluster's outputs maps to one lock.
 */
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { tradeopsHome } from "../contract/home.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { FileLock, type StackLock } from "./engine/lock.ts";

/** Where a stack's audit log lives. */
export function stateDirFor(outputs: StackOutputs): string {
  return join(tradeopsHome(), "stacks", outputs.stack);
}

/**
 * The cluster behind the outputs: its backup repository (endpoint, bucket, prefix, stanza) names
 * one PostgreSQL cluster, whatever dir or file the outputs were copied to.
 */
export function clusterKey(outputs: StackOutputs): string {
  const { endpoint, port, bucket, prefix, stanza } = outputs.backup;
  const identity = `${outputs.stack}|${endpoint}:${port}|${bucket}${prefix}|${stanza}`;
  return createHash("sha256").update(identity).digest("hex").slice(0, 16);
}

/** Machine-wide, so two operators (or two TRADEOPS_HOMEs) on one host meet at the same lock. */
function lockDir(): string {
  const dir = resolve(process.env.TRADEOPS_LOCK_DIR ?? join(tmpdir(), "tradeops-locks"));
  mkdirSync(dir, { recursive: true, mode: 0o1777 });
  return dir;
}

export function lockFor(outputs: StackOutputs): StackLock {
  return new FileLock(join(lockDir(), `${outputs.stack}-${clusterKey(outputs)}.lock`));
}

// ---- the active sandbox ---------------------------------------------------------------------------

const ActiveSandbox = z.object({ dir: z.string().min(1) });
const activeSandboxFile = () => join(tradeopsHome(), "active-sandbox.json");

/** The sandbox commands act on: `--dir`, else the one `sandbox up` last started, else `$TRADEOPS_HOME/sandbox`. */
export function sandboxDir(explicit?: string): string {
  if (explicit) return resolve(explicit);
  return activeSandboxDir() ?? join(tradeopsHome(), "sandbox");
}

function activeSandboxDir(): string | undefined {
  try {
    const parsed = ActiveSandbox.safeParse(JSON.parse(readFileSync(activeSandboxFile(), "utf8")));
    return parsed.success ? parsed.data.dir : undefined;
  } catch {
    return undefined;
  }
}

export function recordActiveSandbox(dir: string): void {
  mkdirSync(tradeopsHome(), { recursive: true });
  writeFileSync(activeSandboxFile(), `${JSON.stringify({ dir: resolve(dir) })}\n`);
  chmodSync(activeSandboxFile(), 0o644);
}

/** After a purge: the default applies again. */
export function forgetActiveSandbox(dir: string): void {
  if (activeSandboxDir() === resolve(dir)) rmSync(activeSandboxFile(), { force: true });
}
