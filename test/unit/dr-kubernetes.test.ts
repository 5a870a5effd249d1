/**
 * I5: the DR site's app on Kubernetes out of pilot light and back, through @kubernetes/client-node
 * against a local API server (test/support/fake-kube-api.ts, which reflects a `spec.replicas`
 * change in the status at once, as the Deployment controller would with pods that start at once):
 * the Deployments named in `dr.app` are merge-patched to their replicas and back to 0, and what the
 * API server refuses is a step failure naming the Deployment and what to run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { DrApp } from "../../contract/outputs.ts";
import { StepFailure, UsageError } from "../../runbooks/engine/errors.ts";
import { KubernetesDeployments } from "../../runbooks/platform/dr-kubernetes.ts";
import { drPlatformOf } from "../../runbooks/platform/dr-site.ts";
import { parseOutputs } from "../../runbooks/outputs.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";
import { startFakeKubeApi, type FakeKubeApi } from "../support/fake-kube-api.ts";

const NS = "tradeops-dr";
// As the dr stack exports it (infra/stacks/dr.ts); "fake" is the context of the fake's kubeconfig.
const app = DrApp.parse({ kind: "kubernetes", namespace: NS, context: "fake", deployments: [{ name: "api", replicas: 2 }, { name: "worker", replicas: 1 }] });
if (app.kind !== "kubernetes") throw new Error("expected a kubernetes dr.app");
const deploymentPath = (name: string) => `/apis/apps/v1/namespaces/${NS}/deployments/${name}`;

let dir: string;
let api: FakeKubeApi;
let deployments: KubernetesDeployments;
const savedKubeconfig = process.env.KUBECONFIG;

/** A Deployment at pilot light, as the dr stack declares it. */
function pilotLight(name: string, status: Record<string, number> = { replicas: 0, readyReplicas: 0, availableReplicas: 0 }) {
  return {
    metadata: { name, labels: { "app.kubernetes.io/name": name } },
    spec: { replicas: 0, selector: { matchLabels: { "app.kubernetes.io/name": name } }, template: { metadata: { labels: { "app.kubernetes.io/name": name } }, spec: { containers: [{ name, image: "ghcr.io/acme/trading-api:1.4.2" }] } } },
    status,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tradeops-dr-kube-"));
  api = await startFakeKubeApi(dir, { deploymentController: true });
  process.env.KUBECONFIG = api.kubeconfig;
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
  if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = savedKubeconfig;
});
beforeEach(() => {
  for (const name of ["api", "worker"]) api.put("deployments", NS, pilotLight(name));
  api.patches.length = 0;
  api.patchBodies.length = 0;
  deployments = new KubernetesDeployments({ namespace: app.namespace, context: app.context });
});

describe("I5: the DR app's Deployments out of pilot light and back", () => {
  test("I5: activation scales each Deployment of dr.app from 0 to its replicas and waits for them ready; failback scales them back to 0", async () => {
    for (const { name } of app.deployments) expect(await deployments.replicas(name)).toEqual({ desired: 0, ready: 0 });

    for (const { name, replicas } of app.deployments) {
      await deployments.scale(name, replicas);
      expect(await deployments.waitReady(name, replicas, 5_000)).toEqual({ desired: replicas, ready: replicas });
    }
    expect(await deployments.replicas("api")).toEqual({ desired: 2, ready: 2 });
    expect(await deployments.replicas("worker")).toEqual({ desired: 1, ready: 1 });

    for (const { name } of app.deployments) {
      await deployments.scale(name, 0);
      expect(await deployments.waitReady(name, 0, 5_000)).toEqual({ desired: 0, ready: 0 });
    }
    // A merge patch of spec.replicas alone, as `kubectl scale` changes it.
    expect(api.patches).toEqual([
      { path: deploymentPath("api"), contentType: "application/merge-patch+json", status: 200 },
      { path: deploymentPath("worker"), contentType: "application/merge-patch+json", status: 200 },
      { path: deploymentPath("api"), contentType: "application/merge-patch+json", status: 200 },
      { path: deploymentPath("worker"), contentType: "application/merge-patch+json", status: 200 },
    ]);
    expect(api.patchBodies).toEqual([{ spec: { replicas: 2 } }, { spec: { replicas: 1 } }, { spec: { replicas: 0 } }, { spec: { replicas: 0 } }]);
    // Nothing else of the Deployment moved.
    for (const name of ["api", "worker"]) {
      const { spec, metadata } = api.get("deployments", NS, name)!;
      const declared = pilotLight(name);
      expect(spec).toEqual(declared.spec);
      expect(metadata.labels).toEqual(declared.metadata.labels);
    }
  });

  test("I5: a Deployment the cluster does not have is a step failure saying so, with the kubectl that lists what it has", async () => {
    const error = await deployments.scale("api-dr", 2).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StepFailure);
    expect((error as StepFailure).message).toBe(`Deployment ${NS}/api-dr (context fake) does not exist`);
    expect((error as StepFailure).next).toBe(`compare the DR stack's dr.app.deployments with what the cluster has: kubectl --context fake -n ${NS} get deployments`);
    expect(api.patches).toEqual([{ path: deploymentPath("api-dr"), contentType: "application/merge-patch+json", status: 404 }]);
    await expect(deployments.replicas("api-dr")).rejects.toThrow(`Deployment ${NS}/api-dr (context fake) does not exist`);
    await expect(deployments.waitReady("api-dr", 2, 1_000)).rejects.toThrow(StepFailure);
  });

  test("I5: a patch the API server refuses is a step failure with its reason and the command to run by hand; the Deployment stays at 0", async () => {
    const forbidden = `deployments.apps "api" is forbidden: User "ops" cannot patch resource "deployments" in API group "apps" in the namespace "${NS}"`;
    api.refuseNextPatch("deployments", NS, "api", { code: 403, reason: "Forbidden", message: forbidden });
    const error = await deployments.scale("api", 2).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StepFailure);
    expect((error as StepFailure).message).toBe(`the API server refused to scale Deployment ${NS}/api (context fake) to 2: ${forbidden} (HTTP 403)`);
    expect((error as StepFailure).next).toContain(`kubectl --context fake -n ${NS} scale deployment/api --replicas=2`);
    expect(api.patches.map((patch) => patch.status)).toEqual([403]);
    expect(await deployments.replicas("api")).toEqual({ desired: 0, ready: 0 });
  });

  test("I5: pods that do not become ready in time are a step failure naming what was found, after polling to the deadline", async () => {
    // Asked for 2, one pod never passes its readiness probe.
    api.put("deployments", NS, { ...pilotLight("api", { replicas: 2, readyReplicas: 1, availableReplicas: 1 }), spec: { ...pilotLight("api").spec, replicas: 2 } });
    const started = Date.now();
    const error = await deployments.waitReady("api", 2, 600).catch((caught: unknown) => caught);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect(error).toBeInstanceOf(StepFailure);
    expect((error as StepFailure).message).toBe(`Deployment ${NS}/api (context fake) has 1 of 2 replica(s) ready (2 pod(s), 2 asked for) after 0.6 s`);
    expect((error as StepFailure).next).toBe(`see why its pods are not ready: kubectl --context fake -n ${NS} describe deployment/api`);
  });

  test("scaling down waits until the Deployment counts no pod, not just no ready one", async () => {
    api.put("deployments", NS, pilotLight("worker", { replicas: 1, readyReplicas: 0, availableReplicas: 0 }));
    await expect(deployments.waitReady("worker", 0, 300)).rejects.toThrow(`Deployment ${NS}/worker (context fake) has 0 of 0 replica(s) ready (1 pod(s), 0 asked for) after 0.3 s`);
  });

  test("an aborted wait stops at once with the signal's reason", async () => {
    api.put("deployments", NS, { ...pilotLight("api"), spec: { ...pilotLight("api").spec, replicas: 2 } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("interrupted by SIGINT")), 100);
    const started = Date.now();
    await expect(deployments.waitReady("api", 2, 30_000, controller.signal)).rejects.toThrow("interrupted by SIGINT");
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test("inputs are checked before anything is sent", async () => {
    expect(() => new KubernetesDeployments({ namespace: "Tradeops DR" })).toThrow(UsageError);
    await expect(deployments.scale("api", -1)).rejects.toThrow(new UsageError("scale: replicas: replicas must be 0 or more"));
    await expect(deployments.scale("api", 1.5)).rejects.toThrow(UsageError);
    await expect(deployments.scale("API/../x", 1)).rejects.toThrow(UsageError);
    await expect(deployments.waitReady("api", 1, 0)).rejects.toThrow(UsageError);
    await expect(deployments.replicas("")).rejects.toThrow(/^replicas: name: a Kubernetes object name/);
    expect(api.patches).toEqual([]);
  });
});

describe("I5, I6: the DR runbooks' platform on Kubernetes (drPlatformOf)", () => {
  const PROD_NS = "tradeops";
  const outputs = parseOutputs(
    sampleOutputs({
      stack: "prod",
      platform: { kind: "kubernetes", namespace: PROD_NS, context: "fake", deployments: { api: "api", worker: "worker" }, statefulSets: { database: "timescale", redis: "redis" } },
      dr: {
        name: "dr",
        region: "eu-central-1",
        database: { name: "timescale-0", host: "timescale-0.timescale.tradeops-dr.svc.cluster.local", port: 5432, role: "standby", dataDir: "/var/lib/postgresql/data" },
        app,
      },
    }),
    "the test",
  );

  test("I5: the DR app leaves pilot light at its configured replicas and goes back to 0; the primary site's app is scaled to 0; re-seeding refuses, naming the procedure", async () => {
    for (const name of ["api", "worker"]) api.put("deployments", PROD_NS, { ...pilotLight(name), spec: { ...pilotLight(name).spec, replicas: 3 }, status: { replicas: 3, readyReplicas: 3, availableReplicas: 3 } });
    const platform = await drPlatformOf(outputs);
    const lines: string[] = [];
    await platform.startDrApp((line) => lines.push(line));
    expect(app.deployments.map(({ name }) => api.get("deployments", NS, name)?.spec.replicas)).toEqual([2, 1]);
    expect(lines).toEqual(["api: 2 replica(s) ready", "worker: 1 replica(s) ready"]);
    expect(await platform.stopPrimaryApp(() => {})).toBe("scaled api, worker to 0");
    expect(["api", "worker"].map((name) => api.get("deployments", PROD_NS, name)?.spec.replicas)).toEqual([0, 0]);
    await platform.stopDrApp(() => {});
    expect(app.deployments.map(({ name }) => api.get("deployments", NS, name)?.spec.replicas)).toEqual([0, 0]);
    await expect(platform.followDr(outputs.database.primary, () => {})).rejects.toThrow(/re-seeding the primary site's database from the DR site is not automated on Kubernetes/);
    // Without a Route53 pair nothing would move users: refused, not pretended.
    await expect(platform.routeSite("dr")).rejects.toThrow(/no Route53 failover pair/);
  });
});
