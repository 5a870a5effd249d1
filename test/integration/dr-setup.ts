/**
 * The DR site's own sandbox for test/integration/dr.test.ts (`sandbox up --with-dr`, base port
 * +400), started through the CLI as an operator starts it: the whole primary site is killed there,
 * so it cannot be the run's shared sandbox — and with its own sandbox and TRADEOPS_HOME the file
 * runs beside the shared-sandbox files (its stack lock is its cluster's). Always stopped and deleted.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { openSandbox } from "../../sandbox/index.ts";
import { tradeops } from "../support/tradeops.ts";
import { INTEGRATION_BASE_PORT } from "./global-setup.ts";

declare module "vitest" {
  export interface ProvidedContext {
    drSandboxDir: string;
    drBasePort: number;
    drHome: string;
  }
}

export const DR_BASE_PORT = INTEGRATION_BASE_PORT + 400;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), "tradeops-it-dr-"));
  chmodSync(dir, 0o755);
  // Its own TRADEOPS_HOME, given to the CLI it runs, never set here: this process also runs the shared sandbox's setup.
  const home = mkdtempSync(join(tmpdir(), "tradeops-it-dr-home-"));
  const teardown = async () => {
    try {
      await (await openSandbox({ dir })).down({}, (line) => process.stderr.write(`[dr-teardown] ${line}\n`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    }
  };
  try {
    const startedAt = performance.now();
    const up = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", String(DR_BASE_PORT), "--with-dr"], { TRADEOPS_HOME: home });
    if (up.code !== 0) throw new Error(`sandbox up --with-dr failed (dir ${dir}): ${up.stderr.trim().split("\n").slice(-3).join(" | ")}`);
    process.stderr.write(`[dr-setup] sandbox up --with-dr in ${((performance.now() - startedAt) / 1000).toFixed(1)} s at ${dir}\n`);
  } catch (error) {
    await teardown();
    throw error;
  }
  project.provide("drSandboxDir", dir);
  project.provide("drBasePort", DR_BASE_PORT);
  project.provide("drHome", home);
  return teardown;
}
