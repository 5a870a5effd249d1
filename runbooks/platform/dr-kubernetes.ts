/**
 * The DR site's app on Kubernetes (I5): the Deployments named in the contract's `dr.app`, scaled out
 * of pilot light by `dr activate` and back to 0 by `dr failback`, through the apps/v1 API the way
 * `kubectl scale` changes them (a merge patch of `spec.replicas`), with the kubeconfig of the
 * environment in the site's context.
 */
import { z } from "zod";
import { describeIssue } from "../../contract/outputs.ts";
import { StepFailure, UsageError, oneLine } from "../engine/errors.ts";
import { appsApiOf, MERGE_PATCH, type AppsApi } from "./kubernetes-apps.ts";

/** How often `waitReady` reads the Deployment's status. */
export const READY_POLL_MS = 250;

const objectName = z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/, "a Kubernetes object name (lowercase letters, digits, '-' and '.')");

export const KubernetesSite = z.object({
  /** @example "tradeops-dr" */
  namespace: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "a namespace name (lowercase letters, digits, '-')"),
  /** kubeconfig context of the site's cluster. @default the kubeconfig's current context @example "dr-cluster" */
  context: z.string().min(1).optional(),
});
export type KubernetesSite = z.infer<typeof KubernetesSite>;

const Scale = z.object({ name: objectName, replicas: z.number().int("a whole number of replicas").min(0, "replicas must be 0 or more").max(1000) });
const Wait = Scale.extend({ timeoutMs: z.number().int().positive("a timeout above 0 ms") });

export interface DeploymentReplicas {
  /** `spec.replicas`: what the Deployment asks for. */
  desired: number;
  /** `status.readyReplicas`: pods passing their readiness probe. */
  ready: number;
}

export class KubernetesDeployments {
  private readonly site: KubernetesSite;
  private readonly api: () => Promise<AppsApi>;

  constructor(site: KubernetesSite) {
    this.site = parsed(KubernetesSite, site, "Kubernetes site");
    this.api = appsApiOf(this.site);
  }

  /** What the Deployment asks for and how many of its pods are ready. */
  async replicas(name: string): Promise<DeploymentReplicas> {
    const { desired, ready } = await this.status(parsed(Scale.pick({ name: true }), { name }, "replicas").name);
    return { desired, ready };
  }

  /** Sets `spec.replicas` as `kubectl scale` does; the pods follow (see `waitReady`). */
  async scale(name: string, replicas: number): Promise<void> {
    const args = parsed(Scale, { name, replicas }, "scale");
    const { apps, patchAs } = await this.api();
    await apps
      .patchNamespacedDeployment({ name: args.name, namespace: this.site.namespace, body: { spec: { replicas: args.replicas } } }, patchAs(MERGE_PATCH))
      .catch((error: unknown) => {
        if (statusOf(error) === 404) throw this.missing(args.name);
        throw new StepFailure(
          `the API server refused to scale ${this.deployment(args.name)} to ${args.replicas}: ${reasonOf(error)}`,
          `check the kubeconfig's access (${this.kubectl(`auth can-i patch deployments`)}), or scale it by hand: ${this.kubectl(`scale deployment/${args.name} --replicas=${args.replicas}`)}`,
        );
      });
  }

  /**
   * Polls until `replicas` pods are ready and no more are counted (scaling to 0: until the
   * Deployment counts no pod); a step failure naming what it found after `timeoutMs`.
   */
  async waitReady(name: string, replicas: number, timeoutMs: number, signal?: AbortSignal): Promise<DeploymentReplicas> {
    const args = parsed(Wait, { name, replicas, timeoutMs }, "wait");
    const deadline = Date.now() + args.timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      const { desired, ready, counted } = await this.status(args.name);
      if (ready >= args.replicas && counted <= args.replicas) return { desired, ready };
      if (Date.now() >= deadline) {
        throw new StepFailure(
          `${this.deployment(args.name)} has ${ready} of ${args.replicas} replica(s) ready (${counted} pod(s), ${desired} asked for) after ${args.timeoutMs / 1000} s`,
          `see why its pods are not ready: ${this.kubectl(`describe deployment/${args.name}`)}`,
        );
      }
      await pause(Math.min(READY_POLL_MS, Math.max(0, deadline - Date.now())), signal);
    }
  }

  private async status(name: string): Promise<DeploymentReplicas & { counted: number }> {
    const { apps } = await this.api();
    const deployment = await apps.readNamespacedDeployment({ name, namespace: this.site.namespace }).catch((error: unknown) => {
      if (statusOf(error) === 404) throw this.missing(name);
      throw new StepFailure(`could not read ${this.deployment(name)}: ${reasonOf(error)}`, `check the kubeconfig and its context: ${this.kubectl(`get deployment/${name}`)}`);
    });
    return { desired: deployment.spec?.replicas ?? 1, ready: deployment.status?.readyReplicas ?? 0, counted: deployment.status?.replicas ?? 0 };
  }

  private missing(name: string): StepFailure {
    return new StepFailure(
      `${this.deployment(name)} does not exist`,
      `compare the DR stack's dr.app.deployments with what the cluster has: ${this.kubectl("get deployments")}`,
    );
  }

  private deployment(name: string): string {
    return `Deployment ${this.site.namespace}/${name}${this.site.context ? ` (context ${this.site.context})` : ""}`;
  }

  private kubectl(command: string): string {
    return `kubectl${this.site.context ? ` --context ${this.site.context}` : ""} -n ${this.site.namespace} ${command}`;
  }
}

function parsed<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new UsageError(`${what}: ${describeIssue(result.error)}`);
  return result.data;
}

function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

/** The API server's own words (its Status `message`), not client-node's multi-line dump. */
function reasonOf(error: unknown): string {
  const body = (error as { body?: unknown })?.body;
  const status = typeof body === "string" ? safeJson(body) : body;
  const message = (status as { message?: unknown } | undefined)?.message;
  const code = statusOf(error);
  if (typeof message === "string" && message) return `${message}${code ? ` (HTTP ${code})` : ""}`;
  return oneLine(error);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Waits `ms`, or less when `signal` aborts (the caller then throws its reason). */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
