/**
 * What a runbook is: a named list of steps that reads like the seed procedure it replaces.
 *
 * Each step says what it checks before (precondition), what it does (action), how it verifies,
 * and how to undo it where that is possible. The engine (run.ts) owns everything around that:
 * dry-run plans, --yes confirmation, the per-stack lock, the audit log and progress output.
 */
import type { z } from "zod";
import type { StackOutputs } from "../../contract/outputs.ts";

export interface StepContext {
  readonly outputs: StackOutputs;
  /** Progress detail under the current step (masked before it is shown or stored). */
  log(line: string): void;
  /** A measured fact worth keeping in the audit line and the --json result (e.g. `standbyLagBytes`). */
  record(key: string, value: unknown): void;
  /** Aborted on SIGINT/SIGTERM; long waits should honour it. */
  readonly signal: AbortSignal;
}

export interface Step {
  /** A sentence, as it appears in plans, progress, audit lines: "Promote the standby". */
  name: string;
  /** What the step will do, shown in the dry-run plan. Defaults to the name. */
  plan?: string;
  /** Changes or removes something that cannot be taken back silently: needs --yes or a typed confirmation. */
  destructive?: boolean;
  /**
   * True when the step's effect is already in place; the step is then skipped. This is what makes
   * re-running a runbook after a failure resume safely instead of repeating work.
   */
  isDone?(ctx: StepContext): Promise<boolean>;
  /** Read-only check; throw `Refusal` (exit 3) when the world is not as the step needs. */
  precondition?(ctx: StepContext): Promise<void>;
  action(ctx: StepContext): Promise<void>;
  /** Read-only check that the action had its effect; throw `StepFailure` otherwise. */
  verify?(ctx: StepContext): Promise<void>;
  /** How to take the step back, when that exists; shown in plans and failure messages. */
  undo?: { plan: string; run(ctx: StepContext): Promise<void> };
  /** What the operator should do when this step fails (the engine adds it to the error line). */
  onFailure?: string;
}

export interface Runbook<Args = unknown> {
  /** CLI name, e.g. `health`, `backup`. */
  name: string;
  /** One line for --help and plans. */
  summary: string;
  /** Feature IDs from shared/features.md this runbook carries out. */
  features: string[];
  /** Mutating runbooks take the per-stack lock; read-only ones (health, diagnose) never wait for it. */
  mutates: boolean;
  args: z.ZodType<Args>;
  /** The procedure. Steps share state through the closure of this call. */
  steps(args: Args, outputs: StackOutputs): Step[];
  /**
   * The runbook's report once the steps ran (or stopped): printed as text, or under `report` in --json.
   * Called with whatever the steps recorded.
   */
  report?(facts: Record<string, unknown>): { text: string; json: unknown };
}

/** Identity helper so each runbook file gets full type inference for its args. */
export function defineRunbook<Args>(runbook: Runbook<Args>): Runbook<Args> {
  return runbook;
}
