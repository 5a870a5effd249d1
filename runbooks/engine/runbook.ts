/**
 * What a runbook is: a named list of steps that reads like the seed procedure it replaces, and the
 * command it answers to.
 *
 * Each step says what it checks before (precondition), what it does (action), how it verifies,
 * and how to undo it where that is possible. The engine (run.ts) owns everything around that:
 * dry-run plans, --yes confirmation, the stack lock, the audit log and progress output. The CLI
 * (cli.ts) builds the command and its flags from the declaration: the flags are the keys of
 * `args` (see flags.ts), so adding a runbook is one file plus one line in registry.ts.
 */
import type { z } from "zod";
import type { StackOutputs } from "../../contract/outputs.ts";

export interface StepContext {
  /** Progress detail under the current step (masked before it is shown or stored). */
  log(line: string): void;
  /** A measured fact worth keeping in the audit line and the --json result (e.g. `standbyLagBytes`). */
  record(key: string, value: unknown): void;
  /** Aborted on SIGINT/SIGTERM; long waits and every client call take it. */
  readonly signal: AbortSignal;
}

export interface Step {
  /** A sentence, as it appears in plans, progress, audit lines: "Promote the standby". */
  name: string;
  /** What the step will do, shown in the dry-run plan. Defaults to the name. */
  plan?: string;
  /** Changes or removes something that cannot be taken back silently: needs --yes or a typed confirmation. */
  destructive?: boolean;
  /** It only reads (a check, a listing): interrupted, it leaves nothing to find out. */
  readOnly?: boolean;
  /**
   * How long the whole step (precondition, action, verify) may take; past it the step's signal
   * aborts, every client call under it gives up, and the step fails "did not finish within N s".
   * @default no budget: the step's own calls bound it (a backup of 1 TB takes what it takes)
   */
  budgetMs?: number;
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

/**
 * What an interrupted step left, recorded by the engine as the `interrupted` fact: `completed` as
 * the step's `isDone` found it after the interruption (null: the step cannot tell).
 */
export interface Interruption {
  step: string;
  signal: NodeJS.Signals;
  completed: boolean | null;
}

/** What a runbook acts on: the stack's outputs, and whatever its target resolver adds (the sandbox). */
export interface Target {
  outputs: StackOutputs;
}

/** Where the outputs of a stack runbook come from (`--stack`, `--outputs`). */
export interface OutputsSource {
  stack: string;
  outputsFile?: string;
}

// Args are always an object of flags; `any` here lets each runbook's schema keep its own input type.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ArgsSchema<Args> = z.ZodType<Args, any>;

export interface Runbook<Args = Record<string, unknown>, T extends Target = Target> {
  /** The command words after `tradeops`: `["health"]`, `["sandbox", "up"]`, `["kill-switch", "on"]`. */
  command: string[];
  /** Name in plans, audit lines and the lock: `health`, `sandbox-up`. */
  name: string;
  /** One line for --help and plans. */
  summary: string;
  /** Feature IDs (docs/features.md) this runbook carries out; --help shows them. */
  features: string[];
  /** Mutating runbooks take the stack lock; read-only ones (health, diagnose) never wait for it. */
  mutates: boolean;
  /** `unlock` changes the lock itself and must not hold it. @default mutates */
  takesLock?: boolean;
  /**
   * A dry run also runs its read-only steps (no lock), then prints the plan, so the plan can name
   * exactly what a real run would change: `backups expire --dry-run` lists what would go.
   * @default false: a dry run runs no step code
   */
  dryRunReads?: boolean;
  /** Its flags: a `z.object` whose keys become `--kebab-case` options (flags.ts). */
  args: ArgsSchema<Args>;
  /** Where its stack comes from. @default the outputs named by `--stack` / `--outputs` */
  target?(args: Args, source: OutputsSource): Promise<T>;
  /** The procedure. Steps share state through the closure of this call. */
  steps(args: Args, target: T): Step[];
  /**
   * The runbook's report once the steps ran (or stopped): printed as text, or under `report` in --json.
   * Called with whatever the steps recorded.
   */
  report?(facts: Record<string, unknown>): { text: string; json: unknown };
}

/** Identity helper so each runbook file gets full type inference for its args. */
export function defineRunbook<Args, T extends Target = Target>(runbook: Runbook<Args, T>): Runbook<Args, T> {
  return runbook;
}

