/**
 * The failover topology of a Kubernetes stack (prod, dr), through @kubernetes/client-node and the
 * database pods' shell (`kubectl exec`, platform/db-node.ts):
 *
 *   traffic         the read-write Service's selector names the primary pod; a merge patch that
 *                   carries the resourceVersion it read, so a concurrent change is re-read, never
 *                   overwritten; fencing points it at no pod
 *   stop            standby.signal first, then a fast stop: the kubelet restarts the container and
 *                   PostgreSQL comes back in recovery, never as a second primary
 *   record          the ConfigMap's `primary-node` (the pods' start script follows it; moved as
 *                   soon as the old primary is fenced) and `tradeops:primaryNode` through the
 *                   Pulumi adapter (or the command to run), mirrored in the ConfigMap's
 *                   annotation: the stack's record, which `recordedPrimary` answers
 *   restart app     the Deployments' pod template annotation, as `kubectl rollout restart` does
 *
 * What a runbook cannot do to a pod — pg_rewind (the container stops with PostgreSQL), deleting a
 * pod's data, stopping a pod it cannot reach — is refused with the manual step (docs/deploy.md).
 */
import { dirname } from "node:path";
import type { AppsV1Api, CoreV1Api, V1ConfigMap, V1Pod, V1Service } from "@kubernetes/client-node";
import { DATABASE_CONFIG_MAP, type PgNode, type StackOutputs } from "../../contract/outputs.ts";
import { Refusal, StepFailure, oneLine } from "../engine/errors.ts";
import { pulumiConfigSet, type ConfigSetResult } from "../pulumi.ts";
import { dbNodeShell, type DbNodeShell } from "./db-node.ts";
import type { Topology } from "./topology.ts";

/** The label a StatefulSet puts on each pod; the read-write Service selects the primary by it. */
export const POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name";
/** A selector value no pod has: the Service routes nowhere. */
export const FENCED = "tradeops-fenced";
const { primaryNode: PRIMARY_NODE_KEY, stackPrimaryNode: STACK_PRIMARY_ANNOTATION } = DATABASE_CONFIG_MAP;
export const RESTARTED_AT = "kubectl.kubernetes.io/restartedAt";
const MERGE_PATCH = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json";
/** A patch that lost the race this many times in a row is a fight, not a race. */
const PATCH_ATTEMPTS = 5;

type KubernetesPlatform = Extract<StackOutputs["platform"], { kind: "kubernetes" }>;

export interface KubernetesTopologyOptions {
  /** Runs commands in a database pod. @default `kubectl exec` in the stack's namespace and context */
  shell?: DbNodeShell;
  /** Records `tradeops:primaryNode`. @default the Pulumi adapter's `pulumiConfigSet` */
  configSet?: (stack: string, key: string, value: string) => Promise<ConfigSetResult>;
  /** How long `start` waits for a pod to be Ready (a clone can take long). @default 600_000 */
  readyTimeoutMs?: number;
  /** How long `stop` waits for the kubelet to see the container stop. @default 60_000 */
  stopTimeoutMs?: number;
  /** How long `rewind` waits for a restarted old primary to stream before it refuses. @default 60_000 */
  rejoinTimeoutMs?: number;
  /** Poll interval of those waits. @default 1_000 */
  pollMs?: number;
}

export function kubernetesTopology(outputs: StackOutputs, options: KubernetesTopologyOptions = {}): Topology {
  const platform = outputs.platform as KubernetesPlatform;
  if (platform.kind !== "kubernetes") throw new Error(`kubernetesTopology needs a kubernetes stack, not ${platform.kind}`);
  const namespace = platform.namespace;
  const serviceName = platform.services?.database ?? `${platform.statefulSets.database}-rw`;
  const configMapName = platform.configMaps?.database ?? `${platform.statefulSets.database}-config`;
  const homePrimary = outputs.database.homePrimary ?? `${platform.statefulSets.database}-0`;
  const shell = options.shell ?? dbNodeShell(outputs);
  const configSet = options.configSet ?? ((stack, key, value) => pulumiConfigSet(stack, key, value));
  const pollMs = options.pollMs ?? 1_000;
  const kubectl = `kubectl${platform.context ? ` --context ${platform.context}` : ""} -n ${namespace}`;
  let apis: Promise<{ core: CoreV1Api; apps: AppsV1Api; patchAs: (contentType: string) => object }> | undefined;

  /** The kubeconfig of the environment (KUBECONFIG or ~/.kube/config), in the stack's context. Loaded on first use. */
  const api = () =>
    (apis ??= import("@kubernetes/client-node").then(({ AppsV1Api, CoreV1Api, KubeConfig, setHeaderOptions }) => {
      const config = new KubeConfig();
      config.loadFromDefault();
      if (platform.context) config.setCurrentContext(platform.context);
      return { core: config.makeApiClient(CoreV1Api), apps: config.makeApiClient(AppsV1Api), patchAs: (contentType: string) => setHeaderOptions("Content-Type", contentType) };
    }));

  const readService = async (): Promise<V1Service> => (await api()).core.readNamespacedService({ name: serviceName, namespace });
  const readConfigMap = async (): Promise<V1ConfigMap> => (await api()).core.readNamespacedConfigMap({ name: configMapName, namespace });
  const readPod = async (pod: string): Promise<V1Pod | undefined> => {
    try {
      return await (await api()).core.readNamespacedPod({ name: pod, namespace });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  };

  /**
   * Sets the Service's pod-name selector to `pod` with a merge patch naming the resourceVersion it
   * read: when someone changed the Service in between, the API server answers 409 and this re-reads
   * and decides again (`unless` may then find there is nothing to do) instead of overwriting.
   */
  async function select(pod: string, unless: (current: string | undefined) => boolean = () => false): Promise<void> {
    const settled = await patchAsRead(
      readService,
      (service) => {
        const current = service.spec?.selector?.[POD_NAME_LABEL];
        if (current === pod || unless(current)) return undefined;
        return { metadata: { resourceVersion: service.metadata?.resourceVersion }, spec: { selector: { [POD_NAME_LABEL]: pod } } };
      },
      async (body) => {
        const { core, patchAs } = await api();
        await core.patchNamespacedService({ name: serviceName, namespace, body }, patchAs(MERGE_PATCH));
      },
    );
    if (settled) return;
    throw new StepFailure(`Service ${namespace}/${serviceName} changed ${PATCH_ATTEMPTS} times while its selector was being set to ${pod}`, `find out who else changes it (\`${kubectl} get service ${serviceName} -o yaml\`), then re-run`);
  }

  /** The pods' record (data key) and, once `tradeops:primaryNode` holds it too, the stack's (annotation). */
  async function recordInConfigMap(node: PgNode, inStack: boolean): Promise<void> {
    const settled = await patchAsRead(
      readConfigMap,
      (configMap) => {
        if (configMap.data?.[PRIMARY_NODE_KEY] === node.name && (!inStack || configMap.metadata?.annotations?.[STACK_PRIMARY_ANNOTATION] === node.name)) return undefined;
        return {
          metadata: { resourceVersion: configMap.metadata?.resourceVersion, ...(inStack ? { annotations: { [STACK_PRIMARY_ANNOTATION]: node.name } } : {}) },
          data: { [PRIMARY_NODE_KEY]: node.name },
        };
      },
      async (body) => {
        const { core, patchAs } = await api();
        await core.patchNamespacedConfigMap({ name: configMapName, namespace, body }, patchAs(MERGE_PATCH));
      },
    );
    if (settled) return;
    throw new StepFailure(`ConfigMap ${namespace}/${configMapName} changed ${PATCH_ATTEMPTS} times while ${node.name} was being recorded`, "re-run: the step checks the record first");
  }

  /** The pod the pods' start script follows. */
  async function followedPrimary(): Promise<string> {
    return (await readConfigMap()).data?.[PRIMARY_NODE_KEY] || homePrimary;
  }

  /** The stack's record (tradeops:primaryNode as deployed or recorded); a stack deployed before it had one: the pods'. */
  async function recordedPrimary(): Promise<string> {
    const configMap = await readConfigMap();
    return configMap.metadata?.annotations?.[STACK_PRIMARY_ANNOTATION] || configMap.data?.[PRIMARY_NODE_KEY] || homePrimary;
  }

  /** An unreachable pod (its node lost) is not stopped by a runbook: that is a person's decision. */
  const unreachable = (pod: string, why: string) =>
    new Refusal(
      `cannot reach pod ${pod} to stop its PostgreSQL (${why})`,
      `make sure it takes no writes — its node is down or cut off — then \`${kubectl} delete pod ${pod} --grace-period=0 --force\` (docs/deploy.md, failover on Kubernetes)`,
    );

  async function waitFor(done: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await done()) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  /** Whether `primary` has a walsender for `standby` (asked in its pod: no network path needed). */
  async function streamsFrom(primary: PgNode, standby: PgNode): Promise<boolean> {
    const query = `select count(*) from pg_stat_replication where application_name = '${standby.name.replaceAll("'", "''")}'`;
    return shell.exec(primary, ["psql", "-X", "-A", "-t", "-U", "postgres", "-d", "postgres", "-c", query]).then(
      (out) => Number(out.trim()) > 0,
      () => false,
    );
  }

  return {
    fenceTraffic: (node) => select(FENCED, (current) => current !== node.name),
    routeTraffic: (node) => select(node.name),
    routedTo: async () => {
      const selected = (await readService()).spec?.selector?.[POD_NAME_LABEL];
      return selected === FENCED ? undefined : selected;
    },
    running: async (node) => postgresRuns(await readPod(node.name)),
    stop: async (node, log) => {
      const pod = await readPod(node.name);
      if (pod?.status?.phase === "Unknown") throw unreachable(node.name, "its status is Unknown: the node does not report");
      if (!postgresRuns(pod)) return "was not running";
      const restarts = restartsOf(pod);
      // standby.signal first: whatever restarts the container (the kubelet does, at once) starts it in recovery.
      try {
        await shell.exec(node, ["bash", "-c", `touch ${shellQuoted(`${node.dataDir}/standby.signal`)} && pg_ctl stop -D ${shellQuoted(node.dataDir)} -m fast -W`]);
      } catch (error) {
        throw unreachable(node.name, `exec failed: ${oneLine(error)}`);
      }
      log(`${node.name}: standby.signal written, fast stop sent; the kubelet restarts it in recovery`);
      const stopped = await waitFor(async () => {
        const now = await readPod(node.name);
        return !postgresRuns(now) || restartsOf(now) > restarts;
      }, options.stopTimeoutMs ?? 60_000);
      if (!stopped) throw new StepFailure(`${node.name}'s postgres container still runs ${(options.stopTimeoutMs ?? 60_000) / 1000} s after a fast stop`, `${kubectl} logs ${node.name} -c postgres`);
      return "stopped";
    },
    start: async (node, log) => {
      // The kubelet starts the container by itself (restartPolicy Always); this waits for it to be Ready.
      const timeoutMs = options.readyTimeoutMs ?? 600_000;
      log(`${node.name}: waiting for the pod to be Ready (the kubelet starts it; the start script follows the recorded primary)`);
      if (!(await waitFor(async () => podReady(await readPod(node.name)), timeoutMs))) {
        throw new StepFailure(`pod ${node.name} is not Ready ${timeoutMs / 1000} s on`, `${kubectl} describe pod ${node.name}; ${kubectl} logs ${node.name} -c postgres`);
      }
    },
    demote: async (node, primary) => {
      // The start script follows the record at every start; a running node is pointed at the primary now.
      await recordInConfigMap(primary, false);
      if (!podReady(await readPod(node.name))) return;
      const conninfo = `host=${primary.host} port=${primary.port} user=${outputs.database.replication.user ?? "replicator"} passfile=${passfileOf(node)} application_name=${node.name}`;
      await shell
        .exec(node, [
          "psql", "-X", "-q", "-U", "postgres", "-d", "postgres",
          "-c", `ALTER SYSTEM SET primary_conninfo = '${conninfo.replaceAll("'", "''")}'`,
          // The slot is created on the primary by the start script at the next start.
          "-c", "ALTER SYSTEM RESET primary_slot_name",
          "-c", "SELECT pg_reload_conf()",
        ])
        .catch(() => {
          // Not ready after all: the start script points it at the record when it starts.
        });
    },
    demoted: async (node) => (await followedPrimary()) !== node.name,
    rewind: async (node, source, log) => {
      // After a clean stop there is nothing to rewind: the node, restarted in recovery and pointed at
      // `source`, streams by itself. Only a node that cannot (its WAL diverged) needs pg_rewind.
      const timeoutMs = options.rejoinTimeoutMs ?? 60_000;
      log(`${node.name}: pg_rewind cannot run inside a pod; waiting up to ${timeoutMs / 1000} s for it to stream from ${source.name} (a clean stop needs no rewind)`);
      if (await waitFor(() => streamsFrom(source, node), timeoutMs)) return "no rewind required";
      throw new Refusal(
        `${node.name} does not stream from ${source.name}, and pg_rewind cannot run inside its pod: PostgreSQL must be stopped, and the container stops with it`,
        `rewind it by hand from a pod that mounts data-${node.name} (docs/deploy.md, failover on Kubernetes), or let it clone ${source.name} afresh: \`${kubectl} delete pvc data-${node.name} --wait=false && ${kubectl} delete pod ${node.name}\``,
      );
    },
    discard: async (node) => {
      throw new Refusal(
        `deleting ${node.name}'s data is not done by a runbook`,
        `when its data is surely not needed: \`${kubectl} delete pvc data-${node.name} --wait=false && ${kubectl} delete pod ${node.name}\` — the StatefulSet recreates both and the empty pod clones the recorded primary`,
      );
    },
    recordPrimary: async (node) => {
      await recordInConfigMap(node, false);
      const recorded = await configSet(outputs.stack, "tradeops:primaryNode", node.name);
      // Without the CLI the stack's record stays as it was: a re-run offers the command again.
      if (recorded.set) await recordInConfigMap(node, true);
      return recorded.set
        ? `ConfigMap ${namespace}/${configMapName} and tradeops:primaryNode of stack ${outputs.stack}`
        : `ConfigMap ${namespace}/${configMapName}; the pulumi CLI is not here, so run: ${recorded.command}`;
    },
    recordedPrimary,
    restartApp: async (log) => {
      const { apps, patchAs } = await api();
      const restartedAt = new Date().toISOString();
      const deployments = [platform.deployments.api, platform.deployments.worker].filter((name): name is string => name !== undefined);
      for (const name of deployments) {
        const body = { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: restartedAt } } } } };
        await apps.patchNamespacedDeployment({ name, namespace, body }, patchAs(STRATEGIC_MERGE_PATCH));
        log(`deployment ${name}: rollout restart (${RESTARTED_AT}=${restartedAt})`);
      }
    },
  };
}

function postgresContainer(pod: V1Pod | undefined) {
  return pod?.status?.containerStatuses?.find((container) => container.name === "postgres");
}

function postgresRuns(pod: V1Pod | undefined): boolean {
  return pod?.status?.phase === "Running" && postgresContainer(pod)?.state?.running !== undefined;
}

function restartsOf(pod: V1Pod | undefined): number {
  return postgresContainer(pod)?.restartCount ?? 0;
}

function podReady(pod: V1Pod | undefined): boolean {
  return pod?.status?.conditions?.some((condition) => condition.type === "Ready" && condition.status === "True") ?? false;
}

/** The start script writes the replication passfile next to PGDATA (infra's PG_PATHS.passfile). */
function passfileOf(node: PgNode): string {
  return `${dirname(node.dataDir)}/.pgpass`;
}

function shellQuoted(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

/**
 * A patch that names the resourceVersion it was decided on (`decide` returns undefined when there
 * is nothing to do): when the object changed in between, the API server answers 409 and this reads
 * and decides again. False after PATCH_ATTEMPTS lost races: a fight, not a race.
 */
async function patchAsRead<T>(read: () => Promise<T>, decide: (current: T) => object | undefined, send: (body: object) => Promise<void>): Promise<boolean> {
  for (let attempt = 0; attempt < PATCH_ATTEMPTS; attempt++) {
    const body = decide(await read());
    if (!body) return true;
    try {
      await send(body);
      return true;
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
  }
  return false;
}
