/**
 * "Hang this component": SIGSTOP its process, as a wedged server looks from outside (the kernel
 * still accepts TCP connections; nothing answers), run `work`, then SIGCONT it whatever happened.
 * PostgreSQL: the postmaster only, so new connections hang and the running walsender keeps
 * replicating (a sync primary stays writable for the others).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { expect } from "vitest";
import type { ComponentName, Sandbox } from "../../sandbox/index.ts";

export async function whileHung<T>(sandbox: Sandbox, component: ComponentName, work: () => Promise<T>): Promise<T> {
  const pid = sandbox.pid(component);
  if (pid === undefined) throw new Error(`${component} has no running process to hang`);
  process.kill(pid, "SIGSTOP");
  try {
    return await work();
  } finally {
    process.kill(pid, "SIGCONT");
  }
}

/** Runs `command` and measures it: the deadline tests assert both the bound and the outcome. */
export async function timed<T>(command: () => Promise<T>): Promise<T & { seconds: number }> {
  const startedAt = performance.now();
  const result = await command();
  return { ...result, seconds: (performance.now() - startedAt) / 1000 };
}

/**
 * "Hang this component and expect a bounded, named refusal", one line per runbook (#14): runs
 * `command` with `component` hung and checks the exit code (3 unless said), that stderr names what
 * hung, and that it answered within `withinSeconds`.
 */
export async function expectBoundedRefusal(
  sandbox: Sandbox,
  component: ComponentName,
  command: () => Promise<{ code: number | null; stderr: string }>,
  expected: { names: RegExp; withinSeconds: number; code?: number },
): Promise<void> {
  const run = await whileHung(sandbox, component, () => timed(command));
  expect(run.code, run.stderr).toBe(expected.code ?? 3);
  expect(run.stderr).toMatch(expected.names);
  expect(run.seconds).toBeLessThan(expected.withinSeconds);
}

/** The pid of a PostgreSQL auxiliary process (e.g. "startup", "walreceiver") of the cluster in `dataDir`. */
export function auxiliaryProcess(dataDir: string, title: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) !== dataDir) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(`: ${title}`)) return Number(entry);
    } catch {
      // Gone in between, or not ours to read.
    }
  }
  throw new Error(`no "${title}" process works in ${dataDir}`);
}
