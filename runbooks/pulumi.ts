/**
 * The one place tradeops calls the Pulumi CLI. Everything else asks this adapter.
 * `PULUMI_BIN` overrides the binary (tests use a stand-in that prints what the real CLI prints).
 */
import { UsageError, oneLine } from "./engine/errors.ts";

export async function pulumiStackOutputs(stack: string, cwd: string): Promise<unknown> {
  const bin = process.env.PULUMI_BIN ?? "pulumi";
  const { $ } = await import("zx");
  const run = await $({ cwd, quiet: true, nothrow: true })`${bin} stack output --json --show-secrets --stack ${stack}`;
  if (run.exitCode === 127) {
    throw new UsageError(`the pulumi CLI is not installed here (needed to read stack '${stack}'); install it, or pass --outputs FILE`);
  }
  if (run.exitCode !== 0) {
    throw new UsageError(`pulumi stack output --stack ${stack} failed: ${oneLine(run.stderr || run.stdout)}`);
  }
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new UsageError(`pulumi stack output --stack ${stack} did not print JSON`);
  }
}
