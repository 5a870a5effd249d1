/**
 * The failover topology of the sandbox, through its one interface (sandbox/index.ts): HAProxy's
 * admin socket for traffic, pg_ctl / pg_rewind on the local data dirs, sandbox.json for the record.
 */
import type { PgNode } from "../../contract/outputs.ts";
import type { PgNodeName, Sandbox } from "../../sandbox/index.ts";
import type { Topology } from "./topology.ts";

function nodeName(node: PgNode): PgNodeName {
  if (node.name !== "pg-a" && node.name !== "pg-b") throw new Error(`the sandbox has no node ${node.name}`);
  return node.name;
}

export function sandboxTopology(sandbox: Sandbox): Topology {
  return {
    fenceTraffic: (node) => sandbox.traffic.fence(nodeName(node)),
    routeTraffic: (node) => sandbox.traffic.route(nodeName(node)),
    routedTo: () => sandbox.traffic.routedTo(),
    running: async (node) => sandbox.pid(nodeName(node)) !== undefined,
    stop: async (node, log) => {
      if (sandbox.pid(nodeName(node)) === undefined) return "was not running";
      await sandbox.stop(nodeName(node), log);
      return "stopped";
    },
    start: (node, log) => sandbox.start(nodeName(node), log),
    demote: (node, primary) => sandbox.postgres.demote(nodeName(node), nodeName(primary)),
    demoted: async (node) => sandbox.postgres.demoted(nodeName(node)),
    rewind: (node, source, log) => sandbox.postgres.rewind(nodeName(node), nodeName(source), log),
    discard: (node) => sandbox.postgres.discard(nodeName(node)),
    recordPrimary: async (node) => {
      await sandbox.postgres.recordPrimary(nodeName(node));
      return `${sandbox.dir}/sandbox.json and outputs.json`;
    },
    recordedPrimary: async () => sandbox.postgres.recordedPrimary(),
    restartApp: async (log) => {
      await sandbox.stop("ops-api", log);
      await sandbox.start("ops-api", log);
    },
  };
}
