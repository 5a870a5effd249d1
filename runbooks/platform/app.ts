/**
 * What `stop`, `start` and the kill switch's first fallback do to the trading app and the
 * infrastructure under it (Z4, I1, I9): stop the app gracefully and say whether it drained, start
 * it, stop and start the database and Redis keeping their data. One interface, one implementation
 * per platform, so the runbooks never branch on it.
 *
 *   sandbox     the sandbox's processes by PID (sandbox/index.ts); the app's own log says whether
 *               its drain finished (`shut down`) or hit the 30 s cap
 *   docker      `docker stop --time 30` (SIGTERM, then SIGKILL after 30 s) and the container's exit
 *               code: 0 drained, 137 killed at the cap. `DOCKER_BIN` overrides the binary (tests
 *               record the calls)
 *   kubernetes  `kubectl scale` through @kubernetes/client-node: the api Deployment (then the
 *               worker, Redis and the database StatefulSets) to 0 replicas, each remembering its
 *               count in an annotation for `start`; the pods' terminationGracePeriodSeconds is the
 *               drain, which the API server does not report on (so: "unknown"). PersistentVolumes
 *               stay: scaling to zero keeps the data
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { StackOutputs } from "../../contract/outputs.ts";
import { openSandbox, type ComponentName, type Sandbox } from "../../sandbox/index.ts";
import { StepFailure, oneLine } from "../engine/errors.ts";
import { appsApiOf, MERGE_PATCH, type KubernetesPlatform } from "./kubernetes-apps.ts";
import { stopIfRunning } from "./sandbox-nodes.ts";

/** Z4: the seed's graceful shutdown cap: refuse new requests, drain, close websockets within 30 s. */
export const DRAIN_CAP_S = 30;

export type Drain = "drained cleanly" | "drain hit the 30 s cap" | "killed before it drained" | "unknown";

export interface AppStop {
  outcome: "stopped" | "was not running";
  /** How the app's graceful shutdown ended; undefined when it was not running. */
  drain?: Drain;
}

export interface AppPlatform {
  /** SIGTERM, up to DRAIN_CAP_S for in-flight requests, then the report of how the drain ended. */
  stopApp(log: (line: string) => void): Promise<AppStop>;
  startApp(log: (line: string) => void): Promise<void>;
  appRunning(): Promise<boolean>;
  /** Stops the worker, Redis and the database (standby after primary), keeping every byte of data; returns what it stopped. */
  stopInfra(log: (line: string) => void): Promise<string[]>;
  /** Starts the database (primary, then standby) and Redis; returns what it started. */
  startInfra(log: (line: string) => void): Promise<string[]>;
}

export async function appPlatformOf(outputs: StackOutputs): Promise<AppPlatform> {
  const { platform } = outputs;
  switch (platform.kind) {
    case "sandbox":
      return sandboxApp(await openSandbox({ dir: platform.dir }), outputs);
    case "docker":
      return dockerApp(platform.containers);
    case "kubernetes":
      return kubernetesApp(platform);
  }
}

function sandboxApp(sandbox: Sandbox, outputs: StackOutputs): AppPlatform {
  const appLog = join(sandbox.logsDir, "ops-api.log");
  const primary = outputs.database.primary.name as ComponentName;
  const standby = outputs.database.standby?.name as ComponentName | undefined;
  // The primary stops first: its shutdown checkpoint streams to the standby, so both stop at the same point.
  const infra: ComponentName[] = ["redis", "haproxy", primary, ...(standby ? [standby] : [])];
  return {
    stopApp: async (log) => {
      const from = sizeOf(appLog);
      const outcome = await stopIfRunning(sandbox, "ops-api", log);
      if (outcome === "was not running") return { outcome };
      return { outcome, drain: drainFromLog(readFrom(appLog, from)) };
    },
    startApp: (log) => sandbox.start("ops-api", log),
    appRunning: async () => sandbox.pid("ops-api") !== undefined,
    stopInfra: async (log) => {
      const stopped: string[] = [];
      for (const component of infra) if ((await stopIfRunning(sandbox, component, log)) === "stopped") stopped.push(component);
      return stopped;
    },
    startInfra: async (log) => {
      const started: string[] = [];
      for (const component of [primary, ...(standby ? [standby] : []), "haproxy", "redis"] as ComponentName[]) {
        if (sandbox.pid(component) !== undefined) continue;
        await sandbox.start(component, log);
        started.push(component);
      }
      return started;
    },
  };
}

/** The ops API's last words (sandbox/ops-api/main.ts): `shut down` after a drain, `drain exceeded its cap` at it. */
export function drainFromLog(tail: string): Drain {
  if (tail.includes('"msg":"shut down"')) return "drained cleanly";
  if (tail.includes("drain exceeded its cap")) return "drain hit the 30 s cap";
  if (tail.includes("shutting down")) return "killed before it drained";
  return "unknown";
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const length = Math.max(0, statSync(file).size - offset);
    const buffer = Buffer.alloc(Math.min(length, 1024 * 1024));
    readSync(fd, buffer, 0, buffer.length, offset);
    return buffer.toString("utf8");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

type DockerContainers = Extract<StackOutputs["platform"], { kind: "docker" }>["containers"];

/** `docker …` through zx; `DOCKER_BIN` points tests at a stand-in that records its argv. */
export async function docker(argv: string[], signal?: AbortSignal): Promise<string> {
  const bin = process.env.DOCKER_BIN ?? "docker";
  const { $ } = await import("zx");
  const run = await $({ quiet: true, nothrow: true, signal, timeout: `${DRAIN_CAP_S + 30}s` })`${bin} ${argv}`;
  if (run.exitCode !== 0) throw new StepFailure(`docker ${argv.join(" ")} failed: ${oneLine(run.stderr || run.stdout || `exit ${run.exitCode}`)}`, "check `docker ps -a` and the container's log");
  return run.stdout.trim();
}

function dockerApp(containers: DockerContainers): AppPlatform {
  const running = async (name: string) => (await docker(["inspect", "--format", "{{.State.Running}}", name])) === "true";
  const infra = [containers.redis, containers.primary, ...(containers.standby ? [containers.standby] : [])];
  return {
    stopApp: async (log) => {
      if (!(await running(containers.api))) return { outcome: "was not running" };
      await docker(["stop", "--time", String(DRAIN_CAP_S), containers.api]);
      const exitCode = await docker(["inspect", "--format", "{{.State.ExitCode}}", containers.api]);
      log(`${containers.api} exited with ${exitCode}`);
      return { outcome: "stopped", drain: exitCode === "0" ? "drained cleanly" : exitCode === "137" ? "killed before it drained" : exitCode === "1" ? "drain hit the 30 s cap" : "unknown" };
    },
    startApp: async () => void (await docker(["start", containers.api])),
    appRunning: () => running(containers.api),
    stopInfra: async () => {
      const names = [...(containers.worker ? [containers.worker] : []), ...infra];
      await docker(["stop", ...names]);
      return names;
    },
    startInfra: async () => {
      const names = [containers.primary, ...(containers.standby ? [containers.standby] : []), containers.redis];
      await docker(["start", ...names]);
      return names;
    },
  };
}

// ---- Kubernetes -------------------------------------------------------------------------------------

/** The replica count a workload had before `stop` scaled it to zero: what `start` gives back. */
export const REPLICAS_BEFORE_STOP = "tradeops.io/replicas-before-stop";
type Workload = { kind: "deployment" | "statefulset"; name: string };

export function kubernetesApp(platform: KubernetesPlatform, options: { timeoutMs?: number; pollMs?: number } = {}): AppPlatform {
  const { namespace } = platform;
  const api = appsApiOf(platform);
  const read = async ({ kind, name }: Workload) => {
    const { apps } = await api();
    return kind === "deployment" ? apps.readNamespacedDeployment({ name, namespace }) : apps.readNamespacedStatefulSet({ name, namespace });
  };
  const patch = async ({ kind, name }: Workload, body: object) => {
    const { apps, patchAs } = await api();
    if (kind === "deployment") await apps.patchNamespacedDeployment({ name, namespace, body }, patchAs(MERGE_PATCH));
    else await apps.patchNamespacedStatefulSet({ name, namespace, body }, patchAs(MERGE_PATCH));
  };
  const waitFor = async (workload: Workload, replicas: number, log: (line: string) => void) => {
    const deadline = Date.now() + (options.timeoutMs ?? (DRAIN_CAP_S + 90) * 1_000);
    for (;;) {
      const status = (await read(workload)).status;
      const ready = workload.kind === "deployment" ? (status as { availableReplicas?: number } | undefined)?.availableReplicas : status?.readyReplicas;
      if ((status?.replicas ?? 0) === replicas && (ready ?? 0) === replicas) return log(`${workload.kind} ${workload.name}: ${replicas} replica(s)`);
      if (Date.now() > deadline) throw new StepFailure(`${workload.kind} ${workload.name} did not reach ${replicas} replica(s) in time (${status?.replicas ?? 0} now)`, `kubectl -n ${namespace} describe ${workload.kind}/${workload.name}`);
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1_000));
    }
  };
  /** To zero, remembering the count (a second stop keeps the first count). */
  const scaleDown = async (workload: Workload, log: (line: string) => void): Promise<boolean> => {
    const current = await read(workload);
    const replicas = current.spec?.replicas ?? 1;
    if (replicas === 0) return false;
    await patch(workload, { metadata: { resourceVersion: current.metadata?.resourceVersion, annotations: { [REPLICAS_BEFORE_STOP]: String(replicas) } }, spec: { replicas: 0 } });
    await waitFor(workload, 0, log);
    return true;
  };
  const scaleUp = async (workload: Workload, log: (line: string) => void): Promise<boolean> => {
    const current = await read(workload);
    if ((current.spec?.replicas ?? 0) > 0) return false;
    const replicas = Number(current.metadata?.annotations?.[REPLICAS_BEFORE_STOP] ?? 1) || 1;
    await patch(workload, { metadata: { resourceVersion: current.metadata?.resourceVersion, annotations: { [REPLICAS_BEFORE_STOP]: null } }, spec: { replicas } });
    await waitFor(workload, replicas, log);
    return true;
  };
  const apiWorkload: Workload = { kind: "deployment", name: platform.deployments.api };
  const infra: Workload[] = [
    ...(platform.deployments.worker ? [{ kind: "deployment" as const, name: platform.deployments.worker }] : []),
    { kind: "statefulset", name: platform.statefulSets.redis },
    { kind: "statefulset", name: platform.statefulSets.database },
  ];
  return {
    stopApp: async (log) => ((await scaleDown(apiWorkload, log)) ? { outcome: "stopped", drain: "unknown" } : { outcome: "was not running" }),
    startApp: async (log) => void (await scaleUp(apiWorkload, log)),
    appRunning: async () => ((await read(apiWorkload)).status?.replicas ?? 0) > 0,
    stopInfra: async (log) => {
      const stopped: string[] = [];
      for (const workload of infra) if (await scaleDown(workload, log)) stopped.push(workload.name);
      return stopped;
    },
    startInfra: async (log) => {
      const started: string[] = [];
      // Z4: the database first, then Redis, then the worker; the app comes after, with `startApp`.
      for (const workload of [...infra].reverse()) if (await scaleUp(workload, log)) started.push(workload.name);
      return started;
    },
  };
}
