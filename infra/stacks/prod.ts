/**
 * Stack `prod`: the platform on Kubernetes with its backups and DNS on AWS. Backups go to a
 * hardened bucket replicated to the DR region (I7, I5); the failover record's PRIMARY half and
 * its health check live here, the SECONDARY half in the `dr` stack.
 */
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { secretOf, type ProdConfig } from "../config.ts";
import { BACKUP_PREFIXES, BackupBucket } from "../components/aws/backup-bucket.ts";
import { BackupReplication } from "../components/aws/backup-replication.ts";
import { BackupWriter } from "../components/aws/backup-writer.ts";
import { FailoverRecord } from "../components/aws/failover-record.ts";
import { AppSecrets } from "../components/kubernetes/app-secrets.ts";
import { KubernetesApp } from "../components/kubernetes/app.ts";
import { BackupSchedule } from "../components/kubernetes/backup-schedule.ts";
import { DataNetworkPolicies } from "../components/kubernetes/network-policies.ts";
import { KubernetesObservability, PROMETHEUS_NAME } from "../components/kubernetes/observability.ts";
import type { KubernetesSite } from "../components/kubernetes/pod-defaults.ts";
import { KubernetesRedis, REDIS_NAME } from "../components/kubernetes/redis.ts";
import { KubernetesTimescale, TIMESCALE_NAME } from "../components/kubernetes/timescale.ts";
import { PG_PATHS, PG_PORT } from "../components/rendered-files.ts";
import { alertReceiversOf, notificationsOf, replicationRoleOf, type StackExports } from "./exports.ts";

export const PGBACKREST_PREFIX = "/pgbackrest";
export const DR_SITE_NAME = "dr";

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

/** The Kubernetes provider and the namespace every workload goes into. */
export function createKubernetesSite(config: { namespace: string; kubeconfig?: string; kubeContext?: string }, providerName: string): KubernetesSite {
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
  return { provider, namespace: namespace.metadata.name, namespaceName: config.namespace };
}

export function prodStack(config: ProdConfig): StackExports {
  const stack = pulumi.getStack();
  const secrets = {
    dbPassword: secretOf(config.dbPassword),
    replicationPassword: secretOf(config.replicationPassword),
    redisPassword: secretOf(config.redisPassword),
    jwtSecret: secretOf(config.jwtSecret),
    opsApiToken: secretOf(config.opsApiToken),
    grafanaAdminPassword: secretOf(config.grafanaAdminPassword),
  };
  const awsPrimary = new aws.Provider("aws-primary", { region: config.region as aws.Region });
  const awsDr = new aws.Provider("aws-dr", { region: config.drRegion as aws.Region });
  const site = createKubernetesSite(config, "kubernetes");

  // ---- backups (I7) and their replica in the DR region (I5, I6)
  const backupSettings = { retention: config.retention, deletedVersionDays: config.deletedVersionDays };
  const backups = new BackupBucket("backups", { bucketName: config.backupBucketName, provider: awsPrimary, ...backupSettings });
  const drBackups = new BackupBucket("backups-dr", { bucketName: config.drBucketName ?? `${config.backupBucketName}-dr`, provider: awsDr, ...backupSettings });
  new BackupReplication("backup-replication", { source: backups, destination: drBackups, provider: awsPrimary });
  const writer = new BackupWriter("backup-writer", {
    buckets: [backups, drBackups],
    prefixes: [BACKUP_PREFIXES.pgbackrest, BACKUP_PREFIXES.redis],
    provider: awsPrimary,
    userName: `${pulumi.getProject()}-${stack}-backup-writer`,
  });
  const s3Endpoint = `s3.${config.region}.amazonaws.com`;

  // ---- data stores
  const timescale = new KubernetesTimescale("timescale", {
    site,
    image: config.timescaleImage,
    exporterImage: config.pgExporterImage,
    limits: config.resources.timescale,
    storageSize: config.pgStorageSize,
    storageClass: config.storageClass,
    replicas: config.pgReplicas,
    dbName: config.dbName,
    dbUser: config.dbUser,
    dbPassword: secrets.dbPassword,
    replicationUser: config.replicationUser,
    replicationPassword: secrets.replicationPassword,
    replicationMode: config.replicationMode,
    clientNetwork: config.podNetworkCidr,
    stanza: config.stanza,
    repository: pulumi.all([backups.bucketName, writer.accessKeyId, writer.secretAccessKey]).apply(([bucket, key, keySecret]) => ({
      endpoint: s3Endpoint,
      bucket,
      region: config.region,
      path: PGBACKREST_PREFIX,
      uriStyle: "host" as const,
      key,
      keySecret,
    })),
    retention: config.retention,
  });
  const redis = new KubernetesRedis("redis", {
    site,
    image: config.redisImage,
    limits: config.resources.redis,
    password: secrets.redisPassword,
    maxmemory: config.redisMaxMemory,
    maxmemoryPolicy: config.redisMaxMemoryPolicy,
    storageSize: config.redisStorageSize,
    storageClass: config.storageClass,
  });

  // ---- the application
  const appSecrets = new AppSecrets("app-secrets", {
    site,
    values: { DATABASE_PASSWORD: secrets.dbPassword, REDIS_PASSWORD: secrets.redisPassword, JWT_SECRET: secrets.jwtSecret, OPS_API_TOKEN: secrets.opsApiToken },
  });
  const { env, secretEnv } = appEnvironment(config, timescale.readWriteHost, redis.host, redis.port);
  const api = new KubernetesApp("api", {
    site,
    appName: "api",
    image: config.apiImage,
    replicas: config.apiReplicas,
    limits: config.resources.api,
    port: config.apiPort,
    env,
    secretEnv,
    secretName: appSecrets.secretName,
    ingress: { hostnames: [config.apiHostname, config.dnsRecordName], tlsSecretName: config.tlsSecretName, className: config.ingressClassName },
  });
  new KubernetesApp("worker", {
    site,
    appName: "worker",
    image: config.workerImage,
    replicas: config.workerReplicas,
    limits: config.resources.worker,
    port: config.apiPort,
    env,
    secretEnv,
    secretName: appSecrets.secretName,
  });
  new DataNetworkPolicies("data-access", { site, databaseApp: TIMESCALE_NAME, redisApp: REDIS_NAME, prometheusApp: PROMETHEUS_NAME });
  new BackupSchedule("backup-schedule", {
    site,
    stanza: config.stanza,
    databaseApp: TIMESCALE_NAME,
    redisHost: redis.host,
    redisPasswordSecret: { name: redis.secret.metadata.name, key: "password" },
    bucket: backups.bucketName,
    region: config.region,
    writerAccessKeyId: writer.accessKeyId,
    writerSecretAccessKey: writer.secretAccessKey,
    images: { kubectl: config.kubectlImage, redis: config.redisImage, awsCli: config.awsCliImage },
    limits: config.resources.backupJob,
  });
  new KubernetesObservability("observability", {
    site,
    images: { prometheus: config.prometheusImage, alertmanager: config.alertmanagerImage, grafana: config.grafanaImage },
    resources: config.resources,
    apiTarget: `${api.internalHost}:${config.apiPort}`,
    databaseHosts: timescale.podHosts,
    grafanaAdminPassword: secrets.grafanaAdminPassword,
    receivers: pulumi.secret(alertReceiversOf(config)),
    storageClass: config.storageClass,
  });

  // ---- traffic: the PRIMARY half of the failover pair, health-checked on readiness (Z1, I5)
  const primaryRecord = new FailoverRecord("api-primary", {
    provider: awsPrimary,
    zoneId: config.dnsZoneId,
    recordName: config.dnsRecordName,
    failover: "PRIMARY",
    target: api.loadBalancerHostname!,
    siteHostname: config.apiHostname,
    healthCheckPath: "/health/ready",
  });

  const pgNodes = timescale.podNames.map((pod, i) => ({
    name: pod,
    host: timescale.podHosts[i]!,
    port: PG_PORT,
    role: i === 0 ? ("primary" as const) : ("standby" as const),
    dataDir: PG_PATHS.dataDir,
  }));
  return {
    contractVersion: 1,
    stack,
    platform: {
      kind: "kubernetes",
      namespace: config.namespace,
      ...(config.kubeContext ? { context: config.kubeContext } : {}),
      deployments: { api: "api", worker: "worker" },
      statefulSets: { database: TIMESCALE_NAME, redis: REDIS_NAME },
    },
    database: {
      name: config.dbName,
      user: config.dbUser,
      password: secrets.dbPassword,
      primary: pgNodes[0]!,
      ...(pgNodes[1] ? { standby: pgNodes[1] } : {}),
      replication: {
        mode: config.pgReplicas > 1 ? config.replicationMode : "async",
        slot: `${TIMESCALE_NAME}_1`,
        ...replicationRoleOf(config.replicationUser, secrets.replicationPassword),
      },
      traffic: { host: timescale.readWriteHost, port: PG_PORT },
    },
    redis: { host: redis.host, port: redis.port, password: secrets.redisPassword },
    opsApi: { url: `https://${config.apiHostname}`, token: secrets.opsApiToken },
    backup: {
      type: "s3",
      endpoint: s3Endpoint,
      port: 443,
      region: config.region,
      bucket: backups.bucketName,
      prefix: PGBACKREST_PREFIX,
      uriStyle: "host",
      accessKeyId: writer.accessKeyId,
      secretAccessKey: writer.secretAccessKey,
      stanza: config.stanza,
      configFile: PG_PATHS.pgbackrestConf,
    },
    dr: {
      name: DR_SITE_NAME,
      region: config.drRegion,
      dns: { zoneId: config.dnsZoneId, recordName: config.dnsRecordName, healthCheckId: primaryRecord.healthCheckId! },
    },
    notifications: notificationsOf(config),
    retention: config.retention,
  };
}
