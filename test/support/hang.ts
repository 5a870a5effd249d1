/**
 * "Hang this component": SIGSTOP its process, as a wedged server looks from outside (the kernel
 * still accepts TCP connections; nothing answers), run `work`, then SIGCONT it whatever happened.
 * PostgreSQL: the postmaster only, so new connections hang and the running walsender keeps
 * replicating (a sync primary stays writable for the others).
 */
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
