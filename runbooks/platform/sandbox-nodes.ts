/**
 * What every sandbox adapter (topology, restore, Redis snapshots) needs of the sandbox beside its
 * own calls: a contract node as the sandbox names it, and "stop it if it runs" with the answer the
 * platform interfaces give.
 */
import type { PgNode } from "../../contract/outputs.ts";
import type { ComponentName, PgNodeName, Sandbox } from "../../sandbox/index.ts";

export function sandboxNode(node: PgNode): PgNodeName {
  if (node.name !== "pg-a" && node.name !== "pg-b") throw new Error(`the sandbox has no node ${node.name}`);
  return node.name;
}

export async function stopIfRunning(sandbox: Sandbox, component: ComponentName, log: (line: string) => void): Promise<"stopped" | "was not running"> {
  if (sandbox.pid(component) === undefined) return "was not running";
  await sandbox.stop(component, log);
  return "stopped";
}
