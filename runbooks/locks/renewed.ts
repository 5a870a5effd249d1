/**
 * What the two shared-store locks (an S3 object, a Kubernetes Lease) have in common: a holder
 * renews its lock every `renewMs`, one renewal at a time; a lock not renewed for `ttlMs` is stale
 * and may be taken over; a holder that finds its lock gone or taken stops its run (`lost`), and one
 * that cannot reach the store keeps trying until the TTL says the lock may be someone else's.
 */
import { StepFailure } from "../engine/errors.ts";
import type { LockAcquired, LockHolder, LockRequest, StackLock } from "../engine/lock.ts";

export interface LeaseTiming {
  /**
   * A lock not renewed for this long is stale. 60 s: a crashed run blocks the next one for at most a
   * minute, and a holder may miss three renewals (a store hiccup, a 10 s request timeout) first.
   * @default 60_000
   */
  ttlMs: number;
  /** How often a holder renews. @default 15_000 (a quarter of the TTL) */
  renewMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = { ttlMs: 60_000, renewMs: 15_000 };

export abstract class RenewedLock implements StackLock {
  abstract readonly where: string;
  private readonly lostController = new AbortController();
  readonly lost = this.lostController.signal;
  protected readonly timing: LeaseTiming;
  private renewing?: NodeJS.Timeout;
  /** The renewal in flight, if any: release waits for it (else it rewrites a lock just deleted). */
  private renewal?: Promise<void>;
  private lastRenewedAt = 0;

  constructor(timing: LeaseTiming) {
    this.timing = timing;
  }

  abstract acquire(request: LockRequest): Promise<LockAcquired>;
  abstract release(): Promise<void>;
  abstract holder(): Promise<LockHolder | undefined>;
  abstract breakLock(): Promise<LockHolder | undefined>;

  /**
   * Renews the lock once, conditionally on the version held: `true` when renewed, else why the lock
   * is no longer ours (it was removed, another run holds it). Throws when the store did not answer.
   */
  protected abstract renewOnce(): Promise<true | string>;

  /** Forgets the version held: the lock was lost. */
  protected abstract forget(): void;

  /** Call when the lock was taken: renewals start. */
  protected startRenewing(): void {
    this.lastRenewedAt = Date.now();
    this.renewing = setInterval(() => {
      this.renewal ??= this.renew().finally(() => (this.renewal = undefined));
    }, this.timing.renewMs);
    this.renewing.unref();
  }

  /** Call first in release(): no renewal starts after it, and the one in flight has finished. */
  protected async stopRenewing(): Promise<void> {
    clearInterval(this.renewing);
    await this.renewal;
  }

  private async renew(): Promise<void> {
    if (this.lost.aborted) return;
    try {
      const renewed = await this.renewOnce();
      if (renewed === true) this.lastRenewedAt = Date.now();
      else this.lose(renewed);
    } catch {
      // A hiccup of the store: the next renewal retries, until the TTL says the lock may be gone.
      if (Date.now() - this.lastRenewedAt > this.timing.ttlMs) this.lose(`no renewal succeeded for ${this.timing.ttlMs / 1000} s`);
    }
  }

  /** A lost lock aborts `lost`, which stops the run like an interruption. */
  private lose(why: string): void {
    clearInterval(this.renewing);
    this.forget();
    this.lostController.abort(new StepFailure(`lost the stack lock ${this.where}: ${why}`, "find out what the other run did (`tradeops health`) before re-running"));
  }
}
