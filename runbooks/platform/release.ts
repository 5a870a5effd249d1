/**
 * What `rollback app` and `upgrade app` do to the platform (I4, Z7, T4): find the running and the
 * previous release, put another one in place and wait for it, and record it where the stack keeps
 * it so the next `pulumi up` does not roll forward again. One interface, one implementation per
 * platform:
 *
 *   sandbox     the reference API restarted on another release (sandbox/ops-api/releases.json);
 *               the sandbox's release.json is its record
 *   docker      the seed's `docker tag …:previous`: the container is recreated from the other
 *               tag with the same environment, network, mounts and restart policy; the old one is
 *               kept (renamed, stopped) until the new one runs. `DOCKER_BIN` overrides the binary
 *   kubernetes  `kubectl rollout undo [--to-revision]` through @kubernetes/client-node: the
 *               ReplicaSet of that revision gives its pod template back to the Deployment (a
 *               merge patch naming the resourceVersion read), then the rollout is waited for
 *
 * Docker and Kubernetes then set the image in the stack config (`app.imageConfigKey`) through the
 * Pulumi adapter, or print the exact `pulumi config set … && pulumi up` when the CLI is not here.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Deployment, V1ReplicaSet } from "@kubernetes/client-node";
import type { StackOutputs } from "../../contract/outputs.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { Refusal, StepFailure, oneLine } from "../engine/errors.ts";
import { pulumiConfigSet, shellWord, type ConfigSetResult } from "../pulumi.ts";
import { docker } from "./app.ts";
import { appsApiOf, MERGE_PATCH, type KubernetesPlatform } from "./kubernetes-apps.ts";

export interface ReleaseChange {
  from: string;
  to: string;
  /** How it was done, for the report: "restarted the reference API", "rollout undo to revision 3". */
  how: string;
}

export interface ReleasePlatform {
  /** The release running now and the one before it, as the platform records them. */
  releases(): Promise<{ current: string; previous?: string }>;
  /** Every release it can run (the sandbox's catalogue); undefined where any tag goes. */
  known(): Promise<string[] | undefined>;
  /** The schema version a release needs (its migrations), where the platform knows it. */
  schemaVersionOf(release: string): Promise<number | undefined>;
  /** Puts `release` in place of the running one (roll forward) and waits until it runs. */
  deploy(release: string, log: (line: string) => void): Promise<ReleaseChange>;
  /** Back to `to` (a release, or a Kubernetes revision number), by default the previous; waits until it runs. */
  rollBack(to: string | undefined, log: (line: string) => void): Promise<ReleaseChange>;
  /** Records `release` where the stack keeps it; says where, or the command to run. */
  reconcile(release: string, signal?: AbortSignal): Promise<string>;
}

export interface ReleasePlatformOptions {
  /** Records the image in the stack config. @default the Pulumi adapter's `pulumiConfigSet` */
  configSet?: (stack: string, key: string, value: string) => Promise<ConfigSetResult>;
  /** How long a Kubernetes rollout may take. @default 300_000 */
  rolloutTimeoutMs?: number;
  pollMs?: number;
}

export async function releasePlatformOf(outputs: StackOutputs, options: ReleasePlatformOptions = {}): Promise<ReleasePlatform> {
  const { platform } = outputs;
  switch (platform.kind) {
    case "sandbox":
      return sandboxReleases(platform.dir);
    case "docker":
      return dockerReleases(outputs, platform.containers.api, options);
    case "kubernetes":
      return kubernetesReleases(outputs, options);
  }
}

async function sandboxReleases(dir: string): Promise<ReleasePlatform> {
  const sandbox = await openSandbox({ dir });
  const releaseCatalogue = () => sandbox.app.releases();
  const deploy = async (to: string, log: (line: string) => void, verb: string): Promise<ReleaseChange> => {
    const from = sandbox.app.release().current;
    if (!releaseCatalogue().includes(to)) throw new Refusal(`the sandbox has no release ${to} (it has ${releaseCatalogue().join(", ")})`);
    await sandbox.app.deploy(to, log);
    return { from, to, how: `${verb}: the reference API restarted on release ${to}` };
  };
  return {
    releases: async () => sandbox.app.release(),
    known: async () => releaseCatalogue(),
    schemaVersionOf: async (release) => sandbox.app.schemaVersionOf(release),
    deploy: (release, log) => deploy(release, log, "rolled forward"),
    rollBack: async (to, log) => {
      const target = to ?? sandbox.app.release().previous;
      if (!target) throw new Refusal("the sandbox records no previous release", "name one: --to RELEASE");
      return deploy(target, log, "rolled back");
    },
    reconcile: async () => "the sandbox's release.json (and outputs.json) record it",
  };
}

// ---- Docker -----------------------------------------------------------------------------------------

/** What `docker inspect` says of the app container that a recreate must keep. */
interface ContainerConfig {
  Config: { Image: string; Env?: string[]; Labels?: Record<string, string> };
  HostConfig: { NetworkMode?: string; Binds?: string[] | null; RestartPolicy?: { Name?: string }; PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }>> | null };
}

const tagOf = (image: string) => (image.includes(":") && !image.endsWith("]") ? image.slice(image.lastIndexOf(":") + 1) : "latest");
const repoOf = (image: string) => (image.includes(":") ? image.slice(0, image.lastIndexOf(":")) : image);

function dockerReleases(outputs: StackOutputs, container: string, options: ReleasePlatformOptions): ReleasePlatform {
  const inspect = async (): Promise<ContainerConfig> => (JSON.parse(await docker(["inspect", container])) as ContainerConfig[])[0]!;
  const recreate = async (to: string, log: (line: string) => void, verb: string): Promise<ReleaseChange> => {
    const config = await inspect();
    const from = tagOf(config.Config.Image);
    const image = `${outputs.app?.image ?? repoOf(config.Config.Image)}:${to}`;
    const kept = `${container}-${from}`;
    // The environment holds secrets: a 0600 file, never the argv `ps` shows.
    const envDir = mkdtempSync(join(tmpdir(), "tradeops-env-"));
    const envFile = join(envDir, "env");
    writeFileSync(envFile, `${(config.Config.Env ?? []).join("\n")}\n`, { mode: 0o600 });
    try {
      await docker(["stop", "--time", "30", container]);
      await docker(["rename", container, kept]);
      log(`${container} (${from}) stopped and kept as ${kept}`);
      const run = ["run", "--detach", "--name", container, "--env-file", envFile];
      if (config.HostConfig.NetworkMode) run.push("--network", config.HostConfig.NetworkMode);
      for (const bind of config.HostConfig.Binds ?? []) run.push("--volume", bind);
      for (const [port, bindings] of Object.entries(config.HostConfig.PortBindings ?? {})) {
        for (const b of bindings) run.push("--publish", `${b.HostIp ? `${b.HostIp}:` : ""}${b.HostPort}:${port.split("/")[0]}`);
      }
      if (config.HostConfig.RestartPolicy?.Name && config.HostConfig.RestartPolicy.Name !== "no") run.push("--restart", config.HostConfig.RestartPolicy.Name);
      for (const [key, value] of Object.entries(config.Config.Labels ?? {})) run.push("--label", `${key}=${value}`);
      try {
        await docker([...run, image]);
      } catch (error) {
        // The undo: the old container comes back under its name.
        await docker(["rm", "--force", container]).catch(() => undefined);
        await docker(["rename", kept, container]);
        await docker(["start", container]);
        throw new StepFailure(`${image} did not start (${oneLine(error)}); ${container} runs ${from} again`, `check that ${image} exists: docker image ls ${repoOf(image)}`);
      }
      await docker(["rm", kept]);
      return { from, to, how: `${verb}: ${container} recreated from ${image}` };
    } finally {
      rmSync(envDir, { recursive: true, force: true });
    }
  };
  return {
    releases: async () => {
      const current = tagOf((await inspect()).Config.Image);
      return { current, previous: outputs.app?.previous };
    },
    known: async () => undefined,
    schemaVersionOf: async () => undefined,
    deploy: (release, log) => recreate(release, log, "rolled forward"),
    rollBack: async (to, log) => {
      const target = to ?? outputs.app?.previous ?? "previous";
      return recreate(target, log, "rolled back");
    },
    reconcile: (release) => reconcileImage(outputs, release, options),
  };
}

async function reconcileImage(outputs: StackOutputs, release: string, options: ReleasePlatformOptions): Promise<string> {
  const key = outputs.app?.imageConfigKey ?? "tradeops:apiImage";
  const image = outputs.app?.image;
  if (!image) return `the outputs name no app.image: set ${key} to the ${release} image by hand (pulumi config set ${key} <image>:${release} --stack ${outputs.stack} && pulumi up --stack ${outputs.stack})`;
  const set = await (options.configSet ?? ((stack, k, v) => pulumiConfigSet(stack, k, v)))(outputs.stack, key, `${image}:${release}`);
  const up = `pulumi up --stack ${shellWord(outputs.stack)}`;
  return set.set ? `${set.command} (done); the next \`${up}\` keeps ${release}` : `the Pulumi CLI is not here: run ${set.command} && ${up}`;
}

// ---- Kubernetes -------------------------------------------------------------------------------------

/** The annotation the Deployment controller numbers each ReplicaSet's revision with. */
export const REVISION = "deployment.kubernetes.io/revision";

function kubernetesReleases(outputs: StackOutputs, options: ReleasePlatformOptions): ReleasePlatform {
  const platform = outputs.platform as KubernetesPlatform;
  const { namespace } = platform;
  const name = platform.deployments.api;
  const pollMs = options.pollMs ?? 1_000;
  const api = appsApiOf(platform);
  const deployment = async () => (await api()).apps.readNamespacedDeployment({ name, namespace });
  const imageOf = (d: V1Deployment | V1ReplicaSet) => d.spec?.template?.spec?.containers?.[0]?.image ?? "";
  /** The Deployment's ReplicaSets (owned by it), newest revision first. */
  const replicaSets = async (d: V1Deployment): Promise<V1ReplicaSet[]> => {
    const selector = Object.entries(d.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
    const list = await (await api()).apps.listNamespacedReplicaSet({ namespace, labelSelector: selector });
    return list.items
      .filter((rs) => rs.metadata?.ownerReferences?.some((owner) => owner.kind === "Deployment" && owner.uid === d.metadata?.uid))
      .sort((a, b) => revisionOf(b) - revisionOf(a));
  };
  const waitForRollout = async (log: (line: string) => void): Promise<void> => {
    const deadline = Date.now() + (options.rolloutTimeoutMs ?? 300_000);
    for (;;) {
      const d = await deployment();
      const want = d.spec?.replicas ?? 1;
      const s = d.status ?? {};
      if ((s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) && (s.updatedReplicas ?? 0) >= want && (s.availableReplicas ?? 0) >= want && (s.replicas ?? 0) <= want) {
        return log(`deployment ${name}: ${want}/${want} updated and available`);
      }
      if (Date.now() > deadline) throw new StepFailure(`deployment ${name} did not finish its rollout within ${(options.rolloutTimeoutMs ?? 300_000) / 1000} s (${s.updatedReplicas ?? 0} updated, ${s.availableReplicas ?? 0} available of ${want})`, `kubectl -n ${namespace} rollout status deployment/${name}; kubectl -n ${namespace} describe deployment/${name}`);
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  };
  /** kubectl's rollout undo: the chosen ReplicaSet's pod template (without pod-template-hash) goes back to the Deployment. */
  const undoTo = async (rs: V1ReplicaSet, d: V1Deployment, log: (line: string) => void): Promise<void> => {
    const template = structuredClone(rs.spec!.template!);
    delete template.metadata?.labels?.["pod-template-hash"];
    const body = { metadata: { resourceVersion: d.metadata?.resourceVersion }, spec: { template } };
    const { apps, patchAs } = await api();
    await apps.patchNamespacedDeployment({ name, namespace, body }, patchAs(MERGE_PATCH));
    log(`deployment ${name}: pod template of revision ${revisionOf(rs)} (${imageOf(rs)}) restored`);
    await waitForRollout(log);
  };
  return {
    releases: async () => {
      const d = await deployment();
      const sets = await replicaSets(d);
      return { current: tagOf(imageOf(d)), previous: sets[1] ? tagOf(imageOf(sets[1])) : outputs.app?.previous };
    },
    known: async () => undefined,
    schemaVersionOf: async () => undefined,
    deploy: async (release, log) => {
      const d = await deployment();
      const from = tagOf(imageOf(d));
      const containers = d.spec!.template!.spec!.containers.map((c, i) => (i === 0 ? { name: c.name, image: `${outputs.app?.image ?? repoOf(c.image ?? "")}:${release}` } : { name: c.name }));
      const { apps, patchAs } = await api();
      await apps.patchNamespacedDeployment({ name, namespace, body: { spec: { template: { spec: { containers } } } } }, patchAs("application/strategic-merge-patch+json"));
      await waitForRollout(log);
      return { from, to: release, how: `rolled forward: deployment ${name} set to ${containers[0]!.image}` };
    },
    rollBack: async (to, log) => {
      const d = await deployment();
      const from = tagOf(imageOf(d));
      const sets = await replicaSets(d);
      const current = sets[0];
      let target: V1ReplicaSet | undefined;
      if (to === undefined) target = sets[1];
      else if (/^\d+$/.test(to)) target = sets.find((rs) => revisionOf(rs) === Number(to));
      else target = sets.find((rs) => tagOf(imageOf(rs)) === to && rs !== current);
      if (!target) {
        const have = sets.map((rs) => `${revisionOf(rs)} (${tagOf(imageOf(rs))})`).join(", ");
        throw new Refusal(`deployment ${name} has no ${to === undefined ? "previous revision" : `revision or release ${to}`} to roll back to (revisions: ${have || "none"})`, `kubectl -n ${namespace} rollout history deployment/${name}`);
      }
      await undoTo(target, d, log);
      return { from, to: tagOf(imageOf(target)), how: `rolled back: rollout undo of deployment ${name} to revision ${revisionOf(target)}` };
    },
    reconcile: (release) => reconcileImage(outputs, release, options),
  };
}

function revisionOf(rs: V1ReplicaSet): number {
  return Number(rs.metadata?.annotations?.[REVISION] ?? 0);
}
