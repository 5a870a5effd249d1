/**
 * Conventions every tradeops workload on Kubernetes follows: recommended labels, the client labels
 * NetworkPolicies select on, limits with requests (Z7), and secret references instead of values.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { requestsFor, type WorkloadLimits } from "../../config.ts";

/**
 * Where the prod and dr stacks put every Kubernetes component. The cluster is not in here: a
 * component gets its provider through `opts` (`{ provider }`) and its children inherit it.
 */
export interface KubernetesSite {
  /** The Namespace resource's name, so objects depend on it. */
  namespace: pulumi.Input<string>;
  /** For in-cluster DNS names (`<svc>.<ns>.svc.cluster.local`); the namespace's plain name. */
  namespaceName: string;
}

/** Pods with these labels may reach PostgreSQL / Redis; the NetworkPolicies admit nothing else. */
export const DB_CLIENT_LABEL = "tradeops.io/db-client";
export const REDIS_CLIENT_LABEL = "tradeops.io/redis-client";

export function appLabels(name: string, component: string): Record<string, string> {
  return { "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "tradeops", "app.kubernetes.io/component": component };
}

/** Selector labels: the name only, so adding a label never orphans pods. */
export function selectorLabels(name: string): Record<string, string> {
  return { "app.kubernetes.io/name": name };
}

export function resourcesFor(limits: WorkloadLimits): k8s.types.input.core.v1.ResourceRequirements {
  return { limits: { cpu: limits.cpu, memory: limits.memory }, requests: requestsFor(limits) };
}

/** An env var read from a Secret key (the policy pack refuses secret-looking names with literal values). */
export function fromSecret(name: string, secretName: pulumi.Input<string>, key: string): k8s.types.input.core.v1.EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secretName, key } } };
}

/** A StatefulSet's `data` volume: one ReadWriteOnce claim per pod, on `storageClass` or the cluster's default. */
export function dataVolumeClaim(labels: Record<string, string>, storageSize: string, storageClass?: string): k8s.types.input.core.v1.PersistentVolumeClaim {
  return {
    metadata: { name: "data", labels },
    spec: {
      accessModes: ["ReadWriteOnce"],
      ...(storageClass ? { storageClassName: storageClass } : {}),
      resources: { requests: { storage: storageSize } },
    },
  };
}

/**
 * A component name that becomes object names (`<name>`, `<name>-rw`, pods `<name>-0`): Services
 * need an RFC 1035 label, and a StatefulSet's revision label adds 11 characters to its name, so
 * `Timescale_B` or a 60-character name fails here rather than at `pulumi up`.
 */
export function requireObjectName(name: string): string {
  if (!/^[a-z]([-a-z0-9]{0,50}[a-z0-9])?$/.test(name)) throw new Error(`${name}: a Kubernetes component name must be lowercase letters, digits and -, start with a letter, at most 52 characters`);
  return name;
}

export function clusterHost(service: string, site: KubernetesSite): string {
  return `${service}.${site.namespaceName}.svc.cluster.local`;
}
