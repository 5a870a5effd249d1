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
  site: DockerSite;
  /** `api` or `worker`; the container role and network alias. */
  role: "api" | "worker";
  /** @example "ghcr.io/acme/trading-api:1.4.2" */
  image: string;
  limits: WorkloadLimits;
  /** Plain settings (hosts, ports, names). */
  env: Record<string, pulumi.Input<string>>;
  /** Credentials: written to /run/secrets/tradeops/<name> and passed as `<NAME>_FILE`. */
  secretFiles: Record<string, pulumi.Input<string>>;
  /** Port the process listens on; published only for the API. @example 8080 */
  containerPort?: number;
  /** @example 16406 */
  hostPort?: number;
  /** Z4: the app starts after the database and Redis are healthy. */
  dependsOn: pulumi.Input<pulumi.Resource>[];
  /**
   * Container settings passed through as given (pulumi-eks style), e.g. `{ stopTimeout: 60 }`.
   * @example { init: true }
   */
  containerArgs?: Partial<Omit<docker.ContainerArgs, "name" | "image" | "envs" | "uploads" | "ports">>;
}

export const APP_SECRETS_DIR = "/run/secrets/tradeops";

export class DockerApp extends pulumi.ComponentResource {
  public readonly container: docker.Container;

  constructor(name: string, args: DockerAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:docker:App", name, {}, opts);
    const childOpts = { parent: this, provider: args.site.provider };

    const image = pullImage(`${name}-image`, args.image, childOpts);
    this.container = startApp(image);
    this.registerOutputs({ container: this.container.name });

    function startApp(appImage: docker.RemoteImage): docker.Container {
      const secretFileEnv = Object.keys(args.secretFiles).map((key) => `${key}_FILE=${APP_SECRETS_DIR}/${key.toLowerCase()}`);
      const plainEnv = Object.entries(args.env).map(([key, value]) => pulumi.interpolate`${key}=${value}`);
      const published = args.containerPort !== undefined && args.hostPort !== undefined;
      return new docker.Container(
        name,
        {
          ...serviceContainerArgs({ site: args.site, role: args.role, image: appImage.imageId, limits: args.limits }),
          envs: [...plainEnv, ...secretFileEnv],
          uploads: Object.entries(args.secretFiles).map(([key, value]) => upload(`${APP_SECRETS_DIR}/${key.toLowerCase()}`, pulumi.secret(value), "0600")),
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
        { ...childOpts, dependsOn: args.dependsOn },
      );
    }
  }
}
