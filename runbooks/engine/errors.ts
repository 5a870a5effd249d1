/**
 * The exit codes every tradeops command keeps: 0 ok, 1 a step failed, 2 usage or input error,
 * 3 refused by a precondition. Anything thrown that is not one of these classes is a step failure.
 */
export const ExitCode = { ok: 0, stepFailed: 1, usage: 2, refused: 3 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Bad flag, bad argument, missing or malformed outputs: nothing was attempted. */
export class UsageError extends Error {
  readonly exitCode = ExitCode.usage;
  override name = "UsageError";
}

/** A precondition does not hold (or a lock is held): nothing was changed, `next` says what to do. */
export class Refusal extends Error {
  readonly exitCode = ExitCode.refused;
  override name = "Refusal";
  readonly next?: string;
  constructor(message: string, next?: string) {
    super(message);
    this.next = next;
  }
}

/** A step's action or verification failed; `next` tells the operator what to run or check. */
export class StepFailure extends Error {
  readonly exitCode = ExitCode.stepFailed;
  override name = "StepFailure";
  readonly next?: string;
  constructor(message: string, next?: string) {
    super(message);
    this.next = next;
  }
}

/** The operator (or a supervisor) stopped the run with SIGINT or SIGTERM. */
export class Interrupted extends StepFailure {
  override name = "Interrupted";
  readonly signal: NodeJS.Signals;
  /** `detail` says what is true after the interruption: "the step completed anyway: …". */
  constructor(signal: NodeJS.Signals, detail?: string) {
    super(`interrupted by ${signal}${detail ? ` ${detail}` : ""}`, "re-run the same command to resume: completed steps are skipped");
    this.signal = signal;
  }
}

export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof UsageError || error instanceof Refusal || error instanceof StepFailure) return error.exitCode;
  return ExitCode.stepFailed;
}

/** One readable line for any error: no stack trace, no multi-line driver dumps. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split("\n").find((line) => line.trim() !== "") ?? "unknown error";
  return firstLine.trim();
}
