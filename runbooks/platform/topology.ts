/**
 * What the failover runbooks do to the platform — the traffic endpoint, the database nodes, and
 * the stack's record of which node is primary — behind one interface with an implementation per
 * platform, so `failover`, `switchover` and `failback` never branch on it.
 *
 * The sandbox's implementation goes through its one interface (sandbox/index.ts); Kubernetes
 * stacks' through the API server and `kubectl exec` (topology-kubernetes.ts), recording the primary
 * in the Pulumi config too. The dev stack (Docker) is failed over by hand: docs/deploy.md.
 */
import type { PgNode, StackOutputs } from "../../contract/outputs.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { Refusal } from "../engine/errors.ts";
import { kubernetesTopology } from "./topology-kubernetes.ts";
import { sandboxTopology } from "./topology-sandbox.ts";

export interface Topology {
  /** No new session reaches `node` through the traffic endpoint, and its sessions there are cut. */
  fenceTraffic(node: PgNode): Promise<void>;
  /** The endpoint routes to `node` alone. */
  routeTraffic(node: PgNode): Promise<void>;
  /** The node the endpoint routes to now, by name. */
  routedTo(): Promise<string | undefined>;
  /** Its PostgreSQL process runs (not: answers). */
  running(node: PgNode): Promise<boolean>;
  /** `pg_ctl stop -m fast`, bounded; "was not running" when it was not. */
  stop(node: PgNode, log: (line: string) => void): Promise<"stopped" | "was not running">;
  /** Starts `node` in its recorded role; a standby returns once it streams. */
  start(node: PgNode, log: (line: string) => void): Promise<void>;
  /** The stopped `node` comes back as a standby of `primary`, never as a second primary. */
  demote(node: PgNode, primary: PgNode): Promise<void>;
  /** `node` is configured to come back as a standby (standby.signal). */
  demoted(node: PgNode): Promise<boolean>;
  /** pg_rewind of the stopped `node` from `source`, leaving it a standby of `source`. */
  rewind(node: PgNode, source: PgNode, log: (line: string) => void): Promise<"rewound" | "no rewind required">;
  /** Deletes the stopped `node`'s data, so its next start clones it fresh from the primary. */
  discard(node: PgNode): Promise<void>;
  /** Records `node` as the primary where the stack keeps it; says where ("sandbox.json", a pulumi command). */
  recordPrimary(node: PgNode): Promise<string>;
  /** The node the stack records as primary, by name. */
  recordedPrimary(): Promise<string>;
  /** Restarts the trading app (it did not reconnect to the new primary by itself). */
  restartApp(log: (line: string) => void): Promise<void>;
}

export async function topologyOf(outputs: StackOutputs): Promise<Topology> {
  const { platform } = outputs;
  switch (platform.kind) {
    case "sandbox":
      return sandboxTopology(await openSandbox({ dir: platform.dir }));
    case "kubernetes":
      return kubernetesTopology(outputs);
    case "docker":
      throw new Refusal(
        "failover of the dev stack (Docker) is done by hand, not by a runbook",
        "follow docs/deploy.md, \"Failover by platform\" → dev: promote the standby with docker exec, switch HAProxy over its admin socket, then `pulumi config set tradeops:primaryNode <node> --stack dev` so the next `pulumi up` keeps it",
      );
  }
}
