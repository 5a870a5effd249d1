/**
 * The dev stack's Redis (S7, C4): AOF fsynced every second, the seed's RDB save rules, maxmemory
 * and eviction policy from config — redis.conf from the sandbox's generator, uploaded as a secret
 * because it carries `requirepass`.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { REDIS_PORT, redisNodeConf } from "../rendered-files.ts";
import { redisDefaults } from "../workload-defaults.ts";
import { publish, pullImage, serviceContainerArgs, upload, type DockerSite } from "./container-defaults.ts";

export interface DockerRedisArgs {
  /** The stack network and port binding; the daemon is the provider in `opts`. */
  site: DockerSite;
  /**
   * @default "redis:7.2"
   * @example "redis:7.4"
   */
  image?: string;
  /**
   * Keep memory ≥ 1.25 × `maxmemory` (fork headroom, S7).
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
  /** @example 16404 */
  hostPort: number;
}

export class DockerRedis extends pulumi.ComponentResource {
  public readonly container: docker.Container;
  public readonly internalHost = "redis";
  public readonly internalPort = REDIS_PORT;

  constructor(name: string, args: DockerRedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:docker:Redis", name, {}, opts);
    const childOpts = { parent: this };
    const spec = normalizeArgs();

    const data = new docker.Volume(`${name}-data`, { name: `${args.site.namePrefix}-redis-data` }, childOpts);
    const conf = pulumi.secret(pulumi.output(args.password).apply((password) => redisNodeConf({ password, maxmemory: spec.maxmemory, maxmemoryPolicy: spec.maxmemoryPolicy })));
    this.container = startRedis(data, conf);
    this.registerOutputs({ container: this.container.name });

    function normalizeArgs() {
      return { ...args, ...redisDefaults(args) };
    }

    function startRedis(volume: docker.Volume, redisConf: pulumi.Output<string>): docker.Container {
      const image = pullImage(`${name}-image`, spec.image, childOpts);
      return new docker.Container(
        name,
        {
          ...serviceContainerArgs({ site: args.site, role: "redis", image: image.imageId, limits: spec.limits }),
          command: ["redis-server", "/usr/local/etc/redis/redis.conf"],
          uploads: [upload("/usr/local/etc/redis/redis.conf", redisConf, "0600", "999")],
          volumes: [{ volumeName: volume.name, containerPath: "/data" }],
          ports: [publish(args.site, args.hostPort, REDIS_PORT)],
          healthcheck: {
            // Unauthenticated PING answers NOAUTH when Redis is up: alive without putting the password in argv.
            tests: ["CMD-SHELL", `redis-cli -p ${REDIS_PORT} ping 2>&1 | grep -qE 'PONG|NOAUTH'`],
            interval: "10s",
            timeout: "3s",
            retries: 5,
          },
          wait: true,
          waitTimeout: 120,
        },
        childOpts,
      );
    }
  }
}
