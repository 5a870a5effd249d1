/**
 * I7 / S8 schedules as CronJobs: a pgBackRest full backup every day at 02:00 (run inside whichever
 * pod is the primary, found by asking each one), and an RDB snapshot of Redis every hour uploaded
 * under `redis/`. WAL needs no schedule: archive_command ships every segment (I7 "continuous").
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { PG_PATHS, REDIS_PORT } from "../rendered-files.ts";
import { REDIS_CLIENT_LABEL, appLabels, fromSecret, resourcesFor, type KubernetesSite } from "./pod-defaults.ts";

export interface BackupScheduleArgs {
  /** The namespace; the cluster is the provider in `opts`. */
  site: KubernetesSite;
  /** @default "trading" */
  stanza?: string;
  /** `app.kubernetes.io/name` of the database pods (`KubernetesTimescale.appName`). @example "timescale" */
  databaseApp: string;
  /** @example "redis.tradeops.svc.cluster.local" */
  redisHost: string;
  /** Secret and key holding the Redis password (`KubernetesRedis.passwordSecret`). */
  redisPasswordSecret: { name: pulumi.Input<string>; key: string };
  /** Bucket and region the Redis snapshots go to (`s3://<bucket>/redis/<time>.rdb`). @example "acme-tradeops-backups" */
  bucket: pulumi.Input<string>;
  /** @example "eu-west-1" */
  region: string;
  /** The backup writer's keys (scoped to the backup prefixes). */
  writerAccessKeyId: pulumi.Input<string>;
  writerSecretAccessKey: pulumi.Input<string>;
  /**
   * `kubectl` runs the full backup inside the primary pod; `redis` fetches the RDB; `awsCli` uploads it.
   * @default { kubectl: "bitnami/kubectl:1.30", redis: "redis:7.2", awsCli: "amazon/aws-cli:2.17.0" }
   */
  images?: { kubectl?: string; redis?: string; awsCli?: string };
  /** @default { cpu: "1", memory: "1Gi" } */
  limits?: WorkloadLimits;
  /** S8: 02:00 daily. @default "0 2 * * *" */
  pgFullSchedule?: string;
  /** I7: hourly. @default "0 * * * *" */
  redisSchedule?: string;
  /** CronJob time zone. @default "Etc/UTC" */
  timeZone?: string;
  /** Keep the schedules but run nothing (a DR standby site until it is activated). @default false */
  suspend?: boolean;
}

/**
 * Object names are fixed, not derived from the component's name (`backup-runner`, `backup-exec`,
 * `backup-writer`, CronJobs `pg-full-backup` and `redis-snapshot`, as deployed sites have them):
 * one schedule per namespace.
 */
export class BackupSchedule extends pulumi.ComponentResource {
  public readonly pgFullBackup: k8s.batch.v1.CronJob;
  public readonly redisSnapshot: k8s.batch.v1.CronJob;

  constructor(name: string, args: BackupScheduleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:BackupSchedule", name, {}, opts);
    const childOpts = { parent: this };
    const spec = normalizeArgs();
    const labels = appLabels("backup", "backup");

    const account = createExecAccount();
    const writerKeys = createWriterKeys();
    this.pgFullBackup = schedulePgFullBackup(account);
    this.redisSnapshot = scheduleRedisSnapshot(writerKeys);
    this.registerOutputs({});

    function normalizeArgs() {
      return {
        ...args,
        stanza: args.stanza ?? "trading",
        images: { kubectl: args.images?.kubectl ?? "bitnami/kubectl:1.30", redis: args.images?.redis ?? "redis:7.2", awsCli: args.images?.awsCli ?? "amazon/aws-cli:2.17.0" },
        limits: args.limits ?? { cpu: "1", memory: "1Gi" },
        pgFullSchedule: args.pgFullSchedule ?? "0 2 * * *",
        redisSchedule: args.redisSchedule ?? "0 * * * *",
        timeZone: args.timeZone ?? "Etc/UTC",
        suspend: args.suspend ?? false,
      };
    }

    /** May `kubectl exec` into the database pods, nothing else. */
    function createExecAccount(): k8s.core.v1.ServiceAccount {
      const account = new k8s.core.v1.ServiceAccount(`${name}-runner`, { metadata: { name: "backup-runner", namespace: args.site.namespace, labels } }, childOpts);
      const role = new k8s.rbac.v1.Role(
        `${name}-exec`,
        {
          metadata: { name: "backup-exec", namespace: args.site.namespace, labels },
          rules: [
            { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] },
            { apiGroups: [""], resources: ["pods/exec"], verbs: ["create"] },
          ],
        },
        childOpts,
      );
      new k8s.rbac.v1.RoleBinding(
        `${name}-exec`,
        {
          metadata: { name: "backup-exec", namespace: args.site.namespace, labels },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
          subjects: [{ kind: "ServiceAccount", name: account.metadata.name, namespace: args.site.namespace }],
        },
        childOpts,
      );
      return account;
    }

    function createWriterKeys(): k8s.core.v1.Secret {
      return new k8s.core.v1.Secret(
        `${name}-writer`,
        {
          metadata: { name: "backup-writer", namespace: args.site.namespace, labels },
          stringData: { AWS_ACCESS_KEY_ID: pulumi.secret(args.writerAccessKeyId), AWS_SECRET_ACCESS_KEY: pulumi.secret(args.writerSecretAccessKey) },
        },
        childOpts,
      );
    }

    function schedulePgFullBackup(account: k8s.core.v1.ServiceAccount): k8s.batch.v1.CronJob {
      // The primary may have moved (I5): ask every database pod and back up from the one not in recovery.
      const script = [
        "set -eu",
        `for pod in $(kubectl get pods -l app.kubernetes.io/name=${args.databaseApp} -o name); do`,
        `  if [ "$(kubectl exec "$pod" -c postgres -- psql -U postgres -tAc 'select pg_is_in_recovery()')" = f ]; then`,
        `    exec kubectl exec "$pod" -c postgres -- pgbackrest --config=${PG_PATHS.pgbackrestConf} --stanza=${spec.stanza} --type=full backup`,
        "  fi",
        "done",
        'echo "no primary found among the database pods" >&2',
        "exit 1",
      ].join("\n");
      return cronJob("pg-full-backup", spec.pgFullSchedule, {
        serviceAccountName: account.metadata.name,
        containers: [{ name: "pgbackrest", image: spec.images.kubectl, command: ["/bin/sh", "-c", script], resources: resourcesFor(spec.limits) }],
      });
    }

    function scheduleRedisSnapshot(writerKeys: k8s.core.v1.Secret): k8s.batch.v1.CronJob {
      const upload = [
        "set -eu",
        'key="redis/$(date -u +%Y%m%dT%H%M%SZ).rdb"',
        // No --sse: the bucket's default encryption applies its own KMS key (`--sse aws:kms` alone would pick aws/s3).
        'aws s3 cp /snapshot/dump.rdb "s3://$BUCKET/$key" --only-show-errors',
        'echo "uploaded s3://$BUCKET/$key"',
      ].join("\n");
      return cronJob(
        "redis-snapshot",
        spec.redisSchedule,
        {
          initContainers: [
            {
              // Fetches an RDB over the replication protocol: no access to the Redis volume needed.
              name: "fetch-rdb",
              image: spec.images.redis,
              command: ["redis-cli", "-h", args.redisHost, "-p", String(REDIS_PORT), "--rdb", "/snapshot/dump.rdb"],
              env: [fromSecret("REDISCLI_AUTH", args.redisPasswordSecret.name, args.redisPasswordSecret.key)],
              resources: resourcesFor(spec.limits),
              volumeMounts: [{ name: "snapshot", mountPath: "/snapshot" }],
            },
          ],
          containers: [
            {
              name: "upload",
              image: spec.images.awsCli,
              command: ["/bin/sh", "-c", upload],
              env: [
                { name: "BUCKET", value: args.bucket },
                { name: "AWS_DEFAULT_REGION", value: args.region },
                fromSecret("AWS_ACCESS_KEY_ID", writerKeys.metadata.name, "AWS_ACCESS_KEY_ID"),
                fromSecret("AWS_SECRET_ACCESS_KEY", writerKeys.metadata.name, "AWS_SECRET_ACCESS_KEY"),
              ],
              resources: resourcesFor(spec.limits),
              volumeMounts: [{ name: "snapshot", mountPath: "/snapshot" }],
            },
          ],
          volumes: [{ name: "snapshot", emptyDir: { sizeLimit: "8Gi" } }],
        },
        { [REDIS_CLIENT_LABEL]: "true" },
      );
    }

    function cronJob(jobName: string, schedule: string, pod: k8s.types.input.core.v1.PodSpec, extraLabels: Record<string, string> = {}): k8s.batch.v1.CronJob {
      return new k8s.batch.v1.CronJob(
        `${name}-${jobName}`,
        {
          metadata: { name: jobName, namespace: args.site.namespace, labels },
          spec: {
            schedule,
            suspend: spec.suspend,
            timeZone: spec.timeZone,
            // A backup still running when the next is due is not doubled.
            concurrencyPolicy: "Forbid",
            startingDeadlineSeconds: 600,
            successfulJobsHistoryLimit: 3,
            failedJobsHistoryLimit: 5,
            jobTemplate: {
              spec: {
                backoffLimit: 2,
                activeDeadlineSeconds: 4 * 3600,
                template: { metadata: { labels: { ...labels, ...extraLabels } }, spec: { restartPolicy: "Never", ...pod } },
              },
            },
          },
        },
        childOpts,
      );
    }
  }
}
