/**
 * The `tradeops` CLI: parses flags (commander), finds the stack outputs, hands one runbook to the
 * step engine and renders the result. Runbook modules are imported lazily so `--help` stays fast.
 *
 * Exit codes: 0 ok, 1 a step failed, 2 usage or input error, 3 refused by a precondition.
 */
import { createInterface } from "node:readline/promises";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import type { StackOutputs } from "../contract/outputs.ts";
import { ExitCode, Refusal, StepFailure, UsageError, exitCodeOf, oneLine } from "./engine/errors.ts";
import type { RunResult } from "./engine/run.ts";
import type { Runbook } from "./engine/runbook.ts";

interface GlobalFlags {
  stack: string;
  outputs?: string;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
}

type CommandOptions = Record<string, unknown>;

/** A runbook, the args it takes from its command's options, and where its outputs come from. */
interface Invocation {
  load: () => Promise<Runbook<any>>;
  args?: (options: CommandOptions) => CommandOptions;
  /** The sandbox commands build their outputs from their own flags (outputs.json may not exist yet). */
  outputs?: (options: CommandOptions) => Promise<StackOutputs>;
}

type Invoke = (invocation: Invocation) => (...commandArgs: unknown[]) => Promise<void>;

export function buildProgram(run: (invocation: Invocation, flags: GlobalFlags, options: CommandOptions) => Promise<void>): Command {
  const program = new Command("tradeops")
    .description("Runbooks for the tradeops trading platform, run safely against a stack's outputs")
    .addOption(new Option("--stack <name>", "stack to act on: sandbox, or a Pulumi stack (dev, prod, dr)").env("TRADEOPS_STACK").default("sandbox"))
    .option("--outputs <file>", "read the stack outputs from this JSON file instead of the stack")
    .option("--dry-run", "print the numbered plan and change nothing")
    .option("--yes", "confirm destructive steps without a prompt")
    .option("--json", "print the result as one JSON document on stdout")
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: (message, write) => write(`tradeops: ${message.replace(/^error: /, "")}`) });

  const invoke: Invoke = (invocation) => (...commandArgs) => {
    const command = commandArgs.at(-1) as Command;
    return run(invocation, command.optsWithGlobals<GlobalFlags>(), command.opts());
  };
  const int = (value: string) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number.");
    return Number(value);
  };

  program
    .command("health")
    .description("probe every component in parallel; exit 1 naming anything unhealthy (Z1, S3, C1)")
    .action(invoke({ load: async () => (await import("./health.ts")).health }));

  program
    .command("diagnose")
    .description("active queries, biggest tables, chunks, replication, Redis, disk (Z5, T1)")
    .option("--limit <rows>", "rows per view", int)
    .action(invoke({ load: async () => (await import("./diagnose.ts")).diagnose, args: ({ limit }) => ({ limit }) }));

  program
    .command("backup")
    .description("pgBackRest backup of the primary into the S3 repository, verified (Z6, S8, I7)")
    .addOption(new Option("--type <type>", "backup type").choices(["full", "diff", "incr"]).default("full"))
    .action(invoke({ load: async () => (await import("./backup.ts")).backup, args: ({ type }) => ({ type }) }));

  addSandboxCommands(program, invoke, int);
  return program;
}

function addSandboxCommands(program: Command, invoke: Invoke, int: (value: string) => number): void {
  const sandbox = program
    .command("sandbox")
    .description("the local sandbox: the whole stack as real processes on 127.0.0.1");
  const dirOption = () => new Option("--dir <dir>", "sandbox directory (default $TRADEOPS_HOME/sandbox)");
  const sandboxOutputs = async (options: CommandOptions) => (await import("./sandbox.ts")).sandboxStackOutputs(options);

  sandbox
    .command("up")
    .description("start PostgreSQL primary + standby, HAProxy, Redis, S3 store, pgBackRest, ops API, Prometheus")
    .addOption(dirOption())
    .option("--base-port <port>", "first of the sandbox's ports", int)
    .addOption(new Option("--sync", "synchronous replication (default)").conflicts("async"))
    .option("--async", "asynchronous replication")
    .action(
      invoke({
        load: async () => (await import("./sandbox.ts")).sandboxUp,
        args: ({ dir, basePort, async }) => ({ dir, basePort, mode: async ? "async" : "sync" }),
        outputs: sandboxOutputs,
      }),
    );

  sandbox
    .command("down")
    .description("stop every sandbox process (by PID); --purge also deletes its data")
    .addOption(dirOption())
    .option("--purge", "delete the sandbox directory and all its data (destructive)")
    .action(invoke({ load: async () => (await import("./sandbox.ts")).sandboxDown, args: ({ dir, purge }) => ({ dir, purge }), outputs: sandboxOutputs }));

  sandbox
    .command("status")
    .description("each sandbox process: pid, port, up or down")
    .addOption(dirOption())
    .action(invoke({ load: async () => (await import("./sandbox.ts")).sandboxStatus, args: ({ dir }) => ({ dir }), outputs: sandboxOutputs }));
}

async function runInvocation(invocation: Invocation, flags: GlobalFlags, options: CommandOptions): Promise<void> {
  const { loadOutputs, stateDirFor } = await import("./outputs.ts");
  const { parseArgs, runRunbook } = await import("./engine/run.ts");
  const runbook = await invocation.load();
  const args = parseArgs(runbook, invocation.args?.(options) ?? {});
  const outputs = await (invocation.outputs?.(options) ?? loadOutputs({ stack: flags.stack, outputsFile: flags.outputs }));
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  const result = await runRunbook(runbook, args, {
    outputs,
    stateDir: stateDirFor(outputs),
    dryRun: flags.dryRun,
    yes: flags.yes,
    quiet: flags.json,
    confirm: process.stdin.isTTY && process.stderr.isTTY ? askOnTty : undefined,
    signal: abort.signal,
  });
  render(result, Boolean(flags.json));
  process.exitCode = result.exitCode;
}

async function askOnTty(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

function render(result: RunResult, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...result, report: result.report?.json ?? null }, null, 2)}\n`);
    return;
  }
  if (result.plan) {
    process.stdout.write(`Plan for '${result.runbook}' on stack '${result.stack}' (dry run: nothing will be changed)\n${result.plan.join("\n")}\n`);
    return;
  }
  if (result.report) process.stdout.write(`${result.report.text}\n`);
  if (result.failure) {
    process.stderr.write(`✖ ${result.runbook} stopped at "${result.failure.step}": ${result.failure.message}\n  next: ${result.failure.next}\n`);
  }
}

/** Every error ends as one line and an exit code; a stack trace only with TRADEOPS_DEBUG=1. */
function fail(error: unknown, json: boolean): never {
  if (error instanceof CommanderError) {
    process.exit(error.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
  }
  const code = exitCodeOf(error);
  const next = error instanceof Refusal || error instanceof StepFailure ? error.next : undefined;
  const kind = error instanceof UsageError ? "" : error instanceof Refusal ? "refused: " : "failed: ";
  const line = `${kind}${oneLine(error)}${next ? ` (next: ${next})` : ""}`;
  if (process.env.TRADEOPS_DEBUG === "1" && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ exitCode: code, error: line })}\n`);
  process.stderr.write(`tradeops: ${line}\n`);
  process.exit(code);
}

export async function main(argv = process.argv): Promise<void> {
  const json = argv.includes("--json");
  try {
    await buildProgram(runInvocation).parseAsync(argv);
  } catch (error) {
    fail(error, json);
  }
}
