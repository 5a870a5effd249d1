/**
 * What `restore` does to the platform besides pgBackRest itself: stop and start the app and the
 * database nodes, keep the primary's data dir aside (the undo) and put it back, start a restored
 * node, rebuild a standby from scratch. One interface, one implementation per platform.
 *
 * The sandbox's goes through its one interface (sandbox/index.ts); Docker and Kubernetes stacks
 * are refused with the manual procedure until their adapters exist.
 */
import type { PgNode, StackOutputs } from "../../contract/outputs.ts";
import { openSandbox, type Sandbox } from "../../sandbox/index.ts";
import { Refusal } from "../engine/errors.ts";
import { sandboxNode, stopIfRunning } from "./sandbox-nodes.ts";

export interface RestorePlatform {
  /** Stops the trading app (the writers); "was not running" when it was not. */
  stopApp(log: (line: string) => void): Promise<"stopped" | "was not running">;
  startApp(log: (line: string) => void): Promise<void>;
  /** Its PostgreSQL process runs (not: answers). */
  running(node: PgNode): Promise<boolean>;
  stop(node: PgNode, log: (line: string) => void): Promise<"stopped" | "was not running">;
  /** Starts `node` in its recorded role (a standby returns once it streams). */
  start(node: PgNode, log: (line: string) => void): Promise<void>;
  /** Renames the stopped `node`'s data dir aside (kept: the undo), leaving an empty one; returns where it went. */
  setAside(node: PgNode): Promise<string>;
  /** Deletes the stopped `node`'s restored data dir and renames `aside` back. */
  putBack(node: PgNode, aside: string): Promise<void>;
  /** Starts a freshly restored `node` (recovery may still be running when this returns). */
  startRestored(node: PgNode, log: (line: string) => void): Promise<void>;
  /** Deletes the stopped standby's data so its next start clones it fresh from the primary. */
  discard(node: PgNode): Promise<void>;
  /** Free bytes where `node`'s data dir (and its set-aside copy) live. */
  freeBytes(node: PgNode): Promise<number>;
}

export async function restorePlatformOf(outputs: StackOutputs): Promise<RestorePlatform> {
  const { platform } = outputs;
  switch (platform.kind) {
    case "sandbox":
      return sandboxRestorePlatform(await openSandbox({ dir: platform.dir }));
    case "docker":
    case "kubernetes":
      throw new Refusal(
        `restore on ${platform.kind} stacks is not automated yet`,
        "by hand: stop the app and both nodes, keep the primary's data dir aside, `pgbackrest restore --delta --type=time --target=… --target-action=promote` into an empty one, start, ALTER SYSTEM RESET recovery_target_time, rebuild the standby",
      );
  }
}

function sandboxRestorePlatform(sandbox: Sandbox): RestorePlatform {
  return {
    stopApp: (log) => stopIfRunning(sandbox, "ops-api", log),
    startApp: (log) => sandbox.start("ops-api", log),
    running: async (node) => sandbox.pid(sandboxNode(node)) !== undefined,
    stop: (node, log) => stopIfRunning(sandbox, sandboxNode(node), log),
    start: (node, log) => sandbox.start(sandboxNode(node), log),
    setAside: (node) => sandbox.postgres.setAside(sandboxNode(node)),
    putBack: (node, aside) => sandbox.postgres.putBack(sandboxNode(node), aside),
    startRestored: (node, log) => sandbox.postgres.startRestored(sandboxNode(node), log),
    discard: (node) => sandbox.postgres.discard(sandboxNode(node)),
    freeBytes: async (node) => sandbox.postgres.freeBytes(sandboxNode(node)),
  };
}
