/**
 * The audit log: one JSON line per step (and per run start/end), appended to `audit.jsonl` in the
 * stack's state dir. Lines are masked before they are written; the file is created 0600.
 *
 * A run that changes something must be on the record, so its audit log is required: a write that
 * fails stops the run before any step. Read-only and dry runs are recorded when the state dir
 * exists, and never create it (a `--dir` typo must not leave a directory behind).
 */
import { appendFileSync, existsSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { dirname } from "node:path";
import { UsageError } from "./errors.ts";
import type { Masker } from "./mask.ts";

export type AuditResult = "started" | "planned" | "ok" | "skipped" | "refused" | "failed" | "interrupted" | "lock-taken-over" | "finished";

export interface AuditEntry {
  runId: string;
  runbook: string;
  stack: string;
  step?: string;
  index?: number;
  args?: unknown;
  result: AuditResult;
  durationMs?: number;
  error?: string;
  facts?: Record<string, unknown>;
  dryRun?: boolean;
  exitCode?: number;
}

/** Who ran it: the OS user, plus SUDO_USER when escalated, and the host. */
export function operator(): string {
  const user = safeUserName();
  const sudoUser = process.env.SUDO_USER;
  return `${sudoUser && sudoUser !== user ? `${sudoUser} (as ${user})` : user}@${hostname()}`;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? "unknown");
  }
}

export class AuditLog {
  private readonly who = operator();
  readonly file: string;
  private readonly masker: Masker;
  /** Required (a mutating run): failures throw. Otherwise best effort, only into an existing dir. */
  private readonly required: boolean;

  constructor(file: string, masker: Masker, required: boolean) {
    this.file = file;
    this.masker = masker;
    this.required = required;
  }

  write(entry: AuditEntry): void {
    if (!this.required && !existsSync(dirname(this.file))) return;
    const line = { time: new Date().toISOString(), who: this.who, pid: process.pid, ...this.masker.value(entry) };
    try {
      appendFileSync(this.file, `${JSON.stringify(line)}\n`, { mode: 0o600 });
    } catch (error) {
      if (this.required) throw new UsageError(`cannot write the audit log ${this.file} (${(error as NodeJS.ErrnoException).code})`);
    }
  }
}
