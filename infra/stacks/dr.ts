/**
 * Stack `dr`: the DR site (I5, I6) on its own Kubernetes cluster, following prod through a
 * StackReference. A TimescaleDB standby restored from the replicated pgBackRest repository
 * (streaming too, when a network path to the primary exists), Redis, the API at the pilot-light
 * replica count (0 until `dr activate`), and the SECONDARY half of the failover record.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { StackOutputs } from "../../contract/outputs.ts";
import { secretOf, type DrConfig } from "../config.ts";
import { FailoverRecord } from "../components/aws/failover-record.ts";
import { KubernetesTimescale } from "../components/kubernetes/timescale.ts";
import { PG_PATHS, PG_PORT } from "../components/rendered-files.ts";
import { notificationsOf, replicationRoleOf, stackLockOf, type StackExports } from "./exports.ts";
import { backupExportOf, createApplicationTier, createKubernetesSite, kubernetesPlatformOf, pgbackrestRepositoryOf, type S3Backups } from "./kubernetes-site.ts";
import { DR_SITE_NAME } from "./prod.ts";

export const DR_SLOT = "timescale_dr";

export function drStack(config: DrConfig): StackExports {
  const stack = pulumi.getStack();
  const prod = new pulumi.StackReference("prod", { name: config.prodStack });
  const fromProd = <K extends keyof StackOutputs>(key: K) => prod.requireOutput(key) as pulumi.Output<StackOutputs[K]>;
  const prodDatabase = fromProd("database");
  const prodBackup = fromProd("backup");
  const prodDr = fromProd("dr");
  // Credentials the restored database and the clients share with prod: prod's, unless set here.
  const secrets = {
    dbPassword: config.dbPassword ? secretOf(config.dbPassword) : pulumi.secret(prodDatabase.password),
    replicationPassword: secretOf(config.replicationPassword),
    redisPassword: config.redisPassword ? secretOf(config.redisPassword) : pulumi.secret(fromProd("redis").apply((redis) => redis.password ?? "")),
    jwtSecret: secretOf(config.jwtSecret),
    opsApiToken: config.opsApiToken ? secretOf(config.opsApiToken) : pulumi.secret(fromProd("opsApi").token),
    s3AccessKeyId: pulumi.secret(prodBackup.accessKeyId),
    s3SecretAccessKey: pulumi.secret(prodBackup.secretAccessKey),
  };
  const dns = prodDr.apply((dr) => {
    if (!dr?.dns) throw new Error(`stack ${config.prodStack} exports no dr.dns: deploy prod with dnsZoneId/dnsRecordName first`);
    return dr.dns;
  });

  const awsDr = new aws.Provider("aws-dr", { region: config.region as aws.Region });
  const { site, provider: cluster } = createKubernetesSite(config, "kubernetes-dr");
  const s3Backups: S3Backups = { bucket: config.backupBucketName, accessKeyId: secrets.s3AccessKeyId, secretAccessKey: secrets.s3SecretAccessKey };
  const streaming = config.standbyMode === "streaming";

  // ---- the standby (I6 "verify DB sync"): restored from the replica bucket, then following prod
  const timescale = new KubernetesTimescale(
    "timescale",
    {
      site,
      image: config.timescaleImage,
      exporterImage: config.pgExporterImage,
      limits: config.resources.timescale,
      storageSize: config.pgStorageSize,
      storageClass: config.storageClass,
      replicas: 1,
      dbName: config.dbName,
      dbUser: config.dbUser,
      dbPassword: secrets.dbPassword,
      replicationUser: config.replicationUser,
      replicationPassword: secrets.replicationPassword,
      replicationMode: "async",
      clientNetwork: config.podNetworkCidr,
      stanza: config.stanza,
      repository: pgbackrestRepositoryOf(config.region, s3Backups),
      retention: config.retention,
      bootstrap: "repository",
      primaryPod: config.primaryNode,
      ...(streaming ? { primaryHost: config.primaryHost, slotName: DR_SLOT } : {}),
    },
    { provider: cluster },
  );

  // ---- the application at pilot light (I5: DR activation scales it up)
  const { redis, api, worker } = createApplicationTier(
    site,
    config,
    {
      secrets,
      database: timescale,
      apiReplicas: config.drApiReplicas,
      failoverHostname: dns.recordName,
      backups: s3Backups,
      // After activation this site is the primary and must back itself up; until then the jobs are suspended.
      suspendBackups: true,
    },
    { provider: cluster },
  );
  const secondaryRecord = new FailoverRecord(
    "api-secondary",
    { zoneId: dns.zoneId, recordName: dns.recordName, failover: "SECONDARY", target: api.loadBalancerHostname!, siteHostname: config.apiHostname },
    { provider: awsDr },
  );

  const drNode = { name: timescale.primaryPod, host: timescale.podHosts[timescale.podNames.indexOf(timescale.primaryPod)]!, port: PG_PORT, role: "standby" as const, dataDir: PG_PATHS.dataDir };
  const opsApi = { url: `https://${config.apiHostname}`, token: secrets.opsApiToken };
  return {
    contractVersion: 1,
    stack,
    platform: kubernetesPlatformOf(config, { database: timescale, redis, api, worker }),
    // This site's own database: its one node is a standby until `dr activate` promotes it (runbooks re-check the live role).
    database: {
      name: config.dbName,
      user: config.dbUser,
      password: secrets.dbPassword,
      primary: drNode,
      homePrimary: timescale.podNames[0]!,
      // The role itself is restored from prod's backup, so this password only works while it is prod's.
      replication: { mode: "async", slot: DR_SLOT, ...replicationRoleOf(config.replicationUser, secrets.replicationPassword), maxLagBytes: 16 * 1024 * 1024 },
      traffic: { host: timescale.readWriteHost, port: PG_PORT },
    },
    redis: { host: redis.host, port: redis.port, password: secrets.redisPassword },
    opsApi,
    backup: backupExportOf(config, s3Backups),
    // In the DR bucket: prod's replication leaves `locks/` out, so this lock is the DR site's alone.
    lock: stackLockOf(config.stanza),
    // No `monitoring`: the DR site runs no Prometheus of its own.
    // The DR half of the contract: where `dr activate` moves traffic to.
    dr: {
      name: DR_SITE_NAME,
      region: config.region,
      opsApi,
      database: drNode,
      // What the DR site's app connects to once activated: its read-write Service.
      traffic: { host: timescale.readWriteHost, port: PG_PORT },
      // Out of pilot light: `dr activate` scales these Deployments to `replicas`, `dr failback` back to 0 (the contract's pilot light).
      app: {
        kind: "kubernetes" as const,
        namespace: config.namespace,
        ...(config.kubeContext ? { context: config.kubeContext } : {}),
        deployments: [
          { name: api.appName, replicas: config.drActiveApiReplicas },
          { name: worker.appName, replicas: config.drActiveWorkerReplicas },
        ],
      },
      // Both targets of the pair: prod's PRIMARY target (from its outputs, when it exports one) and this site's SECONDARY one.
      dns: pulumi.all([dns, secondaryRecord.target]).apply(([d, drTarget]) => ({
        zoneId: d.zoneId,
        recordName: d.recordName,
        ...(d.healthCheckId ? { healthCheckId: d.healthCheckId } : {}),
        ...(d.primaryTarget ? { primaryTarget: d.primaryTarget } : {}),
        ...(drTarget ? { drTarget } : {}),
        // The PRIMARY half's TTL is prod's to declare; the pair shares it.
        ttl: d.ttl ?? secondaryRecord.ttl,
      })),
    },
    notifications: notificationsOf(config),
    retention: config.retention,
  };
}
