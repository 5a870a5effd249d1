/**
 * Stack `prod`: the platform on Kubernetes with its backups and DNS on AWS. Backups go to a
 * hardened bucket replicated to the DR region (I7, I5); the failover record's PRIMARY half and
 * its health check live here, the SECONDARY half in the `dr` stack.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { secretOf, type ProdConfig } from "../config.ts";
import { BACKUP_PREFIXES, BackupBucket } from "../components/aws/backup-bucket.ts";
import { BackupReplication } from "../components/aws/backup-replication.ts";
import { BackupWriter } from "../components/aws/backup-writer.ts";
import { FailoverRecord } from "../components/aws/failover-record.ts";
import { KubernetesObservability, PROMETHEUS_NAME } from "../components/kubernetes/observability.ts";
import { KubernetesTimescale } from "../components/kubernetes/timescale.ts";
import { PG_PATHS, PG_PORT } from "../components/rendered-files.ts";
import { alertReceiversOf, appReleaseOf, notificationsOf, replicationRoleOf, stackLockOf, type StackExports } from "./exports.ts";
import { backupExportOf, createApplicationTier, createKubernetesSite, kubernetesPlatformOf, pgbackrestRepositoryOf, type S3Backups } from "./kubernetes-site.ts";

export const DR_SITE_NAME = "dr";

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
  const { site, provider: cluster } = createKubernetesSite(config, "kubernetes");

  // ---- backups (I7) and their replica in the DR region (I5, I6)
  const backupSettings = { retention: config.retention, deletedVersionDays: config.deletedVersionDays };
  const backups = new BackupBucket("backups", { bucketName: config.backupBucketName, ...backupSettings }, { provider: awsPrimary });
  const drBackups = new BackupBucket("backups-dr", { bucketName: config.drBucketName ?? `${config.backupBucketName}-dr`, ...backupSettings }, { provider: awsDr });
  new BackupReplication("backup-replication", { source: backups, destination: drBackups }, { provider: awsPrimary });
  const writer = new BackupWriter(
    "backup-writer",
    { buckets: [backups, drBackups], prefixes: [BACKUP_PREFIXES.pgbackrest, BACKUP_PREFIXES.redis, BACKUP_PREFIXES.locks], userName: `${pulumi.getProject()}-${stack}-backup-writer` },
    { provider: awsPrimary },
  );
  const s3Backups: S3Backups = { bucket: backups.bucketName, accessKeyId: writer.accessKeyId, secretAccessKey: writer.secretAccessKey };

  // ---- data stores
  const timescale = new KubernetesTimescale(
    "timescale",
    {
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
      repository: pgbackrestRepositoryOf(config.region, s3Backups),
      retention: config.retention,
      primaryPod: config.primaryNode,
    },
    { provider: cluster },
  );

  // ---- the application tier: Redis, the API and worker, data-access policies, backup CronJobs
  const { redis, api, worker } = createApplicationTier(
    site,
    config,
    {
      secrets,
      database: timescale,
      apiReplicas: config.apiReplicas,
      failoverHostname: config.dnsRecordName,
      prometheusApp: PROMETHEUS_NAME,
      backups: s3Backups,
    },
    { provider: cluster },
  );
  const observability = new KubernetesObservability(
    "observability",
    {
      site,
      images: { prometheus: config.prometheusImage, alertmanager: config.alertmanagerImage, grafana: config.grafanaImage },
      resources: config.resources,
      apiTarget: `${api.internalHost}:${config.apiPort}`,
      databaseHosts: timescale.podHosts,
      grafanaAdminPassword: secrets.grafanaAdminPassword,
      receivers: pulumi.secret(alertReceiversOf(config, { url: `http://${api.internalHost}:${config.apiPort}/api/alerts/kill-switch`, bearerToken: secrets.opsApiToken })),
      storageClass: config.storageClass,
    },
    { provider: cluster },
  );

  // ---- traffic: the PRIMARY half of the failover pair, health-checked on readiness (Z1, I5)
  const primaryRecord = new FailoverRecord(
    "api-primary",
    {
      zoneId: config.dnsZoneId,
      recordName: config.dnsRecordName,
      failover: "PRIMARY",
      target: api.loadBalancerHostname!,
      siteHostname: config.apiHostname,
      healthCheckPath: "/health/ready",
    },
    { provider: awsPrimary },
  );

  // Roles follow tradeops:primaryNode (default pod -0); the standby is the first other pod.
  const pgNode = (pod: string, role: "primary" | "standby") => ({
    name: pod,
    host: timescale.podHosts[timescale.podNames.indexOf(pod)]!,
    port: PG_PORT,
    role,
    dataDir: PG_PATHS.dataDir,
  });
  return {
    contractVersion: 1,
    stack,
    platform: kubernetesPlatformOf(config, { database: timescale, redis, api, worker }),
    database: {
      name: config.dbName,
      user: config.dbUser,
      password: secrets.dbPassword,
      primary: pgNode(timescale.primaryPod, "primary"),
      ...(timescale.standbyPod ? { standby: pgNode(timescale.standbyPod, "standby") } : {}),
      homePrimary: timescale.podNames[0]!,
      replication: {
        mode: config.pgReplicas > 1 ? config.replicationMode : "async",
        slot: timescale.replicationSlot,
        ...replicationRoleOf(config.replicationUser, secrets.replicationPassword),
      },
      traffic: { host: timescale.readWriteHost, port: PG_PORT },
    },
    redis: { host: redis.host, port: redis.port, password: secrets.redisPassword },
    opsApi: { url: `https://${config.apiHostname}`, token: secrets.opsApiToken },
    app: appReleaseOf(config.apiImage),
    backup: backupExportOf(config, s3Backups),
    lock: stackLockOf(config.stanza),
    // In-cluster URLs: `health` reaches them from inside the cluster (or through a port-forward).
    monitoring: { prometheusUrl: observability.prometheusUrl, alertmanagerUrl: observability.alertmanagerUrl },
    // The DR site is declared by the dr stack (`stack`); prod knows the PRIMARY half of the DNS pair.
    dr: {
      name: DR_SITE_NAME,
      region: config.drRegion,
      ...(config.drStack ? { stack: config.drStack } : {}),
      dns: pulumi.all([primaryRecord.healthCheckId!, primaryRecord.target]).apply(([healthCheckId, primaryTarget]) => ({
        zoneId: config.dnsZoneId,
        recordName: config.dnsRecordName,
        healthCheckId,
        // An Ingress without a load balancer yet has no host name: leave the key out rather than break the contract.
        ...(primaryTarget ? { primaryTarget } : {}),
        ttl: primaryRecord.ttl,
      })),
    },
    notifications: notificationsOf(config),
    retention: config.retention,
  };
}
