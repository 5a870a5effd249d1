/**
 * What the two Kubernetes stacks, prod and dr, declare alike: the provider and namespace, the
 * application tier above the database (Redis, the app's credentials, the API and worker, the
 * data-access NetworkPolicies, the backup CronJobs), the pgBackRest repository in the site's S3
 * region, and the contract's `platform` block. Plain functions rather than a component, so every
 * resource keeps the name and parent — and so the URN — it had when each stack declared it itself.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { secretOf, type ProdConfig } from "../config.ts";
import type { PgbackrestRepoOptions } from "../config-files/pgbackrest.ts";
import { AppSecrets } from "../components/kubernetes/app-secrets.ts";
import { KubernetesApp } from "../components/kubernetes/app.ts";
import { BackupSchedule } from "../components/kubernetes/backup-schedule.ts";
import { DataNetworkPolicies } from "../components/kubernetes/network-policies.ts";
import type { KubernetesSite } from "../components/kubernetes/pod-defaults.ts";
import { KubernetesRedis } from "../components/kubernetes/redis.ts";
import type { KubernetesTimescale } from "../components/kubernetes/timescale.ts";
import { PG_PATHS, PG_PORT } from "../components/rendered-files.ts";
import { PGBACKREST_PREFIX, type StackExports } from "./exports.ts";

/** The settings the application tier reads; prod's and dr's config both have them, with the same meaning. */
export type ApplicationTierConfig = Pick<
  ProdConfig,
  | "dbName"
  | "dbUser"
  | "apiPort"
  | "apiImage"
  | "workerImage"
  | "workerReplicas"
  | "apiHostname"
  | "tlsSecretName"
  | "ingressClassName"
  | "redisImage"
  | "redisMaxMemory"
  | "redisMaxMemoryPolicy"
  | "redisStorageSize"
  | "storageClass"
  | "resources"
  | "stanza"
  | "region"
  | "kubectlImage"
  | "awsCliImage"
>;

/** A bucket in the site's region holding the pgBackRest repository and the Redis snapshots, and the keys that write it. */
export interface S3Backups {
  bucket: pulumi.Input<string>;
  accessKeyId: pulumi.Input<string>;
  secretAccessKey: pulumi.Input<string>;
}

/** Where prod and dr differ in the application tier. */
export interface ApplicationTierArgs {
  /** The application's credentials; dr's default to prod's. */
  secrets: { dbPassword: pulumi.Input<string>; redisPassword: pulumi.Input<string>; jwtSecret: pulumi.Input<string>; opsApiToken: pulumi.Input<string> };
  /** The database: the API and worker reach its read-write Service; policies and backups select its pods. */
  database: Pick<KubernetesTimescale, "readWriteHost" | "appName">;
  /** API pods; 0 keeps the DR site at pilot light until `dr activate` (I5). @example 2 */
  apiReplicas: number;
  /** The failover record's name, served by the Ingress next to the site's own `apiHostname`. @example "api.trading.example.com" */
  failoverHostname: pulumi.Input<string>;
  /** Prometheus pods allowed to scrape the database's exporter; unset when the site runs no Prometheus. @default undefined */
  prometheusApp?: string;
  /** Where the backup CronJobs upload the Redis snapshots. */
  backups: S3Backups;
  /** Keep the backup CronJobs but run nothing (the DR site until it is activated). @default false */
  suspendBackups?: boolean;
}

/** The Kubernetes provider (components get it as `{ provider }` in their opts) and the namespace every workload goes into. */
export function createKubernetesSite(config: { namespace: string; kubeconfig?: string; kubeContext?: string }, providerName: string): { site: KubernetesSite; provider: k8s.Provider } {
  const provider = new k8s.Provider(providerName, {
    ...(config.kubeconfig ? { kubeconfig: secretOf(config.kubeconfig) } : {}),
    ...(config.kubeContext ? { context: config.kubeContext } : {}),
    enableServerSideApply: true,
  });
  const namespace = new k8s.core.v1.Namespace(
    "namespace",
    { metadata: { name: config.namespace, labels: { "app.kubernetes.io/part-of": "tradeops", "pod-security.kubernetes.io/enforce": "baseline" } } },
    { provider },
  );
  return { site: { namespace: namespace.metadata.name, namespaceName: config.namespace }, provider };
}

/** What the API and worker get: plain settings, and Secret keys for the credentials. */
export function appEnvironment(config: { dbName: string; dbUser: string; apiPort: number }, databaseHost: string, redisHost: string, redisPort: number) {
  return {
    env: {
      DATABASE_HOST: databaseHost,
      DATABASE_PORT: String(PG_PORT),
      DATABASE_NAME: config.dbName,
      DATABASE_USER: config.dbUser,
      REDIS_HOST: redisHost,
      REDIS_PORT: String(redisPort),
      PORT: String(config.apiPort),
    },
    secretEnv: { DATABASE_PASSWORD: "DATABASE_PASSWORD", REDIS_PASSWORD: "REDIS_PASSWORD", JWT_SECRET: "JWT_SECRET", OPS_API_TOKEN: "OPS_API_TOKEN" },
  };
}

/**
 * Redis, the API and the worker with their credentials, the data-access policies and the backup
 * schedule of one site; `opts` (the cluster's provider) goes to every component.
 */
export function createApplicationTier(site: KubernetesSite, config: ApplicationTierConfig, args: ApplicationTierArgs, opts: pulumi.ComponentResourceOptions) {
  const { secrets } = args;
  const redis = new KubernetesRedis(
    "redis",
    {
      site,
      image: config.redisImage,
      limits: config.resources.redis,
      password: secrets.redisPassword,
      maxmemory: config.redisMaxMemory,
      maxmemoryPolicy: config.redisMaxMemoryPolicy,
      storageSize: config.redisStorageSize,
      storageClass: config.storageClass,
    },
    opts,
  );
  const appSecrets = new AppSecrets(
    "app-secrets",
    { site, values: { DATABASE_PASSWORD: secrets.dbPassword, REDIS_PASSWORD: secrets.redisPassword, JWT_SECRET: secrets.jwtSecret, OPS_API_TOKEN: secrets.opsApiToken } },
    opts,
  );
  const { env, secretEnv } = appEnvironment(config, args.database.readWriteHost, redis.host, redis.port);
  const api = new KubernetesApp(
    "api",
    {
      site,
      image: config.apiImage,
      replicas: args.apiReplicas,
      limits: config.resources.api,
      port: config.apiPort,
      env,
      secretEnv,
      secretName: appSecrets.secretName,
      ingress: { hostnames: [config.apiHostname, args.failoverHostname], tlsSecretName: config.tlsSecretName, className: config.ingressClassName },
    },
    opts,
  );
  const worker = new KubernetesApp(
    "worker",
    { site, image: config.workerImage, replicas: config.workerReplicas, limits: config.resources.worker, port: config.apiPort, env, secretEnv, secretName: appSecrets.secretName },
    opts,
  );
  new DataNetworkPolicies("data-access", { site, databaseApp: args.database.appName, redisApp: redis.appName, prometheusApp: args.prometheusApp }, opts);
  new BackupSchedule(
    "backup-schedule",
    {
      site,
      stanza: config.stanza,
      databaseApp: args.database.appName,
      redisHost: redis.host,
      redisPasswordSecret: redis.passwordSecret,
      bucket: args.backups.bucket,
      region: config.region,
      writerAccessKeyId: args.backups.accessKeyId,
      writerSecretAccessKey: args.backups.secretAccessKey,
      images: { kubectl: config.kubectlImage, redis: config.redisImage, awsCli: config.awsCliImage },
      limits: config.resources.backupJob,
      suspend: args.suspendBackups,
    },
    opts,
  );
  return { redis, api, worker };
}

function s3EndpointOf(region: string): string {
  return `s3.${region}.amazonaws.com`;
}

/** The pgBackRest repository in the site's backup bucket, as the database pods' pgbackrest.conf gets it. */
export function pgbackrestRepositoryOf(region: string, backups: S3Backups): pulumi.Output<PgbackrestRepoOptions> {
  return pulumi.all([backups.bucket, backups.accessKeyId, backups.secretAccessKey]).apply(([bucket, key, keySecret]) => ({
    endpoint: s3EndpointOf(region),
    bucket,
    region,
    path: PGBACKREST_PREFIX,
    uriStyle: "host" as const,
    key,
    keySecret,
  }));
}

/** The same repository as the contract's `backup`, for the runbooks. */
export function backupExportOf(config: { region: string; stanza: string }, backups: S3Backups): StackExports["backup"] {
  return {
    type: "s3",
    endpoint: s3EndpointOf(config.region),
    port: 443,
    region: config.region,
    bucket: backups.bucket,
    prefix: PGBACKREST_PREFIX,
    uriStyle: "host",
    accessKeyId: backups.accessKeyId,
    secretAccessKey: backups.secretAccessKey,
    stanza: config.stanza,
    configFile: PG_PATHS.pgbackrestConf,
  };
}

/** The workloads whose names the contract's `platform` lists (each component's `appName`). */
export interface SiteWorkloads {
  database: { appName: string; readWriteServiceName: string; configMapName: string };
  redis: { appName: string };
  api: { appName: string };
  worker: { appName: string };
}

/** The contract's `platform`: the namespace and the names runbooks scale, exec into and watch. */
export function kubernetesPlatformOf(config: { namespace: string; kubeContext?: string }, workloads: SiteWorkloads): StackExports["platform"] {
  return {
    kind: "kubernetes",
    namespace: config.namespace,
    ...(config.kubeContext ? { context: config.kubeContext } : {}),
    deployments: { api: workloads.api.appName, worker: workloads.worker.appName },
    statefulSets: { database: workloads.database.appName, redis: workloads.redis.appName },
    // What the failover runbooks patch: the Service's selector and the ConfigMap's record of the primary.
    services: { database: workloads.database.readWriteServiceName },
    configMaps: { database: workloads.database.configMapName },
  };
}
