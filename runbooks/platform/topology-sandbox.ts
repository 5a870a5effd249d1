/**
 * The failover topology of the sandbox, through its one interface (sandbox/index.ts): HAProxy's
 * admin socket for traffic, pg_ctl / pg_rewind on the local data dirs, sandbox.json for the record.
 */
import type { Sandbox } from "../../sandbox/index.ts";
import { sandboxNode, stopIfRunning } from "./sandbox-nodes.ts";
import type { Topology } from "./topology.ts";

export function sandboxTopology(sandbox: Sandbox): Topology {
  return {
    fenceTraffic: (node) => sandbox.traffic.fence(sandboxNode(node)),
    routeTraffic: (node) => sandbox.traffic.route(sandboxNode(node)),
    routedTo: () => sandbox.traffic.routedTo(),
    running: async (node) => sandbox.pid(sandboxNode(node)) !== undefined,
    stop: (node, log) => stopIfRunning(sandbox, sandboxNode(node), log),
    start: (node, log) => sandbox.start(sandboxNode(node), log),
    demote: (node, primary) => sandbox.postgres.demote(sandboxNode(node), sandboxNode(primary)),
    demoted: async (node) => sandbox.postgres.demoted(sandboxNode(node)),
    rewind: (node, source, log) => sandbox.postgres.rewind(sandboxNode(node), sandboxNode(source), log),
    discard: (node) => sandbox.postgres.discard(sandboxNode(node)),
    recordPrimary: async (node) => {
      await sandbox.postgres.recordPrimary(sandboxNode(node));
      return `${sandbox.dir}/sandbox.json and outputs.json`;
    },
    recordedPrimary: async () => sandbox.postgres.recordedPrimary(),
    restartApp: async (log) => {
      await sandbox.stop("ops-api", log);
      await sandbox.start("ops-api", log);
    },
  };
}
