/**
 * #8: the failover topology of a Kubernetes stack, through @kubernetes/client-node against a local
 * API server (test/support/fake-kube-api.ts) and a stand-in for `kubectl exec`: the right object is
 * patched in the right patch type, a concurrent change is re-read instead of overwritten, and what a
 * runbook must not do to a pod is refused with the manual step.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { StackOutputs, type PgNode } from "../../contract/outputs.ts";
import { ExitCode, Refusal, StepFailure } from "../../runbooks/engine/errors.ts";
import type { DbNodeShell } from "../../runbooks/platform/db-node.ts";
import { FENCED, kubernetesTopology } from "../../runbooks/platform/topology-kubernetes.ts";
import { topologyOf, type Topology } from "../../runbooks/platform/topology.ts";
import { startFakeKubeApi, type FakeKubeApi, type KubeObject } from "../support/fake-kube-api.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";

const NS = "tradeops";
const node = (i: number, role: "primary" | "standby"): PgNode => ({
  name: `timescale-${i}`,
  host: `timescale-${i}.timescale-headless.${NS}.svc.cluster.local`,
  port: 5432,
  role,
  dataDir: "/home/postgres/pgdata/data",
});
const [pod0, pod1] = [node(0, "primary"), node(1, "standby")];
const outputs = StackOutputs.parse(
  sampleOutputs({
    stack: "prod",
    platform: {
      kind: "kubernetes",
      namespace: NS,
      deployments: { api: "api", worker: "worker" },
      statefulSets: { database: "timescale", redis: "redis" },
      services: { database: "timescale-rw" },
      configMaps: { database: "timescale-config" },
    },
    database: { ...sampleOutputs().database, primary: pod0, standby: pod1, homePrimary: "timescale-0", replication: { mode: "sync", slot: "timescale_1", user: "replicator" } },
  }),
);

let dir: string;
let api: FakeKubeApi;
let execs: Array<{ pod: string; argv: string[] }>;
let configSets: Array<[string, string, string]>;
let configCliPresent: boolean;
/** Whether the stand-in primary reports a walsender for the other pod. */
let streaming: boolean;
let topology: Topology;
const savedKubeconfig = process.env.KUBECONFIG;

/** The stand-in for `kubectl exec`: records argv; a fast stop makes the kubelet restart the container. */
const shell: DbNodeShell = {
  exec: async (target, argv) => {
    execs.push({ pod: target.name, argv });
    if (argv.join(" ").includes("pg_stat_replication")) return streaming ? "1\n" : "0\n";
    if (argv.join(" ").includes("pg_ctl stop")) {
      const pod = api.get("pods", NS, target.name)!;
      pod.status.containerStatuses[0].restartCount += 1;
      api.put("pods", NS, pod);
    }
    return "";
  },
  pgPort: () => 5432,
};

function podObject(name: string, phase = "Running", running = true): KubeObject {
  return {
    metadata: { name, labels: { "app.kubernetes.io/name": "timescale", "statefulset.kubernetes.io/pod-name": name } },
    status: {
      phase,
      conditions: [{ type: "Ready", status: running ? "True" : "False" }],
      containerStatuses: [{ name: "postgres", ready: running, restartCount: 0, image: "timescale", imageID: "x", state: running ? { running: { startedAt: new Date().toISOString() } } : { waiting: { reason: "CrashLoopBackOff" } } }],
    },
  };
}

function seed(): void {
  api.put("services", NS, {
    metadata: { name: "timescale-rw", labels: { "app.kubernetes.io/name": "timescale" } },
    spec: { type: "ClusterIP", selector: { "app.kubernetes.io/name": "timescale", "statefulset.kubernetes.io/pod-name": "timescale-0" }, ports: [{ name: "postgres", port: 5432 }] },
  });
  api.put("configmaps", NS, {
    metadata: { name: "timescale-config", annotations: { "tradeops.io/stack-primary-node": "timescale-0" } },
    data: { "primary-node": "timescale-0", "start-node.sh": "#!/bin/bash" },
  });
  api.put("pods", NS, podObject("timescale-0"));
  api.put("pods", NS, podObject("timescale-1"));
  for (const name of ["api", "worker"]) {
    api.put("deployments", NS, { metadata: { name }, spec: { replicas: 2, selector: { matchLabels: { "app.kubernetes.io/name": name } }, template: { metadata: { labels: { "app.kubernetes.io/name": name } }, spec: { containers: [{ name, image: "x" }] } } } });
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tradeops-kube-topology-"));
  api = await startFakeKubeApi(dir);
  process.env.KUBECONFIG = api.kubeconfig;
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
  if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = savedKubeconfig;
});
beforeEach(() => {
  seed();
  api.patches.length = 0;
  execs = [];
  configSets = [];
  configCliPresent = true;
  streaming = false;
  topology = kubernetesTopology(outputs, {
    shell,
    configSet: async (stack, key, value) => {
      configSets.push([stack, key, value]);
      return { set: configCliPresent, command: `pulumi config set ${key} ${value} --stack ${stack}` };
    },
    pollMs: 10,
    stopTimeoutMs: 2_000,
    readyTimeoutMs: 200,
    rejoinTimeoutMs: 100,
  });
});
afterEach(() => {
  api.patches.length = 0;
});

const selectorOfRw = () => api.get("services", NS, "timescale-rw")!.spec.selector;

describe("#8: Kubernetes traffic — the read-write Service's selector", () => {
  test("I5: routing merge-patches the database Service alone, naming the resourceVersion it read", async () => {
    expect(await topology.routedTo()).toBe("timescale-0");
    await topology.routeTraffic(pod1);
    expect(selectorOfRw()).toEqual({ "app.kubernetes.io/name": "timescale", "statefulset.kubernetes.io/pod-name": "timescale-1" });
    expect(api.patches).toEqual([{ path: `/api/v1/namespaces/${NS}/services/timescale-rw`, contentType: "application/merge-patch+json", status: 200 }]);
    expect(await topology.routedTo()).toBe("timescale-1");
  });

  test("I5: a concurrent change of the Service is re-read, not overwritten", async () => {
    api.beforeNextPatch("services", NS, "timescale-rw", (service) => {
      service.metadata.annotations = { "someone-else": "was here" };
    });
    await topology.routeTraffic(pod1);
    expect(api.patches.map((patch) => patch.status)).toEqual([409, 200]);
    const service = api.get("services", NS, "timescale-rw")!;
    expect(service.metadata.annotations).toEqual({ "someone-else": "was here" });
    expect(service.spec.selector["statefulset.kubernetes.io/pod-name"]).toBe("timescale-1");
  });

  test("fencing points the selector at no pod; a fence that finds another node routed by then changes nothing", async () => {
    await topology.fenceTraffic(pod0);
    expect(selectorOfRw()["statefulset.kubernetes.io/pod-name"]).toBe(FENCED);
    expect(await topology.routedTo()).toBeUndefined();

    seed();
    api.patches.length = 0;
    api.beforeNextPatch("services", NS, "timescale-rw", (service) => {
      service.spec.selector["statefulset.kubernetes.io/pod-name"] = "timescale-1";
    });
    await topology.fenceTraffic(pod0);
    expect(api.patches.map((patch) => patch.status)).toEqual([409]);
    expect(selectorOfRw()["statefulset.kubernetes.io/pod-name"]).toBe("timescale-1");
  });

  test("a Service that keeps changing is a step failure, not an overwrite", async () => {
    const fight = () =>
      api.beforeNextPatch("services", NS, "timescale-rw", (service) => {
        service.metadata.annotations = { round: String(Math.random()) };
        queueMicrotask(fight);
      });
    fight();
    const error = await topology.routeTraffic(pod1).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StepFailure);
    expect((error as Error).message).toBe(`Service ${NS}/timescale-rw changed 5 times while its selector was being set to timescale-1`);
    expect(selectorOfRw()["statefulset.kubernetes.io/pod-name"]).toBe("timescale-0");
  });
});

describe("#8: Kubernetes database nodes", () => {
  test("I5: stop writes standby.signal, then a fast stop through exec; the kubelet restarts it in recovery", async () => {
    const lines: string[] = [];
    expect(await topology.stop(pod0, (line) => lines.push(line))).toBe("stopped");
    expect(execs).toEqual([
      { pod: "timescale-0", argv: ["bash", "-c", "touch '/home/postgres/pgdata/data/standby.signal' && pg_ctl stop -D '/home/postgres/pgdata/data' -m fast -W"] },
    ]);
    expect(lines.join("\n")).toContain("the kubelet restarts it in recovery");
  });

  test("a pod whose postgres does not run was not running; an unreachable pod is refused with the manual step", async () => {
    api.put("pods", NS, podObject("timescale-0", "Running", false));
    expect(await topology.stop(pod0, () => {})).toBe("was not running");
    expect(await topology.running(pod0)).toBe(false);

    api.put("pods", NS, podObject("timescale-0", "Unknown"));
    const error = await topology.stop(pod0, () => {}).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Refusal);
    expect((error as Refusal).exitCode).toBe(ExitCode.refused);
    expect((error as Refusal).message).toBe("cannot reach pod timescale-0 to stop its PostgreSQL (its status is Unknown: the node does not report)");
    expect((error as Refusal).next).toContain(`kubectl -n ${NS} delete pod timescale-0 --grace-period=0 --force`);
    expect(execs).toEqual([]);
  });

  test("demote records the new primary for the pods (not yet for the stack) and points the running old primary at it", async () => {
    expect(await topology.demoted(pod0)).toBe(false);
    await topology.demote(pod0, pod1);
    expect(api.get("configmaps", NS, "timescale-config")!.data).toEqual({ "primary-node": "timescale-1", "start-node.sh": "#!/bin/bash" });
    expect(await topology.demoted(pod0)).toBe(true);
    // The record step comes later and must still run: it checks the stack's record.
    expect(await topology.recordedPrimary()).toBe("timescale-0");
    expect(execs).toHaveLength(1);
    expect(execs[0]!.pod).toBe("timescale-0");
    expect(execs[0]!.argv).toContain(
      `ALTER SYSTEM SET primary_conninfo = 'host=${pod1.host} port=5432 user=replicator passfile=/home/postgres/pgdata/.pgpass application_name=timescale-0'`,
    );
  });

  test("start waits for the pod to be Ready, and names what to read when it is not", async () => {
    await expect(topology.start(pod1, () => {})).resolves.toBeUndefined();
    api.put("pods", NS, podObject("timescale-1", "Running", false));
    await expect(topology.start(pod1, () => {})).rejects.toThrow("pod timescale-1 is not Ready 0.2 s on");
  });

  test("a cleanly stopped old primary that streams again needs no rewind", async () => {
    streaming = true;
    expect(await topology.rewind(pod0, pod1, () => {})).toBe("no rewind required");
    expect(execs[0]).toEqual({ pod: "timescale-1", argv: ["psql", "-X", "-A", "-t", "-U", "postgres", "-d", "postgres", "-c", "select count(*) from pg_stat_replication where application_name = 'timescale-0'"] });
  });

  test("pg_rewind inside a pod and deleting a pod's data are refused, naming the manual step", async () => {
    const rewind = await topology.rewind(pod0, pod1, () => {}).catch((caught: unknown) => caught);
    expect(rewind).toBeInstanceOf(Refusal);
    expect((rewind as Refusal).message).toBe("timescale-0 does not stream from timescale-1, and pg_rewind cannot run inside its pod: PostgreSQL must be stopped, and the container stops with it");
    expect((rewind as Refusal).next).toContain("docs/deploy.md");
    const discard = await topology.discard(pod0).catch((caught: unknown) => caught);
    expect(discard).toBeInstanceOf(Refusal);
    expect((discard as Refusal).next).toContain(`kubectl -n ${NS} delete pvc data-timescale-0 --wait=false && kubectl -n ${NS} delete pod timescale-0`);
    expect(api.patches).toEqual([]);
    expect(execs.every((exec) => exec.argv[0] === "psql")).toBe(true);
  });
});

describe("#8: Kubernetes record of the primary, and the app", () => {
  test("recording the primary writes the ConfigMap and tradeops:primaryNode through the Pulumi adapter", async () => {
    expect(await topology.recordPrimary(pod1)).toBe(`ConfigMap ${NS}/timescale-config and tradeops:primaryNode of stack prod`);
    expect(configSets).toEqual([["prod", "tradeops:primaryNode", "timescale-1"]]);
    expect(await topology.recordedPrimary()).toBe("timescale-1");
    const configMap = api.get("configmaps", NS, "timescale-config")!;
    expect(configMap.data["primary-node"]).toBe("timescale-1");
    expect(configMap.metadata.annotations).toEqual({ "tradeops.io/stack-primary-node": "timescale-1" });
  });

  test("without the pulumi CLI the record names the command to run", async () => {
    configCliPresent = false;
    expect(await topology.recordPrimary(pod1)).toBe(`ConfigMap ${NS}/timescale-config; the pulumi CLI is not here, so run: pulumi config set tradeops:primaryNode timescale-1 --stack prod`);
    // The pods follow timescale-1; the stack's record is not done, so a re-run offers the command again.
    expect(api.get("configmaps", NS, "timescale-config")!.data["primary-node"]).toBe("timescale-1");
    expect(await topology.recordedPrimary()).toBe("timescale-0");
  });

  test("restarting the app patches both Deployments' pod template like `kubectl rollout restart` (strategic merge)", async () => {
    const lines: string[] = [];
    await topology.restartApp((line) => lines.push(line));
    expect(api.patches.map((patch) => [patch.path, patch.contentType])).toEqual([
      [`/apis/apps/v1/namespaces/${NS}/deployments/api`, "application/strategic-merge-patch+json"],
      [`/apis/apps/v1/namespaces/${NS}/deployments/worker`, "application/strategic-merge-patch+json"],
    ]);
    for (const name of ["api", "worker"]) {
      const template = api.get("deployments", NS, name)!.spec.template;
      expect(Date.parse(template.metadata.annotations["kubectl.kubernetes.io/restartedAt"])).toBeGreaterThan(Date.now() - 60_000);
      expect(template.spec.containers).toEqual([{ name, image: "x" }]);
    }
    expect(lines).toHaveLength(2);
  });
});

describe("#8: the fake API server answers as a real one does", () => {
  const core = () => {
    const config = new KubeConfig();
    config.loadFromDefault();
    return config.makeApiClient(CoreV1Api);
  };
  const statusOf = (error: unknown) => (error as { code?: number }).code;

  test("404 for a missing object, 415 for a patch type it does not take, 422 for an invalid value", async () => {
    expect(statusOf(await core().readNamespacedService({ name: "nope", namespace: NS }).catch((e: unknown) => e))).toBe(404);
    const apply = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);
    expect(statusOf(await core().patchNamespacedConfigMap({ name: "timescale-config", namespace: NS, body: { data: {} } }, apply).catch((e: unknown) => e))).toBe(415);
    const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
    expect(statusOf(await core().patchNamespacedConfigMap({ name: "timescale-config", namespace: NS, body: { data: { "primary-node": 1 } } }, merge).catch((e: unknown) => e))).toBe(422);
  });

  test("JSON patch: replace applies; a failed test is 422 and changes nothing", async () => {
    const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
    const body = [
      { op: "test", path: "/data/primary-node", value: "timescale-0" },
      { op: "replace", path: "/data/primary-node", value: "timescale-1" },
    ];
    await core().patchNamespacedConfigMap({ name: "timescale-config", namespace: NS, body }, jsonPatch);
    expect(api.get("configmaps", NS, "timescale-config")!.data["primary-node"]).toBe("timescale-1");
    expect(statusOf(await core().patchNamespacedConfigMap({ name: "timescale-config", namespace: NS, body }, jsonPatch).catch((e: unknown) => e))).toBe(422);
    expect(api.get("configmaps", NS, "timescale-config")!.data["primary-node"]).toBe("timescale-1");
  });
});

describe("#8: topology per platform", () => {
  test("a kubernetes stack gets the Kubernetes topology", async () => {
    const found = await topologyOf(outputs);
    expect(await found.routedTo()).toBe("timescale-0");
  });

  test("the dev stack (Docker) is refused with the by-hand steps in docs/deploy.md", async () => {
    const docker = StackOutputs.parse(sampleOutputs({ stack: "dev", platform: { kind: "docker", containers: { primary: "tradeops-dev-pg-a", standby: "tradeops-dev-pg-b", redis: "r", api: "a" } } }));
    const error = await topologyOf(docker).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Refusal);
    expect((error as Refusal).message).toBe("failover of the dev stack (Docker) is done by hand, not by a runbook");
    expect((error as Refusal).next).toContain("docs/deploy.md");
  });
});
