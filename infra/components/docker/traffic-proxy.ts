/**
 * The database traffic endpoint of the dev stack: HAProxy in front of the primary, with the
 * standby present but disabled, rendered by the sandbox's haproxy.cfg generator. Failover flips the
 * servers over the admin socket (I5) without a reload.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { TRAFFIC_PORT, trafficProxyCfg } from "../rendered-files.ts";
import { publish, pullImage, serviceContainerArgs, upload, type DockerSite } from "./container-defaults.ts";

export interface DockerTrafficProxyArgs {
  /** The stack network and port binding; the daemon is the provider in `opts`. */
  site: DockerSite;
  /**
   * @default "haproxy:2.8"
   * @example "haproxy:3.0"
   */
  image?: string;
  /** @default { cpu: "500m", memory: "256Mi" } */
  limits?: WorkloadLimits;
  /** Backend servers by network alias; exactly one enabled (the primary). @example [{ name: "pg-a", enabled: true }, { name: "pg-b", enabled: false }] */
  servers: Array<{ name: string; enabled: boolean }>;
  /** @example 16403 */
  hostPort: number;
  /**
   * The database nodes; the proxy starts after them (Z4).
   * @default []
   */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class DockerTrafficProxy extends pulumi.ComponentResource {
  public readonly container: docker.Container;
  /** The endpoint inside the stack network, for the API and worker. */
  public readonly internalHost = "traffic";
  public readonly internalPort = TRAFFIC_PORT;

  constructor(name: string, args: DockerTrafficProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:docker:TrafficProxy", name, {}, opts);
    const childOpts = { parent: this };
    const spec = normalizeArgs();

    const config = trafficProxyCfg(args.servers.map((server) => ({ ...server, host: server.name })));
    this.container = startProxy(config);
    this.registerOutputs({ container: this.container.name });

    function normalizeArgs() {
      return {
        ...args,
        image: args.image ?? "haproxy:2.8",
        limits: args.limits ?? { cpu: "500m", memory: "256Mi" },
        dependsOn: args.dependsOn ?? [],
      };
    }

    function startProxy(haproxyCfg: string): docker.Container {
      const image = pullImage(`${name}-image`, spec.image, childOpts);
      return new docker.Container(
        name,
        {
          ...serviceContainerArgs({ site: args.site, role: "traffic", image: image.imageId, limits: spec.limits }),
          uploads: [upload("/usr/local/etc/haproxy/haproxy.cfg", haproxyCfg)],
          ports: [publish(args.site, args.hostPort, TRAFFIC_PORT)],
          healthcheck: {
            // The config must stay valid (a bad edit would otherwise surface only at the next restart).
            tests: ["CMD", "haproxy", "-c", "-q", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
            interval: "30s",
            timeout: "5s",
            retries: 3,
          },
        },
        { ...childOpts, dependsOn: spec.dependsOn },
      );
    }
  }
}
