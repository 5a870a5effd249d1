/**
 * What every long-running container of the dev stack has in common: a restart policy (S1), log
 * rotation (Z2: json-file, 100m × 5), CPU and memory limits without swap (Z7), ports published on
 * the stack's bind address only, and the stack network with a stable alias.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { cpuMillis, memoryMiB, type WorkloadLimits } from "../../config.ts";

/**
 * Where the dev stack puts every Docker component. The daemon is not in here: a component gets its
 * provider through `opts` (`{ provider }`) and its children inherit it.
 */
export interface DockerSite {
  /** Name of the stack's bridge network. */
  networkName: pulumi.Input<string>;
  /** Container names are `<prefix>-<role>`, e.g. `tradeops-dev-pg-a`. */
  namePrefix: string;
  /** Address every published port binds to. @default "127.0.0.1" */
  bindAddress: string;
}

/** Z2: json-file rotation at 100 MB, five files kept. */
export const LOG_ROTATION = { "max-size": "100m", "max-file": "5" } as const;

/** A published port on the site's bind address (never Docker's 0.0.0.0 default). */
export function publish(site: DockerSite, hostPort: number, containerPort: number): docker.types.input.ContainerPort {
  return { internal: containerPort, external: hostPort, ip: site.bindAddress, protocol: "tcp" };
}

/** Docker's `--cpus` from a Kubernetes CPU quantity: `500m` → `0.5`. */
export function dockerCpus(quantity: string): string {
  return String(cpuMillis(quantity) / 1000);
}

export interface ServiceContainerOptions {
  site: DockerSite;
  /** Role in the stack; the container name and the network alias. @example "pg-a" */
  role: string;
  image: pulumi.Input<string>;
  limits: WorkloadLimits;
}

/** The defaults above as ContainerArgs; components spread their own args over them. */
export function serviceContainerArgs(opts: ServiceContainerOptions): docker.ContainerArgs {
  const memory = memoryMiB(opts.limits.memory);
  return {
    name: `${opts.site.namePrefix}-${opts.role}`,
    image: opts.image,
    restart: "unless-stopped",
    logDriver: "json-file",
    logOpts: { ...LOG_ROTATION },
    cpus: dockerCpus(opts.limits.cpu),
    memory,
    // Equal to memory: no swap, so a leak is OOM-killed and restarted rather than slowing everything (T2).
    memorySwap: memory,
    networksAdvanced: [{ name: opts.site.networkName, aliases: [opts.role] }],
    labels: [
      { label: "tradeops.role", value: opts.role },
      { label: "tradeops.stack", value: pulumi.getStack() },
    ],
  };
}

/** A file placed in the container before it starts; `secret` files are 0600 (owner as given). */
export function upload(file: string, content: pulumi.Input<string>, mode: "0644" | "0600" | "0755" = "0644", owner?: string): docker.types.input.ContainerUpload {
  return { file, content, permissions: mode, ...(owner ? { owner, group: owner } : {}) };
}

/** Pulls the image once and keeps it when the container goes (a redeploy must not re-download). */
export function pullImage(name: string, image: string, opts: pulumi.CustomResourceOptions): docker.RemoteImage {
  return new docker.RemoteImage(name, { name: image, keepLocally: true }, opts);
}
