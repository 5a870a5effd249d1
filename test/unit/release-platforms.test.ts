/**
 * The rollback and upgrade paths of the Docker and Kubernetes stacks (I4, T4, Z7): Kubernetes
 * through @kubernetes/client-node against a local API server with a Deployment controller
 * (test/support/fake-kube-api.ts), Docker through a stand-in `docker` that records every call and
 * answers `inspect` like the real one; the reconcile step's Pulumi command is asserted as printed.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { StackOutputs } from "../../contract/outputs.ts";
import { Refusal, StepFailure } from "../../runbooks/engine/errors.ts";
import { appPlatformOf, REPLICAS_BEFORE_STOP } from "../../runbooks/platform/app.ts";
import { REVISION, releasePlatformOf } from "../../runbooks/platform/release.ts";
import { startFakeKubeApi, type FakeKubeApi } from "../support/fake-kube-api.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";

const NS = "tradeops";
const IMAGE = "ghcr.io/your-org/trading-api";
const app = { current: "1.4.2", previous: "1.4.1", image: IMAGE, imageConfigKey: "tradeops:apiImage" };
const noop = () => {};
let dir: string;
const saved = { KUBECONFIG: process.env.KUBECONFIG, DOCKER_BIN: process.env.DOCKER_BIN, PULUMI_BIN: process.env.PULUMI_BIN };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tradeops-release-"));
  // No Pulumi CLI: the reconcile step must print the exact command instead.
  process.env.PULUMI_BIN = join(dir, "no-pulumi-here");
});
afterAll(() => {
  for (const [key, value] of Object.entries(saved)) value === undefined ? delete process.env[key] : (process.env[key] = value);
  rmSync(dir, { recursive: true, force: true });
});

describe("Kubernetes: rollout undo through the API server (I4)", () => {
  const outputs = StackOutputs.parse(
    sampleOutputs({ stack: "prod", platform: { kind: "kubernetes", namespace: NS, deployments: { api: "api" }, statefulSets: { database: "timescale", redis: "redis" } }, app }),
  );
  let api: FakeKubeApi;
  const template = (tag: string) => ({ metadata: { labels: { app: "api" } }, spec: { containers: [{ name: "api", image: `${IMAGE}:${tag}` }] } });

  beforeEach(async () => {
    api = await startFakeKubeApi(dir, { deploymentController: true });
    process.env.KUBECONFIG = api.kubeconfig;
    api.put("deployments", NS, {
      metadata: { name: "api", uid: "uid-api", generation: 3 },
      spec: { replicas: 2, selector: { matchLabels: { app: "api" } }, template: template("1.4.2") },
      status: { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 },
    });
    ["1.4.0", "1.4.1", "1.4.2"].forEach((tag, i) =>
      api.put("replicasets", NS, {
        metadata: { name: `api-h${i + 1}`, labels: { app: "api", "pod-template-hash": `h${i + 1}` }, annotations: { [REVISION]: String(i + 1) }, ownerReferences: [{ kind: "Deployment", name: "api", uid: "uid-api" }] },
        spec: { replicas: i === 2 ? 2 : 0, template: { ...template(tag), metadata: { labels: { app: "api", "pod-template-hash": `h${i + 1}` } } } },
      }),
    );
  });
  afterEach(() => api.close());

  test("I4: the running and previous release are read from the Deployment and its ReplicaSets", async () => {
    expect(await (await releasePlatformOf(outputs)).releases()).toEqual({ current: "1.4.2", previous: "1.4.1" });
  });

  test("I4: rollback app on Kubernetes restores the previous revision's pod template with a merge patch naming the resourceVersion, and waits for the rollout", async () => {
    const read = api.get("deployments", NS, "api")!;
    const change = await (await releasePlatformOf(outputs, { pollMs: 10 })).rollBack(undefined, noop);
    expect(change).toEqual({ from: "1.4.2", to: "1.4.1", how: "rolled back: rollout undo of deployment api to revision 2" });
    const after = api.get("deployments", NS, "api")!;
    expect(after.spec.template.spec.containers[0].image).toBe(`${IMAGE}:1.4.1`);
    expect(after.spec.template.metadata.labels).toEqual({ app: "api" });
    expect(after.status).toMatchObject({ observedGeneration: after.metadata.generation, updatedReplicas: 2, availableReplicas: 2 });
    // kubectl's semantics: the restored ReplicaSet becomes the newest revision.
    expect(api.get("replicasets", NS, "api-h2")!.metadata.annotations[REVISION]).toBe("4");
    expect(api.patches).toEqual([{ path: `/apis/apps/v1/namespaces/${NS}/deployments/api`, contentType: "application/merge-patch+json", status: 200 }]);
    expect(read.metadata.resourceVersion).not.toBe(after.metadata.resourceVersion);
  });

  test("I4: --to-revision picks that revision; one that does not exist is refused naming the history", async () => {
    const platform = await releasePlatformOf(outputs, { pollMs: 10 });
    expect((await platform.rollBack("1", noop)).to).toBe("1.4.0");
    const refused = await platform.rollBack("9", noop).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(Refusal);
    expect((refused as Error).message).toMatch(/has no revision or release 9 to roll back to \(revisions: 4 \(1\.4\.0\), 3 \(1\.4\.2\), 2 \(1\.4\.1\)\)/);
  });

  test("I4: a rollback the patch loses to a concurrent change is not applied over it (409 from the resourceVersion)", async () => {
    api.beforeNextPatch("deployments", NS, "api", (d) => void (d.spec.replicas = 3));
    await expect((await releasePlatformOf(outputs, { pollMs: 10 })).rollBack(undefined, noop)).rejects.toThrow(/modified/);
    expect(api.get("deployments", NS, "api")!.spec.template.spec.containers[0].image).toBe(`${IMAGE}:1.4.2`);
  });

  test("Z7: an upgrade sets the image and waits for the rollout", async () => {
    const change = await (await releasePlatformOf(outputs, { pollMs: 10 })).deploy("1.5.0", noop);
    expect(change).toMatchObject({ from: "1.4.2", to: "1.5.0" });
    expect(api.get("deployments", NS, "api")!.spec.template.spec.containers[0].image).toBe(`${IMAGE}:1.5.0`);
  });

  test("I4: the reconcile step prints the exact `pulumi config set … && pulumi up` when the Pulumi CLI is not here, and reports it done when it is", async () => {
    const printed = await (await releasePlatformOf(outputs)).reconcile("1.4.1");
    expect(printed).toBe(`the Pulumi CLI is not here: run pulumi config set tradeops:apiImage ${IMAGE}:1.4.1 --stack prod && pulumi up --stack prod`);
    const calls: string[][] = [];
    const set = await (
      await releasePlatformOf(outputs, { configSet: async (stack, key, value) => (calls.push([stack, key, value]), { set: true, command: `pulumi config set ${key} ${value} --stack ${stack}` }) })
    ).reconcile("1.4.1");
    expect(calls).toEqual([["prod", "tradeops:apiImage", `${IMAGE}:1.4.1`]]);
    expect(set).toBe(`pulumi config set tradeops:apiImage ${IMAGE}:1.4.1 --stack prod (done); the next \`pulumi up --stack prod\` keeps 1.4.1`);
  });
});

describe("Docker: the container recreated from the previous tag (I4, T4)", () => {
  const outputs = StackOutputs.parse(
    sampleOutputs({ stack: "dev", platform: { kind: "docker", containers: { primary: "pg-a", standby: "pg-b", redis: "redis", api: "api", worker: "worker" } }, app }),
  );
  const SECRET_ENV = "JWT_SECRET=jwt-Secret-5e6f7a";
  let calls: string;
  let envSeen: string;

  beforeEach(() => {
    calls = join(dir, "docker-calls.txt");
    envSeen = join(dir, "docker-env.txt");
    writeFileSync(calls, "");
    const inspect = [{ Config: { Image: `${IMAGE}:1.4.2`, Env: [SECRET_ENV, "LOG_LEVEL=info"], Labels: { "com.tradeops.role": "api" } }, HostConfig: { NetworkMode: "host", Binds: ["/srv/models:/models:ro"], RestartPolicy: { Name: "unless-stopped" } } }];
    writeFileSync(join(dir, "inspect.json"), JSON.stringify(inspect));
    const bin = join(dir, "docker");
    // Records argv; answers inspect like the real CLI; `run` fails when DOCKER_FAIL_RUN is set.
    writeFileSync(
      bin,
      `#!/bin/bash
echo "$*" >> ${calls}
case "$1" in
  inspect) if [ "$2" = "--format" ]; then case "$3" in *Running*) echo true;; *ExitCode*) echo 0;; esac; else cat ${join(dir, "inspect.json")}; fi;;
  run) for a in "$@"; do if [ -n "$next" ]; then cat "$a" > ${envSeen}; next=; fi; [ "$a" = "--env-file" ] && next=1; done
       [ -n "$DOCKER_FAIL_RUN" ] && { echo "Unable to find image locally" >&2; exit 125; }; echo 0123abcd;;
esac
exit 0
`,
    );
    chmodSync(bin, 0o755);
    process.env.DOCKER_BIN = bin;
    delete process.env.DOCKER_FAIL_RUN;
  });
  const recorded = () => readFileSync(calls, "utf8").trim().split("\n").map((line) => line.replace(/--env-file \S+/, "--env-file <0600 file>"));

  test("I4: rollback app on Docker stops the container, keeps it, runs the previous tag with the same config; the secrets go through an env file, never argv", async () => {
    const change = await (await releasePlatformOf(outputs)).rollBack(undefined, noop);
    expect(change).toEqual({ from: "1.4.2", to: "1.4.1", how: `rolled back: api recreated from ${IMAGE}:1.4.1` });
    expect(recorded()).toEqual([
      "inspect api",
      "stop --time 30 api",
      "rename api api-1.4.2",
      `run --detach --name api --env-file <0600 file> --network host --volume /srv/models:/models:ro --restart unless-stopped --label com.tradeops.role=api ${IMAGE}:1.4.1`,
      "rm api-1.4.2",
    ]);
    expect(readFileSync(calls, "utf8")).not.toContain("jwt-Secret");
    expect(readFileSync(envSeen, "utf8")).toBe(`${SECRET_ENV}\nLOG_LEVEL=info\n`);
  });

  test("I4: a tag that does not run puts the old container back and fails naming it", async () => {
    process.env.DOCKER_FAIL_RUN = "1";
    const failed = await (await releasePlatformOf(outputs)).rollBack("1.3.9", noop).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(StepFailure);
    expect((failed as Error).message).toMatch(/ghcr\.io\/your-org\/trading-api:1\.3\.9 did not start .*; api runs 1\.4\.2 again/);
    expect(recorded().slice(-3)).toEqual(["rm --force api", "rename api-1.4.2 api", "start api"]);
  });

  test("Z4: stop on Docker gives the app the 30 s drain (docker stop --time 30) and reads its exit code", async () => {
    const stopped = await (await appPlatformOf(outputs)).stopApp(noop);
    expect(stopped).toEqual({ outcome: "stopped", drain: "drained cleanly" });
    expect(recorded()).toEqual(["inspect --format {{.State.Running}} api", "stop --time 30 api", "inspect --format {{.State.ExitCode}} api"]);
  });
});

describe("Kubernetes: stop and start by scaling, data kept (Z4, I9, I1)", () => {
  const outputs = StackOutputs.parse(
    sampleOutputs({ stack: "prod", platform: { kind: "kubernetes", namespace: NS, deployments: { api: "api", worker: "worker" }, statefulSets: { database: "timescale", redis: "redis" } } }),
  );
  let api: FakeKubeApi;
  const replicas = (kind: "deployments" | "statefulsets", name: string) => api.get(kind, NS, name)!.spec.replicas;

  beforeEach(async () => {
    api = await startFakeKubeApi(dir, { deploymentController: true });
    process.env.KUBECONFIG = api.kubeconfig;
    const workload = (name: string, n: number) => ({ metadata: { name }, spec: { replicas: n }, status: { replicas: n, readyReplicas: n, availableReplicas: n } });
    api.put("deployments", NS, workload("api", 2));
    api.put("deployments", NS, workload("worker", 1));
    api.put("statefulsets", NS, workload("redis", 1));
    api.put("statefulsets", NS, workload("timescale", 2));
  });
  afterEach(() => api.close());

  test("Z4: stop scales the api, then the worker, Redis and the database to zero, remembering each count; start gives them back in the other order", async () => {
    const platform = await appPlatformOf(outputs);
    expect(await platform.stopApp(noop)).toEqual({ outcome: "stopped", drain: "unknown" });
    expect(replicas("deployments", "api")).toBe(0);
    expect(api.get("deployments", NS, "api")!.metadata.annotations[REPLICAS_BEFORE_STOP]).toBe("2");
    expect(await platform.appRunning()).toBe(false);
    expect(await platform.stopInfra(noop)).toEqual(["worker", "redis", "timescale"]);
    expect(await platform.stopApp(noop)).toEqual({ outcome: "was not running" });

    expect(await platform.startInfra(noop)).toEqual(["timescale", "redis", "worker"]);
    expect(replicas("statefulsets", "timescale")).toBe(2);
    await platform.startApp(noop);
    expect(replicas("deployments", "api")).toBe(2);
    expect(api.get("deployments", NS, "api")!.metadata.annotations?.[REPLICAS_BEFORE_STOP]).toBeUndefined();
    expect(await platform.appRunning()).toBe(true);
    expect(api.patches.every((p) => p.contentType === "application/merge-patch+json" && p.status === 200)).toBe(true);
  });
});
