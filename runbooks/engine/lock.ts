/**
 * One mutating runbook at a time per cluster. `StackLock` is what the engine holds for the whole
 * run; where the lock lives depends on the stack (runbooks/state.ts picks it).
 *
 * `FileLock` is a file created with O_EXCL that names its holder (runbook, pid, operator, start
 * time). A lock whose pid is gone on this host is stale and is taken over, the way PostgreSQL
 * treats a leftover postmaster.pid — so a crashed run never blocks the next one, and a live one
 * can never be overrun.
 */
import { closeSync, lstatSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
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

export type LockRequest = Pick<LockHolder, "runbook" | "runId" | "who">;

export interface StackLock {
  /** Where the lock lives, for messages: a path, an s3:// URL, a Lease name. */
  readonly where: string;
  /** Takes the lock, or throws `Refusal` naming the holder. */
  acquire(request: LockRequest): Promise<void>;
  release(): Promise<void>;
}

export function holderLine(holder: LockHolder): string {
  return `runbook '${holder.runbook}' (pid ${holder.pid} on ${holder.host}, ${holder.who}, since ${holder.since})`;
}

export class FileLock implements StackLock {
  private held = false;
  private readonly releaseOnExit = () => this.releaseNow();
  readonly where: string;

  constructor(where: string) {
    this.where = where;
  }

  async acquire(request: LockRequest): Promise<void> {
    const me: LockHolder = { ...request, pid: process.pid, host: hostname(), since: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.where, "wx", 0o600);
        writeSync(fd, JSON.stringify(me));
        closeSync(fd);
        this.held = true;
        // A process that exits without the engine's finally (a second Ctrl-C) still frees it.
        process.once("exit", this.releaseOnExit);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new Refusal(`cannot create the lock file ${this.where} (${(error as NodeJS.ErrnoException).code})`, "check that its directory exists and is writable");
        }
        if (!lstatSync(this.where).isFile()) {
          throw new Refusal(`the lock path ${this.where} is not a lock file (a directory or a link is in the way)`, `remove it when no runbook is running: rm -r ${this.where}`);
        }
        const current = this.holder();
        if (current && isAlive(current)) {
          throw new Refusal(
            `stack is locked by ${holderLine(current)}`,
            `wait for it to finish; if that process is gone from another host, remove ${this.where}`,
          );
        }
        // Stale (holder died) or unreadable (torn write): take it over once.
        unlinkSync(this.where);
      }
    }
    throw new Refusal(`could not take the stack lock ${this.where}`, "retry in a moment");
  }

  async release(): Promise<void> {
    this.releaseNow();
  }

  private releaseNow(): void {
    if (!this.held) return;
    this.held = false;
    process.removeListener("exit", this.releaseOnExit);
    try {
      unlinkSync(this.where);
    } catch {
      // Already gone: nothing to release.
    }
  }

  holder(): LockHolder | undefined {
    try {
      return JSON.parse(readFileSync(this.where, "utf8")) as LockHolder;
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
