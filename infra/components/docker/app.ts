/**
 * A trading application process in the dev stack: the API (Z1 health endpoints, the ops API) or the
 * worker. Credentials arrive as files named by `*_FILE` variables, never as values in the
 * environment (where `docker inspect` and crash dumps would show them).
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { publish, pullImage, serviceContainerArgs, upload, type DockerSite } from "./container-defaults.ts";

export interface DockerAppArgs {
  /** The stack network and port binding; the daemon is the provider in `opts`. */
  site: DockerSite;
  /** `api` or `worker`; the container role and network alias. */
  role: "api" | "worker";
  /** @example "ghcr.io/acme/trading-api:1.4.2" */
  image: string;
  /**
   * Z7: the API gets 2 CPU / 2 GiB, without swap.
   * @default { cpu: "2", memory: "2Gi" }
   * @example { cpu: "1", memory: "1Gi" }
   */
  limits?: WorkloadLimits;
  /**
   * Plain settings (hosts, ports, names).
   * @default {}
   * @example { DATABASE_HOST: "traffic", DATABASE_PORT: "5000" }
   */
  env?: Record<string, pulumi.Input<string>>;
  /**
   * Credentials: written to /run/secrets/tradeops/<name> and passed as `<NAME>_FILE`.
   * @default {}
   * @example { DATABASE_PASSWORD: config.requireSecret("dbPassword") }
   */
  secretFiles?: Record<string, pulumi.Input<string>>;
  /**
   * Port the process listens on; published only with `hostPort`.
   * @default unset: no health check, nothing published (the worker)
   * @example 8080
   */
  containerPort?: number;
  /** @example 16406 */
  hostPort?: number;
  /**
   * Z4: the app starts after the database and Redis are healthy.
   * @default []
   */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /**
   * Container settings passed through as given (pulumi-eks style).
   * @example { stopTimeout: 60 }
   */
  containerArgs?: Partial<Omit<docker.ContainerArgs, "name" | "image" | "envs" | "uploads" | "ports">>;
}

export const APP_SECRETS_DIR = "/run/secrets/tradeops";

export class DockerApp extends pulumi.ComponentResource {
  public readonly container: docker.Container;

  constructor(name: string, args: DockerAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:docker:App", name, {}, opts);
    const childOpts = { parent: this };
    const spec = normalizeArgs();

    const image = pullImage(`${name}-image`, args.image, childOpts);
    this.container = startApp(image);
    this.registerOutputs({ container: this.container.name });

    function normalizeArgs() {
      return {
        ...args,
        limits: args.limits ?? { cpu: "2", memory: "2Gi" },
        env: args.env ?? {},
        secretFiles: args.secretFiles ?? {},
        dependsOn: args.dependsOn ?? [],
      };
    }

    function startApp(appImage: docker.RemoteImage): docker.Container {
      const secretFileEnv = Object.keys(spec.secretFiles).map((key) => `${key}_FILE=${APP_SECRETS_DIR}/${key.toLowerCase()}`);
      const plainEnv = Object.entries(spec.env).map(([key, value]) => pulumi.interpolate`${key}=${value}`);
      const published = args.containerPort !== undefined && args.hostPort !== undefined;
      return new docker.Container(
        name,
        {
          ...serviceContainerArgs({ site: args.site, role: args.role, image: appImage.imageId, limits: spec.limits }),
          envs: [...plainEnv, ...secretFileEnv],
          uploads: Object.entries(spec.secretFiles).map(([key, value]) => upload(`${APP_SECRETS_DIR}/${key.toLowerCase()}`, pulumi.secret(value), "0600")),
          ports: published ? [publish(args.site, args.hostPort!, args.containerPort!)] : [],
          ...(args.containerPort !== undefined
            ? {
                healthcheck: {
                  // Z1: readiness covers database, Redis and the exchange.
                  tests: ["CMD-SHELL", `wget -qO- http://127.0.0.1:${args.containerPort}/health/ready >/dev/null || curl -fsS http://127.0.0.1:${args.containerPort}/health/ready >/dev/null`],
                  interval: "15s",
                  timeout: "5s",
                  retries: 4,
                  startPeriod: "30s",
                },
              }
            : {}),
          // Z4: SIGTERM, then 30 s to drain before SIGKILL.
          stopSignal: "SIGTERM",
          stopTimeout: 30,
          ...args.containerArgs,
        },
        { ...childOpts, dependsOn: spec.dependsOn },
      );
    }
  }
}
