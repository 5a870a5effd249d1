/**
 * One real sandbox for the whole integration run, started by the same runbook `tradeops sandbox up`
 * runs (through the step engine), in a fresh dir under /tmp on base port 25400; always stopped and
 * deleted at the end, whatever the tests did. Test files read it with `inject("outputsFile")`.
 *
 * TRADEOPS_IT_BASE_PORT moves it (two runs on one machine must not share ports).
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { resolveSandboxLayout, downSandbox } from "../../infra/sandbox/sandbox.ts";
import { runRunbook } from "../../runbooks/engine/run.ts";
import { sandboxStackOutputs, sandboxUp } from "../../runbooks/sandbox.ts";

declare module "vitest" {
  export interface ProvidedContext {
    sandboxDir: string;
    outputsFile: string;
  }
}

export const INTEGRATION_BASE_PORT = Number(process.env.TRADEOPS_IT_BASE_PORT ?? 25400);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), "tradeops-it-"));
  // mkdtemp makes it 0700; the postgres OS user must enter it.
  chmodSync(dir, 0o755);
  const teardown = () => stopAndDelete(dir);
  try {
    const startedAt = performance.now();
    const args = { dir, basePort: INTEGRATION_BASE_PORT, mode: "sync" as const };
    const result = await runRunbook(sandboxUp, args, { outputs: sandboxStackOutputs(args), stateDir: dir, yes: true, quiet: true });
    if (result.exitCode !== 0) {
      throw new Error(`sandbox up failed at "${result.failure?.step}": ${result.failure?.message} (dir ${dir})`);
    }
    process.stderr.write(`[global-setup] sandbox up (cold) in ${((performance.now() - startedAt) / 1000).toFixed(1)} s at ${dir}\n`);
  } catch (error) {
    await teardown();
    throw error;
  }
  project.provide("sandboxDir", dir);
  project.provide("outputsFile", join(dir, "outputs.json"));
  return teardown;
}

/** down (by PID, reverse order, strays swept) then rm — also after a failed or partial up. */
async function stopAndDelete(dir: string): Promise<void> {
  try {
    await downSandbox(resolveSandboxLayout({ dir }), {}, (line) => process.stderr.write(`[global-teardown] ${line}\n`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
