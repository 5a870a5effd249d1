/**
 * The one place tradeops calls the Pulumi CLI. Everything else asks this adapter.
 * `PULUMI_BIN` overrides the binary (tests use a stand-in that prints what the real CLI prints).
 */
import { UsageError, oneLine } from "./engine/errors.ts";

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
