/**
 * TimescaleDB on Kubernetes: a StatefulSet whose pod -0 starts as primary and the others stream
 * from it through their own replication slots (I5: promote a replica), or — on the DR site — one
 * standby restored from the replicated pgBackRest repository. Config files come from the same
 * generators as the sandbox and the dev stack; the read-write Service points at the primary.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { PgbackrestRepoOptions } from "../../config-files/pgbackrest.ts";
import type { WorkloadLimits } from "../../config.ts";
import {
  PG_EXPORTER_PORT,
  PG_PATHS,
  PG_PORT,
  PG_SECRET_FILES,
  nodeStartScript,
  pgbackrestNodeConf,
  primaryInitScript,
  timescaleHba,
  timescaleNodeConf,
} from "../rendered-files.ts";
import { appLabels, clusterHost, dataVolumeClaim, fromSecret, resourcesFor, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface KubernetesTimescaleArgs {
  site: KubernetesSite;
  /** @default "timescale/timescaledb-ha:pg15" */
  image: string;
  /** @example "prometheuscommunity/postgres-exporter:v0.15.0" */
  exporterImage: string;
  limits: WorkloadLimits;
  /** @default "100Gi" */
  storageSize: string;
  /** @default the cluster's default StorageClass */
  storageClass?: string;
  /** Pods in the StatefulSet; 2 = primary + one streaming standby. @default 2 */
  replicas: number;
  dbName: string;
  dbUser: string;
  dbPassword: pulumi.Input<string>;
  replicationUser: string;
  replicationPassword: pulumi.Input<string>;
  /** `sync`: the primary waits for pod -1 (I5 RPO 0). Ignored with one replica. */
  replicationMode: "sync" | "async";
  /** pg_hba: where clients connect from (the pod network; NetworkPolicies narrow it further). @example "10.0.0.0/8" */
  clientNetwork: string;
  stanza: string;
  repository: pulumi.Input<PgbackrestRepoOptions>;
  retention: { pgFullDays: number; walDays: number };
  /**
   * `ordinal`: pod -0 initdb's as primary, the others follow it (prod). `repository`: every pod is
   * a standby restored from the pgBackRest repository (DR, I6).
   * @default "ordinal"
   */
  bootstrap?: "ordinal" | "repository";
  /** DR streaming: the primary's host reachable from this cluster; unset = WAL from the repository only. */
  primaryHost?: string;
  /** DR streaming: slot on the primary. @example "timescale_dr" */
  slotName?: string;
}

export const TIMESCALE_NAME = "timescale";

export class KubernetesTimescale extends pulumi.ComponentResource {
  public readonly statefulSet: k8s.apps.v1.StatefulSet;
  /** Always the primary (pod -0 until a failover runbook re-points it). */
  public readonly readWriteService: k8s.core.v1.Service;
  public readonly headlessService: k8s.core.v1.Service;
  public readonly credentials: k8s.core.v1.Secret;
  /** Stable DNS names of the pods, in ordinal order: `timescale-0.timescale-headless.<ns>.svc.cluster.local`. */
  public readonly podHosts: string[];
  public readonly podNames: string[];
  public readonly readWriteHost: string;

  constructor(name: string, args: KubernetesTimescaleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:Timescale", name, {}, opts);
    const childOpts = { parent: this, provider: args.site.provider };
    const bootstrap = args.bootstrap ?? "ordinal";
    const headlessName = `${TIMESCALE_NAME}-headless`;
    const labels = appLabels(TIMESCALE_NAME, "database");
    this.podNames = Array.from({ length: args.replicas }, (_, i) => `${TIMESCALE_NAME}-${i}`);
    this.podHosts = this.podNames.map((pod) => `${pod}.${clusterHost(headlessName, args.site)}`);
    this.readWriteHost = clusterHost(`${TIMESCALE_NAME}-rw`, args.site);

    this.credentials = createCredentials();
    const repositorySecret = createRepositorySecret();
    const files = createConfigFiles();
    this.headlessService = createHeadlessService();
    this.readWriteService = createReadWriteService();
    this.statefulSet = createStatefulSet(this.credentials, repositorySecret, files, this.headlessService);
    this.registerOutputs({ statefulSet: this.statefulSet.metadata.name, readWriteHost: this.readWriteHost });

    function createCredentials(): k8s.core.v1.Secret {
      return new k8s.core.v1.Secret(
        `${name}-credentials`,
        {
          metadata: { name: `${TIMESCALE_NAME}-credentials`, namespace: args.site.namespace, labels },
          stringData: { "db-password": pulumi.secret(args.dbPassword), "replication-password": pulumi.secret(args.replicationPassword) },
        },
        childOpts,
      );
    }

    function createRepositorySecret(): k8s.core.v1.Secret {
      // pgbackrest.conf holds the repository keys: a Secret, not a ConfigMap.
      const conf = pulumi.output(args.repository).apply((repo) => pgbackrestNodeConf({ stanza: args.stanza, repo, retention: args.retention }));
      return new k8s.core.v1.Secret(
        `${name}-pgbackrest`,
        { metadata: { name: `${TIMESCALE_NAME}-pgbackrest`, namespace: args.site.namespace, labels }, stringData: { "pgbackrest.conf": pulumi.secret(conf) } },
        childOpts,
      );
    }

    function createConfigFiles(): k8s.core.v1.ConfigMap {
      const standbySlots = bootstrap === "ordinal" ? Array.from({ length: args.replicas - 1 }, (_, i) => `${TIMESCALE_NAME}_${i + 1}`) : [];
      const scriptOptions = { dbName: args.dbName, dbUser: args.dbUser, replicationUser: args.replicationUser, stanza: args.stanza, standbySlots };
      const synchronous = bootstrap === "ordinal" && args.replicas > 1 && args.replicationMode === "sync";
      return new k8s.core.v1.ConfigMap(
        `${name}-config`,
        {
          metadata: { name: `${TIMESCALE_NAME}-config`, namespace: args.site.namespace, labels },
          data: {
            "postgresql.conf": timescaleNodeConf({
              clientNetwork: args.clientNetwork,
              replicationUser: args.replicationUser,
              synchronousStandby: synchronous ? `${TIMESCALE_NAME}-1` : undefined,
              stanza: args.stanza,
              clusterName: TIMESCALE_NAME,
            }),
            "pg_hba.conf": timescaleHba({ clientNetwork: args.clientNetwork, replicationUser: args.replicationUser }),
            "start-node.sh": nodeStartScript(scriptOptions),
            "init-primary.sh": primaryInitScript(scriptOptions),
          },
        },
        childOpts,
      );
    }

    function createHeadlessService(): k8s.core.v1.Service {
      return new k8s.core.v1.Service(
        `${name}-headless`,
        {
          metadata: { name: headlessName, namespace: args.site.namespace, labels },
          spec: {
            clusterIP: "None",
            // Standbys bootstrap from pod -0 before it is Ready for clients.
            publishNotReadyAddresses: true,
            selector: selectorLabels(TIMESCALE_NAME),
            ports: [
              { name: "postgres", port: PG_PORT, targetPort: PG_PORT },
              { name: "metrics", port: PG_EXPORTER_PORT, targetPort: PG_EXPORTER_PORT },
            ],
          },
        },
        childOpts,
      );
    }

    function createReadWriteService(): k8s.core.v1.Service {
      return new k8s.core.v1.Service(
        `${name}-rw`,
        {
          metadata: { name: `${TIMESCALE_NAME}-rw`, namespace: args.site.namespace, labels },
          spec: {
            type: "ClusterIP",
            // Failover (I5) re-points this selector at the promoted pod; deploys keep pod -0.
            selector: { ...selectorLabels(TIMESCALE_NAME), "statefulset.kubernetes.io/pod-name": `${TIMESCALE_NAME}-0` },
            ports: [{ name: "postgres", port: PG_PORT, targetPort: PG_PORT }],
          },
        },
        { ...childOpts, ignoreChanges: ["spec.selector"] },
      );
    }

    function createStatefulSet(credentials: k8s.core.v1.Secret, repository: k8s.core.v1.Secret, files: k8s.core.v1.ConfigMap, headless: k8s.core.v1.Service): k8s.apps.v1.StatefulSet {
      const pgReady = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", String(PG_PORT), "-U", "postgres"];
      const env: k8s.types.input.core.v1.EnvVar[] = [
        { name: "TRADEOPS_BOOTSTRAP", value: bootstrap },
        { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "HEADLESS_SERVICE", value: clusterHost(headlessName, args.site) },
        { name: "PGDATA", value: PG_PATHS.dataDir },
        { name: "POSTGRES_PASSWORD_FILE", value: PG_SECRET_FILES.dbPassword },
        ...(args.primaryHost ? [{ name: "PRIMARY_HOST", value: args.primaryHost }] : []),
        ...(args.slotName ? [{ name: "SLOT_NAME", value: args.slotName }] : []),
      ];
      return new k8s.apps.v1.StatefulSet(
        name,
        {
          metadata: { name: TIMESCALE_NAME, namespace: args.site.namespace, labels },
          spec: {
            serviceName: headless.metadata.name,
            replicas: args.replicas,
            podManagementPolicy: "OrderedReady",
            updateStrategy: { type: "RollingUpdate" },
            selector: { matchLabels: selectorLabels(TIMESCALE_NAME) },
            template: {
              metadata: { labels },
              spec: {
                securityContext: { runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, runAsNonRoot: true },
                terminationGracePeriodSeconds: 60,
                containers: [
                  {
                    name: "postgres",
                    image: args.image,
                    command: ["/bin/bash", PG_PATHS.startScript],
                    env,
                    ports: [{ name: "postgres", containerPort: PG_PORT }],
                    resources: resourcesFor(args.limits),
                    // A base backup or a repository restore can take long: liveness starts after it.
                    startupProbe: { exec: { command: pgReady }, periodSeconds: 10, failureThreshold: 360 },
                    readinessProbe: { exec: { command: pgReady }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
                    livenessProbe: { exec: { command: pgReady }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 6 },
                    volumeMounts: [
                      { name: "data", mountPath: PG_PATHS.home },
                      { name: "config", mountPath: PG_PATHS.configDir },
                      { name: "config", mountPath: PG_PATHS.initScript, subPath: "init-primary.sh" },
                      { name: "credentials", mountPath: PG_PATHS.secretsDir, readOnly: true },
                      { name: "pgbackrest", mountPath: PG_PATHS.pgbackrestDir, readOnly: true },
                      { name: "shm", mountPath: "/dev/shm" },
                    ],
                  },
                  {
                    // S4/S5: LowDatabaseConnections is computed from postgres_exporter's metrics.
                    name: "exporter",
                    image: args.exporterImage,
                    env: [
                      { name: "DATA_SOURCE_URI", value: `127.0.0.1:${PG_PORT}/${args.dbName}?sslmode=disable` },
                      { name: "DATA_SOURCE_USER", value: args.dbUser },
                      fromSecret("DATA_SOURCE_PASS", credentials.metadata.name, "db-password"),
                    ],
                    ports: [{ name: "metrics", containerPort: PG_EXPORTER_PORT }],
                    resources: resourcesFor({ cpu: "250m", memory: "128Mi" }),
                    readinessProbe: { httpGet: { path: "/", port: PG_EXPORTER_PORT }, periodSeconds: 15 },
                  },
                ],
                volumes: [
                  { name: "config", configMap: { name: files.metadata.name, defaultMode: 0o555 } },
                  { name: "credentials", secret: { secretName: credentials.metadata.name, defaultMode: 0o440 } },
                  { name: "pgbackrest", secret: { secretName: repository.metadata.name, defaultMode: 0o440 } },
                  { name: "shm", emptyDir: { medium: "Memory", sizeLimit: "256Mi" } },
                ],
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
