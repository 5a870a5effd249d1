/**
 * The step engine: runs a runbook's steps in order with everything that makes that safe at 3 a.m.
 *
 *  - `--dry-run` prints the numbered plan and changes nothing (no lock, no step code runs).
 *  - destructive steps need `--yes`, or the stack name typed back on a TTY — asked before any step runs.
 *  - mutating runbooks hold the stack lock for the whole run.
 *  - every step leaves one masked audit line; a failed step stops the run with its name, the
 *    reason and what to do next; a step whose effect is already there (`isDone`) is skipped,
 *    so re-running after a fix resumes where it stopped.
 *
 * A run is three phases: plan (the steps, or the dry-run plan), confirm-and-lock, run-steps.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { describeIssue, secretValues } from "../../contract/outputs.ts";
import { AuditLog, operator, type AuditEntry } from "./audit.ts";
import type { RunResult, StepRecord } from "./document.ts";
import { ExitCode, Interrupted, Refusal, StepFailure, UsageError, exitCodeOf, oneLine } from "./errors.ts";
import { FileLock, type StackLock } from "./lock.ts";
import { Masker } from "./mask.ts";
import { createProgress, seconds, type StepOutcome } from "./progress.ts";
import type { ArgsSchema, Interruption, Runbook, Step, StepContext, Target } from "./runbook.ts";

export type { RunResult } from "./document.ts";

export interface RunOptions<T extends Target = Target> {
  /** What the runbook acts on (its outputs name the stack, and every secret to mask). */
  target: T;
  /** Where the stack's audit.jsonl lives. */
  stateDir: string;
  /** The stack lock a mutating run holds. @default a lock file in `stateDir` */
  lock?: StackLock;
  dryRun?: boolean;
  yes?: boolean;
  /** Progress stream (stderr by default). */
  progressTo?: Writable & { isTTY?: boolean };
  /** Asks the operator to type a confirmation; absent when there is no TTY. */
  confirm?: (question: string) => Promise<string>;
  /** Suppresses progress (for --json, where stdout must stay one document). */
  quiet?: boolean;
  signal?: AbortSignal;
  /**
   * Told of a changing run's start and end (runbooks/notify.ts sends them to the stack's channels);
   * resolves with the channels that failed, which never fail the run.
   */
  events?: (event: RunEvent) => Promise<string[]>;
}

export interface RunEvent {
  kind: "start" | "success" | "failure";
  runbook: string;
  stack: string;
  step?: string;
  message?: string;
  next?: string;
  durationMs?: number;
}

export function auditFileIn(stateDir: string): string {
  return join(stateDir, "audit.jsonl");
}

/** Validates a runbook's arguments; a bad one is a usage error naming the argument. */
export function parseArgs<Args>(runbook: { name: string; args: ArgsSchema<Args> }, rawArgs: unknown): Args {
  const parsed = runbook.args.safeParse(rawArgs);
  if (!parsed.success) throw new UsageError(`${runbook.name}: ${describeIssue(parsed.error)}`);
  return parsed.data;
}

/** One run in progress: what every phase shares. */
interface Run {
  base: { runId: string; runbook: string; stack: string };
  /** A read-only runbook's steps change nothing, whatever they say. */
  mutates: boolean;
  masker: Masker;
  audit: AuditLog;
  auditArgs: unknown;
  result: RunResult;
}

export async function runRunbook<Args, T extends Target>(runbook: Runbook<Args, T>, args: Args, options: RunOptions<T>): Promise<RunResult> {
  const outputs = options.target.outputs;
  const masker = new Masker(secretValues(outputs));
  const mutating = runbook.mutates && !options.dryRun;
  const auditFile = auditFileIn(options.stateDir);
  const base = { runId: randomUUID(), runbook: runbook.name, stack: outputs.stack };
  const run: Run = {
    base,
    mutates: runbook.mutates,
    masker,
    audit: new AuditLog(auditFile, masker, mutating),
    auditArgs: masker.value(args),
    result: { ...base, dryRun: Boolean(options.dryRun), exitCode: ExitCode.ok, steps: [], facts: {}, report: null, auditFile },
  };

  const steps = runbook.steps(args, options.target);
  if (options.dryRun && runbook.dryRunReads) return planAfterReads(run, steps, options, runbook.report);
  if (options.dryRun) return plan(run, steps);

  if (mutating) ensureStateDir(options.stateDir);
  const takesLock = runbook.mutates && runbook.takesLock !== false;
  const lock = takesLock ? (options.lock ?? new FileLock(join(options.stateDir, "lock"))) : undefined;
  await confirmAndLock(run, steps, lock, options);
  const startedAt = performance.now();
  const announce = async (event: Omit<RunEvent, "runbook" | "stack">) => {
    if (!mutating || !options.events) return;
    const failed = await options.events(masker.value({ ...event, runbook: base.runbook, stack: base.stack })).catch((error: unknown) => [oneLine(error)]);
    if (failed.length) run.result.facts.notificationsFailed = failed.map((line) => masker.text(line));
  };
  try {
    await announce({ kind: "start" });
    // A lock lost mid-run (another run took it over) stops the run like an interruption would.
    const signal = lock ? AbortSignal.any([options.signal ?? new AbortController().signal, lock.lost]) : options.signal;
    await runSteps(run, steps, { ...options, signal });
    const durationMs = Math.round(performance.now() - startedAt);
    await announce(run.result.failure ? { kind: "failure", ...run.result.failure, durationMs } : { kind: "success", durationMs });
  } finally {
    await lock?.release();
    run.audit.write({ ...base, result: "finished", exitCode: run.result.exitCode, facts: run.result.facts });
  }
  if (runbook.report) {
    const report = masker.value(runbook.report(run.result.facts));
    run.result.report = report.json;
    run.result.reportText = report.text;
  }
  return run.result;
}

/** --dry-run: the numbered plan, one `planned` audit line per step, no step code. */
function plan(run: Run, steps: Step[]): RunResult {
  const { base, result, masker, audit, auditArgs } = run;
  result.plan = planLines(steps).map((line) => masker.text(line));
  steps.forEach((step, i) => audit.write({ ...base, step: step.name, index: i + 1, args: auditArgs, result: "planned", dryRun: true }));
  result.steps = steps.map((step, i) => ({ index: i + 1, name: step.name, outcome: "planned", durationMs: 0 }));
  return result;
}

/** --dry-run of a `dryRunReads` runbook: its read-only steps run (unlocked), then the plan names what they found. */
async function planAfterReads<T extends Target>(run: Run, steps: Step[], options: RunOptions<T>, report: Runbook<unknown, T>["report"]): Promise<RunResult> {
  await runSteps(run, steps.filter((step) => step.readOnly), options);
  const { result } = run;
  if (result.exitCode !== ExitCode.ok) return result;
  const read = result.steps;
  result.plan = planLines(steps).map((line) => run.masker.text(line));
  result.steps = steps.map((step, i) => {
    if (step.readOnly) return { ...read.find((r) => r.name === step.name)!, index: i + 1 };
    run.audit.write({ ...run.base, step: step.name, index: i + 1, args: run.auditArgs, result: "planned", dryRun: true });
    return { index: i + 1, name: step.name, outcome: "planned" as const, durationMs: 0 };
  });
  if (report) result.report = run.masker.value(report(result.facts).json);
  return result;
}

/** --yes or a typed confirmation for destructive steps, then the stack lock; a refusal is on the record too. */
async function confirmAndLock<T extends Target>(run: Run, steps: Step[], lock: StackLock | undefined, options: RunOptions<T>): Promise<void> {
  try {
    await confirmDestructive(steps, options);
    const acquired = await lock?.acquire({ runbook: run.base.runbook, runId: run.base.runId, who: operator() });
    if (acquired?.tookOverFrom) {
      // Who held it, and that it was taken over: the record an operator looks for after a crash.
      run.audit.write({ ...run.base, result: "lock-taken-over", facts: { lock: lock!.where, previousHolder: acquired.tookOverFrom } });
    }
  } catch (error) {
    // Refused before any step: still on the record (who tried what, and why it was refused).
    run.audit.write({ ...run.base, args: run.auditArgs, result: "refused", error: run.masker.text(oneLine(error)), exitCode: exitCodeOf(error) });
    throw error;
  }
}

/** Each step in order; the first failure stops the run with the step, the reason and what to do next. */
async function runSteps<T extends Target>(run: Run, steps: Step[], options: RunOptions<T>): Promise<void> {
  const { base, result, masker, audit, auditArgs } = run;
  audit.write({ ...base, args: auditArgs, result: "started" });
  const progress = createProgress(options.progressTo ?? process.stderr, options.quiet);
  const runSignal = options.signal ?? new AbortController().signal;
  for (const [i, step] of steps.entries()) {
    const index = i + 1;
    const stepFacts: Record<string, unknown> = {};
    const budget = stepBudget(step, runSignal);
    const ctx: StepContext = {
      signal: budget.signal,
      log: (line) => progress.log(masker.text(line)),
      // Masked as recorded: facts reach the report, --json and the audit line.
      record: (key, value) => {
        stepFacts[key] = result.facts[key] = masker.value(value);
      },
    };
    progress.start(index, steps.length, step.name);
    const startedAt = performance.now();
    const { outcome, error, interruption } = await runStep(run.mutates ? step : { ...step, readOnly: true }, ctx);
    // What is true after an interruption is a fact like any other: the report, --json and the audit line carry it.
    if (interruption) ctx.record("interrupted", interruption);
    const durationMs = Math.round(performance.now() - startedAt);
    budget.done();
    const message = error ? masker.text(oneLine(error)) : undefined;
    progress.end(index, steps.length, step.name, outcome, durationMs, message);
    result.steps.push({ index, name: step.name, outcome, durationMs, error: message } satisfies StepRecord);
    audit.write({
      ...base,
      step: step.name,
      index,
      args: auditArgs,
      result: outcome,
      durationMs,
      error: message,
      facts: Object.keys(stepFacts).length ? stepFacts : undefined,
    } satisfies AuditEntry);

    if (error) {
      result.exitCode = exitCodeOf(error);
      result.failure = { step: step.name, message: message!, next: masker.text(nextAction(step, error, steps.slice(0, i))) };
      return;
    }
  }
}

/** The step's signal: the run's (SIGINT/SIGTERM), and its own budget when it has one. */
function stepBudget(step: Step, runSignal: AbortSignal): { signal: AbortSignal; done(): void } {
  if (step.budgetMs === undefined) return { signal: runSignal, done: () => {} };
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(new StepFailure(`did not finish within ${seconds(step.budgetMs!)}`)), step.budgetMs);
  return { signal: AbortSignal.any([runSignal, budget.signal]), done: () => clearTimeout(timer) };
}

/** After an abort, the step's own work gets this long to wind down (its clients give up on the same signal). */
const WIND_DOWN_MS = 10_000;
/** After an interruption, finding out whether the step's effect is in place gets this long. */
const AFTERMATH_MS = 30_000;

/** `work`, or the signal's reason once it aborts and the work has wound down (or WIND_DOWN_MS passed). */
function untilAborted<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      const timer = setTimeout(() => reject(signal.reason), WIND_DOWN_MS);
      work.finally(() => {
        clearTimeout(timer);
        reject(signal.reason);
      }).catch(() => {});
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

type StepResult = { outcome: StepOutcome; error?: unknown; interruption?: Interruption };

async function runStep(step: Step, ctx: StepContext): Promise<StepResult> {
  const before: unknown = ctx.signal.reason;
  if (before instanceof Interrupted) {
    return { outcome: "interrupted", error: new Interrupted(before.signal, "before the step started"), interruption: { step: step.name, signal: before.signal, completed: false } };
  }
  const attempt = await attemptStep(step, ctx);
  const reason: unknown = ctx.signal.reason;
  if (attempt.outcome === "ok" || attempt.outcome === "skipped" || !(reason instanceof Interrupted)) return attempt;
  const { error, completed } = await aftermath(step, ctx, reason.signal);
  return { outcome: "interrupted", error, interruption: { step: step.name, signal: reason.signal, completed } };
}

/**
 * An interrupted step may have done its work anyway (pgBackRest finished the copy a moment before
 * its SIGTERM): what is true is found the way resume finds it, with the step's `isDone`, under a
 * fresh budget (the run's signal is spent). The report and the audit line say exactly that.
 */
async function aftermath(step: Step, ctx: StepContext, signal: NodeJS.Signals): Promise<{ error: Interrupted; completed: boolean | null }> {
  if (step.readOnly) return { error: new Interrupted(signal, "during a step that only reads: nothing was changed"), completed: false };
  if (!step.isDone) return { error: new Interrupted(signal, "during the step; tradeops cannot tell whether it completed"), completed: null };
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(new StepFailure(`no answer within ${seconds(AFTERMATH_MS)}`)), AFTERMATH_MS);
  try {
    const completed = await untilAborted(budget.signal, step.isDone({ ...ctx, signal: budget.signal }));
    const detail = completed ? "during the step; it completed anyway: its effect is in place" : "during the step; it did not complete: its effect is not in place";
    return { error: new Interrupted(signal, detail), completed };
  } catch (error) {
    return { error: new Interrupted(signal, `during the step; whether it completed could not be checked (${oneLine(error)})`), completed: null };
  } finally {
    clearTimeout(timer);
  }
}

async function attemptStep(step: Step, ctx: StepContext): Promise<StepResult> {
  const { signal } = ctx;
  try {
    if (step.isDone && (await untilAborted(signal, step.isDone(ctx)))) return { outcome: "skipped" };
    try {
      await untilAborted(signal, step.precondition?.(ctx) ?? Promise.resolve());
    } catch (error) {
      // A precondition that cannot even be evaluated is a refusal too: nothing has been changed.
      return { outcome: "refused", error: error instanceof Refusal ? error : new Refusal(oneLine(error)) };
    }
    await untilAborted(signal, step.action(ctx));
    await untilAborted(signal, step.verify?.(ctx) ?? Promise.resolve());
    return { outcome: "ok" };
  } catch (error) {
    return { outcome: error instanceof Refusal ? "refused" : "failed", error };
  }
}

function nextAction(step: Step, error: unknown, completed: Step[]): string {
  const explicit = (error instanceof Refusal || error instanceof StepFailure ? error.next : undefined) ?? step.onFailure;
  const undoable = completed.filter((s) => s.undo).map((s) => `${s.name} → ${s.undo!.plan}`);
  const parts = [explicit ?? "fix the cause above, then re-run the same command: completed steps are skipped"];
  if (undoable.length && !(error instanceof Refusal)) parts.push(`to back out instead: ${undoable.reverse().join("; ")}`);
  return parts.join("; ");
}

/** The audit log lives here; a path that cannot be a directory is a usage error. */
function ensureStateDir(stateDir: string): void {
  try {
    mkdirSync(stateDir, { recursive: true });
  } catch (error) {
    throw new UsageError(`cannot use ${stateDir} as the stack's state dir (${(error as NodeJS.ErrnoException).code})`);
  }
}

function planLines(steps: Step[]): string[] {
  return steps.flatMap((step, i) => {
    const lines = [`${i + 1}. ${step.name}${step.destructive ? " [destructive]" : ""}`];
    if (step.plan) lines.push(`   does: ${step.plan}`);
    if (step.undo) lines.push(`   undo: ${step.undo.plan}`);
    return lines;
  });
}

async function confirmDestructive<T extends Target>(steps: Step[], options: RunOptions<T>): Promise<void> {
  const destructive = steps.filter((s) => s.destructive);
  if (!destructive.length || options.yes) return;
  const names = destructive.map((s) => `"${s.name}"`).join(", ");
  if (!options.confirm) {
    throw new Refusal(`destructive step(s) ${names} need --yes`, "re-run with --yes, or with --dry-run to see the plan first");
  }
  const stack = options.target.outputs.stack;
  const answer = await options.confirm(`This will run ${names} against stack '${stack}'. Type the stack name to go on: `);
  if (answer.trim() !== stack) throw new Refusal("confirmation did not match the stack name; nothing was changed");
}
