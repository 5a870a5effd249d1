/**
 * The `tradeops` CLI: a small dispatcher over the registry. Each command and its flags come from
 * the runbook's own declaration (registry.ts, flags.ts); the CLI finds the stack's outputs, hands
 * the runbook to the step engine and renders the result.
 *
 * Exit codes: 0 ok, 1 a step failed, 2 usage or input error, 3 refused by a precondition.
 */
import { createInterface } from "node:readline/promises";
import { Command, CommanderError, Option } from "commander";
import type { RunResult } from "./engine/document.ts";
import { describeIssue, StackName } from "../contract/outputs.ts";
import { ExitCode, Interrupted, Refusal, StepFailure, UsageError, exitCodeOf, oneLine } from "./engine/errors.ts";
import { parseArgs, runRunbook } from "./engine/run.ts";
import { runbookEventNotifier } from "./notify.ts";
import type { OutputsSource, Runbook, Target } from "./engine/runbook.ts";
import { argsFromOptions, argumentsOf, optionsOf } from "./flags.ts";
import { loadOutputs } from "./outputs.ts";
import { COMMANDS, GROUPS, type Entry } from "./registry.ts";
import { lockFor } from "./locks/index.ts";
import { checkHome, stateDirFor } from "./state.ts";

interface GlobalFlags {
  stack: string;
  outputs?: string;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
}

type Dispatch = (entry: Entry, flags: GlobalFlags, options: Record<string, unknown>, stackNamed: boolean) => Promise<void>;

export function buildProgram(dispatch: Dispatch, commands: Entry[] = COMMANDS): Command {
  const program = new Command("tradeops")
    .description("Runbooks for the tradeops trading platform, run safely against a stack's outputs")
    .addOption(new Option("--stack <name>", "stack to act on: sandbox, or a Pulumi stack (dev, prod, dr)").env("TRADEOPS_STACK").default("sandbox"))
    .option("--outputs <file>", "read the stack outputs from this JSON file instead of the stack")
    .option("--dry-run", "print the numbered plan and change nothing")
    .option("--yes", "confirm destructive steps without a prompt")
    .option("--json", "print the result as one JSON document on stdout")
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: (message, write) => write(`tradeops: ${commanderLine(message)}\n`) });

  const groups = new Map<string, Command>();
  const parentOf = (words: string[]): Command => {
    if (words.length === 1) return program;
    const [group] = words;
    if (!groups.has(group!)) groups.set(group!, program.command(group!).description(GROUPS[group!] ?? group!));
    return groups.get(group!)!;
  };
  for (const entry of commands) {
    const command = parentOf(entry.command)
      .command(entry.command.at(-1)!)
      .description(`${entry.summary}${entry.features.length ? ` (${entry.features.join(", ")})` : ""}`);
    for (const option of optionsOf(entry.args)) command.addOption(option);
    const positionals = argumentsOf(entry.args);
    for (const { argument } of positionals) command.addArgument(argument);
    command.action((...commandArgs: unknown[]) => {
      const self = commandArgs.at(-1) as Command;
      const values = Object.fromEntries(positionals.map(({ key }, i) => [key, self.processedArgs[i]]));
      return dispatch(entry, self.optsWithGlobals<GlobalFlags>(), { ...self.opts(), ...values }, program.getOptionValueSource("stack") !== "default");
    });
  }
  return program;
}

/** Runs one command: a runbook, or a sequence of them; renders; sets the exit code. */
async function dispatch(entry: Entry, flags: GlobalFlags, options: Record<string, unknown>, stackNamed: boolean): Promise<void> {
  checkHome();
  const stack = StackName.safeParse(flags.stack);
  if (!stack.success) throw new UsageError(`--stack ${JSON.stringify(flags.stack)}: ${describeIssue(stack.error)}`);
  const source: OutputsSource = { stack: flags.stack, outputsFile: flags.outputs };
  const raw = argsFromOptions(entry.args, options);
  const context = { flags, stackNamed, signal: interruptible() };
  const result = await runOne(entry, raw, source, context);
  render(result, Boolean(flags.json));
  process.exitCode = result.exitCode;
}

/**
 * The first SIGINT/SIGTERM stops the running step (its processes too), finds out what it left and
 * reports that; a second one exits at once.
 */
function interruptible(): AbortSignal {
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (abort.signal.aborted) {
      process.stderr.write(`tradeops: ${signal} again: exiting now; re-run the same command to see where the run stopped\n`);
      process.exit(ExitCode.stepFailed);
    }
    process.stderr.write(`tradeops: ${signal}: stopping the running step and checking what it left (${signal} again exits at once)\n`);
    abort.abort(new Interrupted(signal));
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  return abort.signal;
}

interface RunContext {
  flags: GlobalFlags;
  /** --stack (or TRADEOPS_STACK) was given, not defaulted. */
  stackNamed: boolean;
  signal: AbortSignal;
}

async function runOne<T extends Target>(runbook: Runbook<unknown, T>, raw: unknown, source: OutputsSource, context: RunContext): Promise<RunResult> {
  const args = parseArgs(runbook, raw);
  const resolved = runbook.target ? await runbook.target(args, source) : ({ outputs: await loadOutputs(source, context.signal) } as T);
  const { flags } = context;
  // Never act on another stack than the one named: `--stack prod --outputs sandbox.json` is a mistake.
  if (context.stackNamed && resolved.outputs.stack !== flags.stack) {
    const from = runbook.target ? `\`tradeops ${runbook.command.join(" ")}\` acts on stack '${resolved.outputs.stack}'` : `${flags.outputs} holds stack '${resolved.outputs.stack}'`;
    throw new UsageError(`--stack ${flags.stack} but ${from}; drop --stack, or name the outputs of stack '${flags.stack}'`);
  }
  return runRunbook(runbook, args, {
    target: resolved,
    stateDir: stateDirFor(resolved.outputs),
    lock: runbook.mutates && !flags.dryRun ? lockFor(resolved.outputs) : undefined,
    dryRun: flags.dryRun,
    yes: flags.yes,
    quiet: flags.json,
    confirm: process.stdin.isTTY && process.stderr.isTTY ? (question) => askOnTty(question, context.signal) : undefined,
    signal: context.signal,
    events: runbookEventNotifier(resolved.outputs),
  });
}

async function askOnTty(question: string, signal: AbortSignal): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question, { signal });
  } catch {
    return ""; // Interrupted while asking: no confirmation.
  } finally {
    rl.close();
  }
}

function render(result: RunResult, json: boolean): void {
  if (json) {
    const { reportText: _text, ...document } = result;
    process.stdout.write(`${JSON.stringify({ ...document, report: document.report ?? null }, null, 2)}\n`);
    return;
  }
  if (result.plan) {
    process.stdout.write(`Plan for '${result.runbook}' on stack '${result.stack}' (dry run: nothing will be changed)\n${result.plan.join("\n")}\n`);
    return;
  }
  if (result.reportText) process.stdout.write(`${result.reportText}\n`);
  if (result.failure) {
    process.stderr.write(`✖ ${result.runbook} stopped at "${result.failure.step}": ${result.failure.message}\n  next: ${result.failure.next}\n`);
  }
}

/** Every error ends as one line and an exit code; a stack trace only with TRADEOPS_DEBUG=1. */
function fail(error: unknown, json: boolean): never {
  if (error instanceof CommanderError) {
    // commander printed its one line already; --json still gets its one document.
    if (error.exitCode !== 0 && json) process.stdout.write(`${JSON.stringify({ exitCode: ExitCode.usage, error: commanderLine(error.message) })}\n`);
    process.exit(error.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
  }
  const code = exitCodeOf(error);
  const next = error instanceof Refusal || error instanceof StepFailure ? error.next : undefined;
  const kind = error instanceof UsageError ? "" : error instanceof Refusal ? "refused: " : "failed: ";
  const line = printable(`${kind}${oneLine(error)}${next ? ` (next: ${next})` : ""}`);
  if (process.env.TRADEOPS_DEBUG === "1" && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ exitCode: code, error: line })}\n`);
  process.stderr.write(`tradeops: ${line}\n`);
  process.exit(code);
}

/** commander's message as one line: "unknown command 'failovr' (Did you mean failover?)". */
function commanderLine(message: string): string {
  return printable(message.replace(/^error: /, "").trim().replace(/\s*\n\s*/g, " "));
}

/** Control characters from an argument (a terminal escape in --stack) are shown, never sent to the terminal. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export async function main(argv = process.argv): Promise<void> {
  const json = argv.includes("--json");
  try {
    await buildProgram(dispatch).parseAsync(argv);
  } catch (error) {
    fail(error, json);
  }
  // The run is over and reported: whatever a hung peer may still hold open (a half-closed socket,
  // a pending SDK timer) must not keep the process alive. Writes to pipes and files are synchronous.
  process.exit(process.exitCode ?? ExitCode.ok);
}
