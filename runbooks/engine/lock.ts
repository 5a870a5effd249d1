/**
 * One mutating runbook at a time per cluster. `StackLock` is what the engine holds for the whole
 * run; where it lives depends on the stack (runbooks/locks/): a file on the sandbox's machine, an
 * object in the backup bucket, or a Kubernetes Lease — so operators on different laptops meet at
 * the same lock, as Patroni and CloudNativePG meet at theirs in the DCS or the Kubernetes API.
 *
 * `FileLock` (the sandbox's) is a file created with O_EXCL that names its holder (runbook, pid,
 * operator, start time). A lock whose pid is gone on this host is stale and is taken over, the way
 * PostgreSQL treats a leftover postmaster.pid — so a crashed run never blocks the next one, and a
 * live one can never be overrun.
 */
import { closeSync, lstatSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from "node:fs";
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

/** A successful acquire: `tookOverFrom` names the holder of a stale lock it replaced (audited). */
export interface LockAcquired {
  tookOverFrom?: LockHolder;
}

export interface StackLock {
  /** Where the lock lives, for messages: a path, an s3:// URL, a Lease. */
  readonly where: string;
  /** Takes the lock, or throws `Refusal` naming the holder. */
  acquire(request: LockRequest): Promise<LockAcquired>;
  release(): Promise<void>;
  /** Aborted when a held lock is lost (another holder took it over, or renewals failed past its TTL). */
  readonly lost: AbortSignal;
  /** Who holds it now (read-only). */
  holder(): Promise<LockHolder | undefined>;
  /** Removes it whoever holds it (`tradeops unlock --force`); returns who held it. */
  breakLock(): Promise<LockHolder | undefined>;
}

export function holderLine(holder: LockHolder): string {
  return `runbook '${holder.runbook}' (pid ${holder.pid} on ${holder.host}, ${holder.who}, since ${holder.since})`;
}

/** Our identity in a lock. */
export function holderOf(request: LockRequest): LockHolder {
  return { ...request, pid: process.pid, host: hostname(), since: new Date().toISOString() };
}

export class FileLock implements StackLock {
  readonly where: string;
  // A holder's pid either lives (the lock is held) or not (it is taken over): nothing to renew, never lost.
  readonly lost = new AbortController().signal;
  private held = false;
  private readonly releaseOnExit = () => this.releaseNow();

  constructor(where: string) {
    this.where = where;
  }

  async acquire(request: LockRequest): Promise<LockAcquired> {
    const me = holderOf(request);
    let tookOverFrom: LockHolder | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.where, "wx", 0o600);
        writeSync(fd, JSON.stringify(me));
        closeSync(fd);
        this.held = true;
        // A process that exits without the engine's finally (a second Ctrl-C) still frees it.
        process.once("exit", this.releaseOnExit);
        return { tookOverFrom };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new Refusal(`cannot create the lock file ${this.where} (${(error as NodeJS.ErrnoException).code})`, "check that its directory exists and is writable");
        }
        if (!lstatSync(this.where).isFile()) {
          throw new Refusal(`the lock path ${this.where} is not a lock file (a directory or a link is in the way)`, `remove it when no runbook is running: rm -r ${this.where}`);
        }
        const current = this.read();
        if (current && isAlive(current)) {
          throw new Refusal(
            `stack is locked by ${holderLine(current)}`,
            `wait for it to finish; if that process is gone from another host, \`tradeops unlock --force --yes\``,
          );
        }
        // Stale (holder died) or unreadable (torn write): take it over once.
        tookOverFrom = current;
        unlinkSync(this.where);
      }
    }
    throw new Refusal(`could not take the stack lock ${this.where}`, "retry in a moment");
  }

  async release(): Promise<void> {
    this.releaseNow();
  }

  async holder(): Promise<LockHolder | undefined> {
    return this.read();
  }

  async breakLock(): Promise<LockHolder | undefined> {
    const current = this.read();
    rmSync(this.where, { force: true });
    return current;
  }

  private releaseNow(): void {
    if (!this.held) return;
    this.held = false;
    process.removeListener("exit", this.releaseOnExit);
    rmSync(this.where, { force: true });
  }

  private read(): LockHolder | undefined {
    try {
      return JSON.parse(readFileSync(this.where, "utf8")) as LockHolder;
    } catch {
      return undefined;
    }
  }
}

/**
 * The lock a run holds, lent to the runbooks it runs inside itself (the drill runs failover and
 * failback): they must not try to take it again, and they stop when the holder loses it.
 */
export class LentLock implements StackLock {
  readonly where: string;
  readonly lost: AbortSignal;
  constructor(holder: StackLock) {
    this.where = `${holder.where} (held by the enclosing run)`;
    this.lost = holder.lost;
  }
  async acquire(): Promise<LockAcquired> {
    return {};
  }
  async release(): Promise<void> {}
  async holder(): Promise<LockHolder | undefined> {
    return undefined;
  }
  async breakLock(): Promise<LockHolder | undefined> {
    return undefined;
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
