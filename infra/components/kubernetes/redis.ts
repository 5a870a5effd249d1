/**
 * Redis on Kubernetes (S7, C4): one StatefulSet pod on a PersistentVolumeClaim with AOF fsynced
 * every second and the seed's RDB save rules — redis.conf from the sandbox's generator, kept in a
 * Secret because it carries `requirepass`.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { REDIS_PORT, redisNodeConf } from "../rendered-files.ts";
import { redisDefaults } from "../workload-defaults.ts";
import { appLabels, clusterHost, dataVolumeClaim, requireObjectName, resourcesFor, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface KubernetesRedisArgs {
  /** The namespace; the cluster is the provider in `opts`. */
  site: KubernetesSite;
  /**
   * @default "redis:7.2"
   * @example "redis:7.4"
   */
  image?: string;
  /**
   * Limits of the redis container; keep memory ≥ 1.25 × `maxmemory` (fork headroom, S7).
   * @default { cpu: "1", memory: "3Gi" }
   */
  limits?: WorkloadLimits;
  password: pulumi.Input<string>;
  /**
   * S7: where Redis starts evicting.
   * @default "2gb"
   * @example "512mb"
   */
  maxmemory?: string;
  /**
   * S7, C4.
   * @default "allkeys-lru"
   * @example "volatile-lru"
   */
  maxmemoryPolicy?: string;
  /**
   * The pod's data volume (AOF and RDB).
   * @default "10Gi"
   */
  storageSize?: string;
  /**
   * @default the cluster's default StorageClass
   * @example "gp3"
   */
  storageClass?: string;
}

/**
 * Object names derive from the component's name: StatefulSet, Service and pods'
 * `app.kubernetes.io/name` `<name>`, Secret `<name>-config`.
 */
export class KubernetesRedis extends pulumi.ComponentResource {
  public readonly statefulSet: k8s.apps.v1.StatefulSet;
  public readonly service: k8s.core.v1.Service;
  /** Holds `redis.conf` and `password` (the backup job reads the latter). */
  public readonly secret: k8s.core.v1.Secret;
  /** The Secret and key holding the password, for `secretKeyRef`. */
  public readonly passwordSecret: { name: pulumi.Output<string>; key: string };
  /** The StatefulSet's name and the pods' `app.kubernetes.io/name`: the component's name. */
  public readonly appName: string;
  public readonly host: string;
  public readonly port = REDIS_PORT;

  constructor(name: string, args: KubernetesRedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:Redis", requireObjectName(name), {}, opts);
    const childOpts = { parent: this };
    this.appName = name;
    const spec = normalizeArgs();
    const labels = appLabels(name, "cache");
    this.host = clusterHost(name, args.site);

    this.secret = createConfigSecret();
    this.passwordSecret = { name: this.secret.metadata.name, key: "password" };
    this.service = createService();
    this.statefulSet = createStatefulSet(this.secret, this.service);
    this.registerOutputs({ host: this.host });

    function normalizeArgs() {
      return { ...args, ...redisDefaults(args), storageSize: args.storageSize ?? "10Gi" };
    }

    function createConfigSecret(): k8s.core.v1.Secret {
      const conf = pulumi.output(spec.password).apply((password) => redisNodeConf({ password, maxmemory: spec.maxmemory, maxmemoryPolicy: spec.maxmemoryPolicy }));
      return new k8s.core.v1.Secret(
        `${name}-config`,
        { metadata: { name: `${name}-config`, namespace: args.site.namespace, labels }, stringData: { "redis.conf": pulumi.secret(conf), password: pulumi.secret(spec.password) } },
        childOpts,
      );
    }

    function createService(): k8s.core.v1.Service {
      return new k8s.core.v1.Service(
        name,
        {
          metadata: { name, namespace: args.site.namespace, labels },
          spec: { type: "ClusterIP", selector: selectorLabels(name), ports: [{ name: "redis", port: REDIS_PORT, targetPort: REDIS_PORT }] },
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
          metadata: { name, namespace: args.site.namespace, labels },
          spec: {
            serviceName: service.metadata.name,
            replicas: 1,
            selector: { matchLabels: selectorLabels(name) },
            template: {
              metadata: { labels },
              spec: {
                securityContext: { runAsUser: 999, runAsGroup: 999, fsGroup: 999, runAsNonRoot: true },
                terminationGracePeriodSeconds: 30,
                containers: [
                  {
                    name: "redis",
                    image: spec.image,
                    command: ["redis-server", "/etc/redis/redis.conf"],
                    ports: [{ name: "redis", containerPort: REDIS_PORT }],
                    resources: resourcesFor(spec.limits),
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
            volumeClaimTemplates: [dataVolumeClaim(labels, spec.storageSize, spec.storageClass)],
          },
        },
        childOpts,
      );
    }
  }
}
