/**
 * A sandbox of its own (base port +500) for the files that break their sandbox on purpose — they
 * kill the S3 store, the standby, pgBackRest mid-copy (interruptions.test.ts) — so they run beside
 * the shared-sandbox files instead of after them (test/run.ts), and cannot leave them a broken one.
 */
import type { TestProject } from "vitest/node";
import { INTEGRATION_BASE_PORT, setupSandbox } from "./global-setup.ts";

export default function setup(project: TestProject): Promise<() => Promise<void>> {
  return setupSandbox(project, INTEGRATION_BASE_PORT + 500);
}
