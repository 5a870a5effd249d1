/**
 * What the runbooks keep on the operator's machine, under `$TRADEOPS_HOME` (contract/home.ts):
 *
 *   stacks/<stack>/audit.jsonl   every run against that stack (one JSON line per step)
 *   active-sandbox.json          the sandbox `tradeops sandbox up` last brought up
 *
 * (The stack lock is not here: it lives where every operator of the cluster meets it, runbooks/locks/.)
 */
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { tradeopsHome } from "../contract/home.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { UsageError } from "./engine/errors.ts";

// ---- where state may go -----------------------------------------------------------------------------

/** Kernel filesystems that hold no files of ours (statfs f_type): state written there hangs or fails oddly. */
const PSEUDO_FILESYSTEMS: Record<number, string> = {
  0x9fa0: "proc",
  0x62656572: "sysfs",
  0x27e0eb: "cgroup",
  0x63677270: "cgroup2",
  0x64626720: "debugfs",
  0x1cd1: "devpts",
};

/**
 * Why `path` cannot hold tradeops' files, or undefined when it can: it (or the directory it would
 * be created in) is on a kernel pseudo filesystem or under /dev, is a file, or is not writable.
 */
export function unusableDir(path: string): string | undefined {
  const target = resolve(path);
  if (/^\/(proc|sys|dev)(\/|$)/.test(target)) return `${target} is under /${target.split("/")[1]}, not a real filesystem`;
  const existing = nearestExisting(target);
  const kind = PSEUDO_FILESYSTEMS[Number(statfsSync(existing).type)];
  if (kind) return `${target} is on the ${kind} filesystem, not a real one`;
  if (!statSync(existing).isDirectory()) return existing === target ? `${target} exists and is not a directory` : `${existing} is not a directory`;
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch {
    return `${existing} is not writable${existing === target ? "" : ` (${target} would be created in it)`}`;
  }
  return undefined;
}

function nearestExisting(path: string): string {
  for (let current = path; ; current = dirname(current)) {
    if (existsSync(current) || current === dirname(current)) return current;
  }
}

/** TRADEOPS_HOME is usable (checked before any command does anything): exit 2 with one line otherwise. */
export function checkHome(): void {
  const raw = process.env.TRADEOPS_HOME;
  if (raw !== undefined && raw.trim() === "") {
    throw new UsageError("TRADEOPS_HOME is set but empty; unset it (the default is <project>/.tradeops) or name a directory");
  }
  const problem = unusableDir(tradeopsHome());
  if (problem) throw new UsageError(`TRADEOPS_HOME: ${problem}`);
}

/** Where a stack's audit log lives. */
export function stateDirFor(outputs: StackOutputs): string {
  return join(tradeopsHome(), "stacks", outputs.stack);
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
