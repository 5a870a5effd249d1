/**
 * One real sandbox for the whole integration run, started by the same runbook `tradeops sandbox up`
 * runs (through the step engine), in a fresh dir under /tmp on base port 25400; always stopped and
 * deleted at the end, whatever the tests did. Test files read it with `inject("outputsFile")`.
 *
 * The run gets a TRADEOPS_HOME of its own (audit logs, the active sandbox), so tests never write
 * into the checkout's `.tradeops`. TRADEOPS_IT_BASE_PORT moves the sandbox (two runs on one
 * machine must not share ports).
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { openSandbox } from "../../sandbox/index.ts";
import { parseArgs, runRunbook } from "../../runbooks/engine/run.ts";
import { sandboxUp } from "../../runbooks/sandbox.ts";
import { stateDirFor } from "../../runbooks/state.ts";

declare module "vitest" {
  export interface ProvidedContext {
    sandboxDir: string;
    outputsFile: string;
    tradeopsHome: string;
  }
}

/**
 * The shared sandbox's base port. Files and projects take their own from it: +20 ops-api, +60
 * alertmanager, +100 and +200 sandbox, +300 deadlines, +400 the DR project, +500 the solo project.
 */
export const INTEGRATION_BASE_PORT = Number(process.env.TRADEOPS_IT_BASE_PORT ?? 25400);

export default function setup(project: TestProject): Promise<() => Promise<void>> {
  return setupSandbox(project, INTEGRATION_BASE_PORT);
}

/** A fresh sandbox on `basePort` for one project of the run, provided to its files; returns its teardown. */
export async function setupSandbox(project: TestProject, basePort: number): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), "tradeops-it-"));
  // mkdtemp makes it 0700; the postgres OS user must enter it.
  chmodSync(dir, 0o755);
  const home = mkdtempSync(join(tmpdir(), "tradeops-it-home-"));
  // Forked test workers inherit it: every CLI run and runbook of the run uses this home.
  process.env.TRADEOPS_HOME = home;
  const teardown = () => stopAndDelete(dir, home);
  try {
    const startedAt = performance.now();
    const args = parseArgs(sandboxUp, { dir, basePort, mode: "sync" });
    const target = await sandboxUp.target!(args, { stack: "sandbox" });
    const result = await runRunbook(sandboxUp, args, { target, stateDir: stateDirFor(target.outputs), yes: true, quiet: true });
    if (result.exitCode !== 0) {
      throw new Error(`sandbox up failed at "${result.failure?.step}": ${result.failure?.message} (dir ${dir})`);
    }
    // A cold up reports a clean status: no warning about the files it just wrote.
    if (result.facts.warning) throw new Error(`sandbox up (cold) warned: ${result.facts.warning}`);
    process.stderr.write(`[global-setup] sandbox up (cold) in ${((performance.now() - startedAt) / 1000).toFixed(1)} s at ${dir}\n`);
  } catch (error) {
    await teardown();
    throw error;
  }
  project.provide("sandboxDir", dir);
  project.provide("outputsFile", join(dir, "outputs.json"));
  project.provide("tradeopsHome", home);
  return teardown;
}

/** down (by PID, reverse order, strays swept) then rm — also after a failed or partial up. */
async function stopAndDelete(dir: string, home: string): Promise<void> {
  try {
    const sandbox = await openSandbox({ dir });
    await sandbox.down({}, (line) => process.stderr.write(`[global-teardown] ${line}\n`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}
