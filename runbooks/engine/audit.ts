/**
 * The audit log: one JSON line per step (and per run start/end), appended to `audit.jsonl` in the
 * stack's state dir. Lines are masked before they are written; the file is created 0600.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { dirname } from "node:path";
import type { Masker } from "./mask.ts";

export type AuditResult = "started" | "planned" | "ok" | "skipped" | "refused" | "failed" | "finished";

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

  constructor(
    readonly file: string,
    private readonly masker: Masker,
  ) {
    mkdirSync(dirname(file), { recursive: true });
  }

  write(entry: AuditEntry): void {
    const line = { time: new Date().toISOString(), who: this.who, pid: process.pid, ...this.masker.value(entry) };
    appendFileSync(this.file, `${JSON.stringify(line)}\n`, { mode: 0o600 });
  }
}
