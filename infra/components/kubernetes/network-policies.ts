/**
 * Only application pods reach the data stores: PostgreSQL admits pods labelled as DB clients (and
 * its own pods, for replication), Redis admits pods labelled as Redis clients, Prometheus may
 * scrape the exporter. Everything else in or outside the namespace is refused.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { PG_EXPORTER_PORT, PG_PORT, REDIS_PORT } from "../rendered-files.ts";
import { DB_CLIENT_LABEL, REDIS_CLIENT_LABEL, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface DataNetworkPoliciesArgs {
  /** The namespace; the cluster is the provider in `opts`. */
  site: KubernetesSite;
  /** `app.kubernetes.io/name` of the database pods (`KubernetesTimescale.appName`). @example "timescale" */
  databaseApp: string;
  /** `app.kubernetes.io/name` of the Redis pods (`KubernetesRedis.appName`). @example "redis" */
  redisApp: string;
  /**
   * `app.kubernetes.io/name` of the Prometheus pods allowed to scrape the database's exporter.
   * @default unset: nothing scrapes it
   * @example "prometheus"
   */
  prometheusApp?: string;
}

export class DataNetworkPolicies extends pulumi.ComponentResource {
  public readonly database: k8s.networking.v1.NetworkPolicy;
  public readonly redis: k8s.networking.v1.NetworkPolicy;

  constructor(name: string, args: DataNetworkPoliciesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:DataNetworkPolicies", name, {}, opts);
    const childOpts = { parent: this };

    this.database = createDatabasePolicy();
    this.redis = createRedisPolicy();
    this.registerOutputs({});

    function createDatabasePolicy(): k8s.networking.v1.NetworkPolicy {
      return new k8s.networking.v1.NetworkPolicy(
        `${name}-database`,
        {
          metadata: { name: `${args.databaseApp}-ingress`, namespace: args.site.namespace },
          spec: {
            podSelector: { matchLabels: selectorLabels(args.databaseApp) },
            policyTypes: ["Ingress"],
            ingress: [
              {
                from: [{ podSelector: { matchLabels: { [DB_CLIENT_LABEL]: "true" } } }, { podSelector: { matchLabels: selectorLabels(args.databaseApp) } }],
                ports: [{ protocol: "TCP", port: PG_PORT }],
              },
              ...(args.prometheusApp
                ? [{ from: [{ podSelector: { matchLabels: selectorLabels(args.prometheusApp) } }], ports: [{ protocol: "TCP", port: PG_EXPORTER_PORT }] }]
                : []),
            ],
          },
        },
        childOpts,
      );
    }

    function createRedisPolicy(): k8s.networking.v1.NetworkPolicy {
      return new k8s.networking.v1.NetworkPolicy(
        `${name}-redis`,
        {
          metadata: { name: `${args.redisApp}-ingress`, namespace: args.site.namespace },
          spec: {
            podSelector: { matchLabels: selectorLabels(args.redisApp) },
            policyTypes: ["Ingress"],
            ingress: [{ from: [{ podSelector: { matchLabels: { [REDIS_CLIENT_LABEL]: "true" } } }], ports: [{ protocol: "TCP", port: REDIS_PORT }] }],
          },
        },
        childOpts,
      );
    }
  }
}
