/**
 * Redis on Kubernetes (S7, C4): one StatefulSet pod on a PersistentVolumeClaim with AOF fsynced
 * every second and the seed's RDB save rules — redis.conf from the sandbox's generator, kept in a
 * Secret because it carries `requirepass`.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { REDIS_PORT, redisNodeConf } from "../rendered-files.ts";
import { appLabels, clusterHost, dataVolumeClaim, resourcesFor, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface KubernetesRedisArgs {
  site: KubernetesSite;
  /** @default "redis:7.2" */
  image: string;
  limits: WorkloadLimits;
  password: pulumi.Input<string>;
  /** S7. @default "2gb" */
  maxmemory: string;
  /** S7. @default "allkeys-lru" */
  maxmemoryPolicy: string;
  /** @default "10Gi" */
  storageSize: string;
  storageClass?: string;
}

export const REDIS_NAME = "redis";

export class KubernetesRedis extends pulumi.ComponentResource {
  public readonly statefulSet: k8s.apps.v1.StatefulSet;
  public readonly service: k8s.core.v1.Service;
  /** Holds `redis.conf` and `password` (the backup job reads the latter). */
  public readonly secret: k8s.core.v1.Secret;
  public readonly host: string;
  public readonly port = REDIS_PORT;

  constructor(name: string, args: KubernetesRedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:Redis", name, {}, opts);
    const childOpts = { parent: this, provider: args.site.provider };
    const labels = appLabels(REDIS_NAME, "cache");
    this.host = clusterHost(REDIS_NAME, args.site);

    this.secret = createConfigSecret();
    this.service = createService();
    this.statefulSet = createStatefulSet(this.secret, this.service);
    this.registerOutputs({ host: this.host });

    function createConfigSecret(): k8s.core.v1.Secret {
      const conf = pulumi.output(args.password).apply((password) => redisNodeConf({ password, maxmemory: args.maxmemory, maxmemoryPolicy: args.maxmemoryPolicy }));
      return new k8s.core.v1.Secret(
        `${name}-config`,
        { metadata: { name: `${REDIS_NAME}-config`, namespace: args.site.namespace, labels }, stringData: { "redis.conf": pulumi.secret(conf), password: pulumi.secret(args.password) } },
        childOpts,
      );
    }

    function createService(): k8s.core.v1.Service {
      return new k8s.core.v1.Service(
        name,
        {
          metadata: { name: REDIS_NAME, namespace: args.site.namespace, labels },
          spec: { type: "ClusterIP", selector: selectorLabels(REDIS_NAME), ports: [{ name: "redis", port: REDIS_PORT, targetPort: REDIS_PORT }] },
        },
        childOpts,
      );
    }

    function createStatefulSet(secret: k8s.core.v1.Secret, service: k8s.core.v1.Service): k8s.apps.v1.StatefulSet {
      // Unauthenticated PING answers NOAUTH when Redis is up: alive, without the password in argv.
      const alive = ["sh", "-c", `redis-cli -p ${REDIS_PORT} ping 2>&1 | grep -qE 'PONG|NOAUTH'`];
      return new k8s.apps.v1.StatefulSet(
        name,
        {
          metadata: { name: REDIS_NAME, namespace: args.site.namespace, labels },
          spec: {
            serviceName: service.metadata.name,
            replicas: 1,
            selector: { matchLabels: selectorLabels(REDIS_NAME) },
            template: {
              metadata: { labels },
              spec: {
                securityContext: { runAsUser: 999, runAsGroup: 999, fsGroup: 999, runAsNonRoot: true },
                terminationGracePeriodSeconds: 30,
                containers: [
                  {
                    name: "redis",
                    image: args.image,
                    command: ["redis-server", "/etc/redis/redis.conf"],
                    ports: [{ name: "redis", containerPort: REDIS_PORT }],
                    resources: resourcesFor(args.limits),
                    readinessProbe: { tcpSocket: { port: REDIS_PORT }, periodSeconds: 10 },
                    livenessProbe: { exec: { command: alive }, periodSeconds: 15, failureThreshold: 4 },
                    volumeMounts: [
                      { name: "data", mountPath: "/data" },
                      { name: "config", mountPath: "/etc/redis/redis.conf", subPath: "redis.conf", readOnly: true },
                    ],
                  },
                ],
                volumes: [{ name: "config", secret: { secretName: secret.metadata.name, defaultMode: 0o440 } }],
              },
            },
            volumeClaimTemplates: [dataVolumeClaim(labels, args.storageSize, args.storageClass)],
          },
        },
        childOpts,
      );
    }
  }
}
