/**
 * The one place tradeops calls the Pulumi CLI. Everything else asks this adapter.
 * `PULUMI_BIN` overrides the binary (tests use a stand-in that prints what the real CLI prints).
 */
import { z } from "zod";
import { StackName, describeIssue } from "../contract/outputs.ts";
import { projectRoot } from "../contract/home.ts";
import { StepFailure, UsageError, oneLine } from "./engine/errors.ts";

/** Reading outputs is one backend call; a minute means the backend (or its network) is gone. */
const PULUMI_TIMEOUT_MS = 60_000;
/** Outputs are a few kB of JSON; more is not outputs. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

export async function pulumiStackOutputs(stack: string, cwd: string, signal?: AbortSignal): Promise<unknown> {
  const bin = process.env.PULUMI_BIN ?? "pulumi";
  const { $ } = await import("zx");
  const run = await $({ cwd, quiet: true, nothrow: true, signal, timeout: `${PULUMI_TIMEOUT_MS}ms` })`${bin} stack output --json --show-secrets --stack ${stack}`;
  if (signal?.aborted) throw signal.reason;
  if (run.exitCode === 127) {
    throw new UsageError(`the pulumi CLI is not installed here (needed to read stack '${stack}'); install it, or pass --outputs FILE`);
  }
  if (run.exitCode === null) {
    throw new UsageError(`pulumi stack output --stack ${stack} did not finish within ${PULUMI_TIMEOUT_MS / 1000} s; check the Pulumi backend, or pass --outputs FILE`);
  }
  if (run.exitCode !== 0) {
    throw new UsageError(`pulumi stack output --stack ${stack} failed: ${oneLine(run.stderr || run.stdout)}`);
  }
  if (run.stdout.length > MAX_OUTPUT_BYTES) throw new UsageError(`pulumi stack output --stack ${stack} printed over 1 MiB: not stack outputs`);
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new UsageError(`pulumi stack output --stack ${stack} did not print JSON`);
  }
}

/** `tradeops:primaryNode`: a namespace, a colon, a key (no `--path` keys: nothing here needs them). */
const ConfigKey = z.string().regex(/^[A-Za-z][\w-]*:[A-Za-z][\w.-]*$/, "a Pulumi config key like tradeops:primaryNode");
/** Plain values only: secrets go in with `--secret` by a person, never through a runbook's argv. */
const ConfigValue = z.string().min(1, "must not be empty").max(1000).regex(/^[^\n\r\0]*$/, "one line");

export interface ConfigSetResult {
  /** Whether the stack's config now holds the value; false: the CLI is not here, nothing changed. */
  set: boolean;
  /** The command, quoted for a shell: what ran, or what the operator runs. */
  command: string;
}

/**
 * `pulumi config set KEY VALUE --stack STACK`: the stack records the value, so its next `pulumi up`
 * keeps it (a failover's new primary). Without the CLI it changes nothing and returns the command for
 * the operator; a CLI that refuses is a step failure naming the same command.
 */
export async function pulumiConfigSet(stack: string, key: string, value: string, cwd: string = projectRoot, signal?: AbortSignal): Promise<ConfigSetResult> {
  const args = checked({ stack, key, value });
  const command = ["pulumi", "config", "set", args.key, args.value, "--stack", args.stack].map(shellWord).join(" ");
  const run = await pulumi(["config", "set", args.key, args.value, "--stack", args.stack], cwd, signal);
  if (run.exitCode === 127) return { set: false, command };
  if (run.exitCode !== 0) throw new StepFailure(`${command} ${failure(run)}`, `run it by hand once the backend answers: ${command}`);
  return { set: true, command };
}

/** `pulumi config get KEY --stack STACK`; undefined when the stack does not set the key. */
export async function pulumiConfigGet(stack: string, key: string, cwd: string = projectRoot, signal?: AbortSignal): Promise<string | undefined> {
  const args = checked({ stack, key });
  const run = await pulumi(["config", "get", args.key, "--stack", args.stack], cwd, signal);
  if (run.exitCode === 127) throw new UsageError(`the pulumi CLI is not installed here (needed to read ${args.key} of stack '${args.stack}')`);
  // Pulumi's own words for an unset key; any other failure is one.
  if (run.exitCode !== 0 && /configuration key .* not found/i.test(run.stderr)) return undefined;
  if (run.exitCode !== 0) throw new UsageError(`pulumi config get ${args.key} --stack ${args.stack} ${failure(run)}`);
  return run.stdout.replace(/\n$/, "");
}

function checked<T extends { stack: string; key: string; value?: string }>(input: T): T {
  const parsed = z.object({ stack: StackName, key: ConfigKey, value: ConfigValue.optional() }).safeParse(input);
  if (!parsed.success) throw new UsageError(`pulumi config: ${describeIssue(parsed.error)}`);
  return input;
}

async function pulumi(argv: string[], cwd: string, signal?: AbortSignal): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  const bin = process.env.PULUMI_BIN ?? "pulumi";
  const { $ } = await import("zx");
  const run = await $({ cwd, quiet: true, nothrow: true, signal, timeout: `${PULUMI_TIMEOUT_MS}ms` })`${bin} ${argv}`;
  if (signal?.aborted) throw signal.reason;
  return { exitCode: run.exitCode, stdout: run.stdout, stderr: run.stderr };
}

function failure(run: { exitCode: number | null; stdout: string; stderr: string }): string {
  if (run.exitCode === null) return `did not finish within ${PULUMI_TIMEOUT_MS / 1000} s`;
  return `failed: ${oneLine(run.stderr || run.stdout)}`;
}

/** A word as a POSIX shell reads it back: bare when safe, else single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
