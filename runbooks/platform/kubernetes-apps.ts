/**
 * The apps/v1 API of a Kubernetes stack (Deployments, ReplicaSets, StatefulSets) for the release and
 * app adapters: the kubeconfig of the environment in the stack's context, loaded on first use.
 */
import type { AppsV1Api } from "@kubernetes/client-node";
import type { StackOutputs } from "../../contract/outputs.ts";

export type KubernetesPlatform = Extract<StackOutputs["platform"], { kind: "kubernetes" }>;
export const MERGE_PATCH = "application/merge-patch+json";

export interface AppsApi {
  apps: AppsV1Api;
  /** The request option that sends a patch with this Content-Type. */
  patchAs(contentType: string): object;
}

/** `platform`: a stack's, or any site with a kubeconfig context (the DR site's `dr.app`). */
export function appsApiOf(platform: Pick<KubernetesPlatform, "context">): () => Promise<AppsApi> {
  let loaded: Promise<AppsApi> | undefined;
  return () =>
    (loaded ??= import("@kubernetes/client-node").then(({ AppsV1Api, KubeConfig, setHeaderOptions }) => {
      const config = new KubeConfig();
      config.loadFromDefault();
      if (platform.context) config.setCurrentContext(platform.context);
      return { apps: config.makeApiClient(AppsV1Api), patchAs: (contentType: string) => setHeaderOptions("Content-Type", contentType) };
    }));
}
