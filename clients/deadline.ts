/**
 * Deadlines for every network call tradeops makes, on either side (runbooks and the sandbox).
 *
 * A call gives up at the earlier of its own cap and the caller's AbortSignal (the engine aborts a
 * step's signal when the step's budget runs out or the operator interrupts the run). Giving up
 * destroys the call's connection, so a hung peer can never keep the process alive, and rejects
 * with `NoAnswer` ("no answer within 5 s"): a hung component is named as hung, not as a failure.
 */
export interface CallOptions {
  /** Aborted by the engine: the step's budget ran out, or SIGINT/SIGTERM. */
  signal?: AbortSignal;
  /** This call's own cap, in milliseconds. */
  timeoutMs?: number;
}

/** A peer accepted the connection (or not) but did not answer in time. */
export class NoAnswer extends Error {
  override name = "NoAnswer";
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`no answer within ${seconds(timeoutMs)}`);
    this.timeoutMs = timeoutMs;
  }
}

/** "5 s", "1.5 s", "300 ms". */
export function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/**
 * Runs `work` under a deadline of `timeoutMs` (or `options.timeoutMs`) and the caller's signal.
 * When either fires first, `abandon` destroys whatever `work` holds open (a socket, a client) and
 * the call rejects: with the signal's reason when the caller aborted, with `NoAnswer` otherwise.
 */
export function withDeadline<T>(
  options: CallOptions & { timeoutMs: number },
  work: (signal: AbortSignal) => Promise<T>,
  abandon: () => void,
): Promise<T> {
  const { timeoutMs, signal: outer } = options;
  if (outer?.aborted) return Promise.reject(abortReason(outer));
  const controller = new AbortController();
  return new Promise<T>((resolve, reject) => {
    const giveUp = (reason: unknown) => {
      controller.abort(reason);
      try {
        abandon();
      } catch {
        // Already closed.
      }
      reject(reason);
    };
    const onOuterAbort = () => giveUp(abortReason(outer!));
    // A ref'd timer: it must fire even when the hung socket is the only thing left in the loop.
    const timer = setTimeout(() => giveUp(new NoAnswer(timeoutMs)), timeoutMs);
    outer?.addEventListener("abort", onOuterAbort, { once: true });
    work(controller.signal)
      .then(resolve, reject)
      .finally(() => {
        clearTimeout(timer);
        outer?.removeEventListener("abort", onOuterAbort);
      });
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? "aborted"));
}
