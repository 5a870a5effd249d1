/**
 * The dev stack's PostgreSQL pair: a TimescaleDB primary (`pg-a`) and a streaming standby (`pg-b`)
 * on named volumes, configured by the generators the sandbox uses, archiving WAL to the stack's
 * object store with pgBackRest (I7) and, by default, committing synchronously to the standby (I5).
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { PgbackrestRepoOptions } from "../../config-files/pgbackrest.ts";
import type { WorkloadLimits } from "../../config.ts";
import {
  PG_PATHS,
  PG_PORT,
  PG_SECRET_FILES,
  nodeStartScript,
  pgbackrestNodeConf,
  primaryInitScript,
  timescaleHba,
  timescaleNodeConf,
  type StartScriptOptions,
} from "../rendered-files.ts";
import { timescaleDefaults } from "../workload-defaults.ts";
import { publish, pullImage, serviceContainerArgs, upload, type DockerSite } from "./container-defaults.ts";
import { OBJECT_STORE } from "./object-store.ts";

export interface DockerTimescaleArgs {
  /** The stack network and port binding; the daemon is the provider in `opts`. */
  site: DockerSite;
  /**
   * An image with TimescaleDB, pgBackRest and the postgres docker-entrypoint.
   * @default "timescale/timescaledb-ha:pg15"
   * @example "timescale/timescaledb-ha:pg16"
   */
  image?: string;
  /**
   * Limits of each node, without swap (Z7).
   * @default { cpu: "2", memory: "4Gi" }
   */
  limits?: WorkloadLimits;
  /** @default "trading" */
  dbName?: string;
  /**
   * The ops role runbooks use.
   * @default "tradeops"
   */
  dbUser?: string;
  dbPassword: pulumi.Input<string>;
  /** @default "replicator" */
  replicationUser?: string;
  replicationPassword: pulumi.Input<string>;
  /**
   * `sync`: commits wait for pg-b (I5 DB failure RPO 0).
   * @default "sync"
   */
  replicationMode?: "sync" | "async";
  /** Host ports of pg-a and pg-b. @example { primary: 16401, standby: 16402 } */
  hostPorts: { primary: number; standby: number };
  /** pg_hba: the stack network's CIDR. @example "172.28.0.0/16" */
  clientNetwork: string;
  /** @default "trading" */
  stanza?: string;
  /** The pgBackRest repository (the object store), credentials as secrets. */
  repository: pulumi.Input<PgbackrestRepoOptions>;
  /**
   * I7: what pgBackRest keeps.
   * @default { pgFullDays: 30, walDays: 7 }
   */
  retention?: { pgFullDays?: number; walDays?: number };
  /** Host directory holding the object store's certificate (mounted read-only). @example "/home/me/tradeops/.tradeops/stacks/dev/s3-certs" */
  certificateDir: string;
  /**
   * The primary initialises the pgBackRest stanza: start it once the bucket exists.
   * @default []
   * @example [store.bucketReady]
   */
  after?: pulumi.Input<pulumi.Resource>[];
}

/** A node of the pair, as the outputs contract describes it. */
export interface DockerPgNode {
  name: string;
  role: "primary" | "standby";
  container: docker.Container;
  hostPort: number;
}

export const REPLICATION_SLOT = "pg_b";

export class DockerTimescalePair extends pulumi.ComponentResource {
  public readonly primary: DockerPgNode;
  public readonly standby: DockerPgNode;
  public readonly replicationSlot = REPLICATION_SLOT;

  constructor(name: string, args: DockerTimescaleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:docker:Timescale", name, {}, opts);
    const childOpts = { parent: this };
    const spec = normalizeArgs();

    const image = pullImage(`${name}-image`, spec.image, childOpts);
    const files = renderNodeFiles();
    const primary = startNode("pg-a", "primary", args.hostPorts.primary, spec.after);
    const standby = startNode("pg-b", "standby", args.hostPorts.standby, [primary]);
    this.primary = { name: "pg-a", role: "primary", container: primary, hostPort: args.hostPorts.primary };
    this.standby = { name: "pg-b", role: "standby", container: standby, hostPort: args.hostPorts.standby };
    this.registerOutputs({ primary: primary.name, standby: standby.name });

    function normalizeArgs() {
      return { ...args, ...timescaleDefaults(args), after: args.after ?? [] };
    }

    function renderNodeFiles() {
      const scriptOptions: StartScriptOptions = {
        dbName: spec.dbName,
        dbUser: spec.dbUser,
        replicationUser: spec.replicationUser,
        stanza: spec.stanza,
        standbySlots: [REPLICATION_SLOT],
      };
      return {
        postgresqlConf: timescaleNodeConf({
          clientNetwork: args.clientNetwork,
          replicationUser: spec.replicationUser,
          synchronousStandby: spec.replicationMode === "sync" ? "pg-b" : undefined,
          stanza: spec.stanza,
          clusterName: "tradeops",
        }),
        pgHba: timescaleHba({ clientNetwork: args.clientNetwork, replicationUser: spec.replicationUser }),
        pgbackrestConf: pulumi.secret(pulumi.output(args.repository).apply((repo) => pgbackrestNodeConf({ stanza: spec.stanza, repo, retention: spec.retention }))),
        startScript: nodeStartScript(scriptOptions),
        initScript: primaryInitScript(scriptOptions),
      };
    }

    function startNode(node: "pg-a" | "pg-b", role: "primary" | "standby", hostPort: number, after: pulumi.Input<pulumi.Resource>[]): docker.Container {
      const data = new docker.Volume(`${name}-${node}-data`, { name: `${args.site.namePrefix}-${node}-data` }, childOpts);
      const base = serviceContainerArgs({ site: args.site, role: node, image: image.imageId, limits: spec.limits });
      const owner = "1000";
      return new docker.Container(
        `${name}-${node}`,
        {
          ...base,
          entrypoints: ["/bin/bash", PG_PATHS.startScript],
          envs: [
            `TRADEOPS_BOOTSTRAP=${role}`,
            `NODE_NAME=${node}`,
            // The image's entrypoint reads the superuser password from this file at initdb.
            `POSTGRES_PASSWORD_FILE=${PG_SECRET_FILES.dbPassword}`,
            `PGDATA=${PG_PATHS.dataDir}`,
            ...(role === "standby" ? [`PRIMARY_HOST=pg-a`, `PRIMARY_PORT=${PG_PORT}`, `SLOT_NAME=${REPLICATION_SLOT}`] : []),
          ],
          uploads: [
            upload(PG_PATHS.postgresqlConf, files.postgresqlConf, "0644", owner),
            upload(PG_PATHS.pgHbaConf, files.pgHba, "0644", owner),
            upload(PG_PATHS.startScript, files.startScript, "0755", owner),
            upload(PG_PATHS.initScript, files.initScript, "0755", owner),
            upload(PG_PATHS.pgbackrestConf, files.pgbackrestConf, "0600", owner),
            upload(PG_SECRET_FILES.dbPassword, pulumi.secret(args.dbPassword), "0600", owner),
            upload(PG_SECRET_FILES.replicationPassword, pulumi.secret(args.replicationPassword), "0600", owner),
          ],
          volumes: [
            { volumeName: data.name, containerPath: PG_PATHS.home },
            { hostPath: args.certificateDir, containerPath: OBJECT_STORE.caMountPath, readOnly: true },
          ],
          ports: [publish(args.site, hostPort, PG_PORT)],
          // S1: pg_isready health check; the standby is healthy once it accepts read-only connections.
          healthcheck: {
            tests: ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", String(PG_PORT), "-U", "postgres"],
            interval: "10s",
            timeout: "5s",
            retries: 6,
            startPeriod: "60s",
          },
          // Z4: a standby bootstraps from a running primary; apps start after both are healthy.
          wait: true,
          waitTimeout: 300,
          // Smart shutdown could wait for clients forever; fast shutdown within 60 s (Z4 keeps data).
          stopSignal: "SIGINT",
          stopTimeout: 60,
          shmSize: 256,
        },
        { ...childOpts, dependsOn: after },
      );
    }
  }
}
