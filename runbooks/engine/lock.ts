/**
 * One mutating runbook at a time per stack. The lock is a file created with O_EXCL that names its
 * holder (runbook, pid, operator, start time). A lock whose pid is gone on this host is stale and
 * is taken over, the way PostgreSQL treats a leftover postmaster.pid — so a crashed run never
 * blocks the next one, and a live one can never be overrun.
 */
import { openSync, readFileSync, unlinkSync, writeSync, closeSync } from "node:fs";
import { hostname } from "node:os";
import { Refusal } from "./errors.ts";

export interface LockHolder {
  runbook: string;
  runId: string;
  pid: number;
  host: string;
  who: string;
  since: string;
}

export class StackLock {
  private held = false;

  constructor(readonly file: string) {}

  acquire(holder: Omit<LockHolder, "pid" | "host" | "since">): void {
    const me: LockHolder = { ...holder, pid: process.pid, host: hostname(), since: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.file, "wx", 0o600);
        writeSync(fd, JSON.stringify(me));
        closeSync(fd);
        this.held = true;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        const current = this.holder();
        if (current && isAlive(current)) {
          throw new Refusal(
            `stack is locked by runbook '${current.runbook}' (pid ${current.pid} on ${current.host}, ${current.who}, since ${current.since})`,
            `wait for it to finish; if that process is gone from another host, remove ${this.file}`,
          );
        }
        // Stale (holder died) or unreadable (torn write): take it over once.
        unlinkSync(this.file);
      }
    }
    throw new Refusal(`could not take the stack lock ${this.file}`, "retry in a moment");
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      unlinkSync(this.file);
    } catch {
      // Already gone: nothing to release.
    }
  }

  holder(): LockHolder | undefined {
    try {
      return JSON.parse(readFileSync(this.file, "utf8")) as LockHolder;
    } catch {
      return undefined;
    }
  }
}

/** A holder on another host cannot be checked from here: treat it as alive. */
function isAlive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
