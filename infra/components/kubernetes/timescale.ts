/**
 * TimescaleDB on Kubernetes: a StatefulSet whose recorded primary pod (-0 unless `primaryPod`
 * says otherwise) runs as primary and the others stream from it through their own replication slots (I5: promote a replica), or — on the DR site — one
 * standby restored from the replicated pgBackRest repository. Config files come from the same
 * generators as the sandbox and the dev stack; the read-write Service points at the primary.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { DATABASE_CONFIG_MAP } from "../../../contract/outputs.ts";
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
import { PG_EXPORTER_IMAGE, timescaleDefaults } from "../workload-defaults.ts";
import { appLabels, clusterHost, dataVolumeClaim, fromSecret, requireObjectName, resourcesFor, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface KubernetesTimescaleArgs {
  /** The namespace; the cluster is the provider in `opts`. */
  site: KubernetesSite;
  /**
   * An image with TimescaleDB, pgBackRest and the postgres docker-entrypoint, running as uid 1000.
   * @default "timescale/timescaledb-ha:pg15"
   * @example "timescale/timescaledb-ha:pg16"
   */
  image?: string;
  /**
   * postgres_exporter, the sidecar S4/S5's LowDatabaseConnections reads.
   * @default "prometheuscommunity/postgres-exporter:v0.15.0"
   */
  exporterImage?: string;
  /**
   * Limits of the postgres container (requests are a quarter, Z7).
   * @default { cpu: "2", memory: "4Gi" }
   * @example { cpu: "4", memory: "16Gi" }
   */
  limits?: WorkloadLimits;
  /**
   * Each pod's data volume.
   * @default "100Gi"
   * @example "500Gi"
   */
  storageSize?: string;
  /**
   * @default the cluster's default StorageClass
   * @example "gp3"
   */
  storageClass?: string;
  /**
   * Pods in the StatefulSet: pod -0 the primary, the others streaming standbys.
   * @default 2
   * @example 3
   */
  replicas?: number;
  /** @default "trading" */
  dbName?: string;
  /**
   * The ops role runbooks and apps use.
   * @default "tradeops"
   */
  dbUser?: string;
  dbPassword: pulumi.Input<string>;
  /** @default "replicator" */
  replicationUser?: string;
  replicationPassword: pulumi.Input<string>;
  /**
   * `sync`: the primary waits for pod -1 (I5 RPO 0). Ignored with one replica or `bootstrap: "repository"`.
   * @default "sync"
   */
  replicationMode?: "sync" | "async";
  /**
   * pg_hba: where clients connect from (the pod network; NetworkPolicies narrow it further).
   * @default "10.0.0.0/8"
   * @example "100.64.0.0/10"
   */
  clientNetwork?: string;
  /** @default "trading" */
  stanza?: string;
  /** The pgBackRest repository (the site's bucket), credentials as secrets. */
  repository: pulumi.Input<PgbackrestRepoOptions>;
  /**
   * I7: what pgBackRest keeps.
   * @default { pgFullDays: 30, walDays: 7 }
   */
  retention?: { pgFullDays?: number; walDays?: number };
  /**
   * `ordinal`: pod -0 initdb's as primary, the others follow it (prod). `repository`: every pod is
   * a standby restored from the pgBackRest repository (DR, I6).
   * @default "ordinal"
   */
  bootstrap?: "ordinal" | "repository";
  /**
   * DR streaming: the primary's host reachable from this cluster.
   * @default unset: WAL from the repository only
   * @example "timescale-0.timescale-headless.tradeops.svc.cluster.local"
   */
  primaryHost?: string;
  /** DR streaming: slot on the primary. @example "timescale_dr" */
  slotName?: string;
  /**
   * The pod that is primary (the stack's `tradeops:primaryNode`): the read-write Service selects
   * it, the ConfigMap records it for the pods' start script, the first other pod is the synchronous
   * standby. A failover runbook moves it; the next deploy keeps what it recorded.
   * @default `<name>-0`
   * @example "timescale-1"
   */
  primaryPod?: string;
}

/**
 * Object names all derive from the component's name: StatefulSet and pods' `app.kubernetes.io/name`
 * `<name>`, pods `<name>-<i>`, Services `<name>-headless` and `<name>-rw`, Secrets
 * `<name>-credentials` and `<name>-pgbackrest`, ConfigMap `<name>-config`.
 */
export class KubernetesTimescale extends pulumi.ComponentResource {
  public readonly statefulSet: k8s.apps.v1.StatefulSet;
  /** Selects the primary pod alone (`primaryPod`; a failover runbook re-points it). */
  public readonly readWriteService: k8s.core.v1.Service;
  public readonly headlessService: k8s.core.v1.Service;
  public readonly credentials: k8s.core.v1.Secret;
  /** The StatefulSet's name and the pods' `app.kubernetes.io/name`: the component's name. */
  public readonly appName: string;
  /** Stable DNS names of the pods, in ordinal order: `<name>-0.<name>-headless.<ns>.svc.cluster.local`. */
  public readonly podHosts: string[];
  public readonly podNames: string[];
  public readonly readWriteHost: string;
  /** `<name>-rw`: the Service failover re-points. */
  public readonly readWriteServiceName: string;
  /** `<name>-config`: holds `primary-node`, the pods' record of the primary. */
  public readonly configMapName: string;
  /** The pod that is primary (`primaryPod`, default pod -0). */
  public readonly primaryPod: string;
  /** The first other pod: the synchronous standby, and the contract's `standby` (undefined with one replica). */
  public readonly standbyPod?: string;
  /** The slot the standby pod streams through (`<name>_<i>`, `-` as `_`; `<name>_1` by default); it exists once there are two replicas. */
  public readonly replicationSlot: string;

  constructor(name: string, args: KubernetesTimescaleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:Timescale", requireObjectName(name), {}, opts);
    const childOpts = { parent: this };
    this.appName = name;
    const spec = normalizeArgs();
    const headlessName = `${name}-headless`;
    const labels = appLabels(name, "database");
    this.podNames = Array.from({ length: spec.replicas }, (_, i) => `${name}-${i}`);
    this.podHosts = this.podNames.map((pod) => `${pod}.${clusterHost(headlessName, args.site)}`);
    this.readWriteHost = clusterHost(`${name}-rw`, args.site);
    this.readWriteServiceName = `${name}-rw`;
    this.configMapName = `${name}-config`;
    this.primaryPod = spec.primaryPod;
    this.standbyPod = this.podNames.find((pod) => pod !== spec.primaryPod);
    this.replicationSlot = slotOf(this.standbyPod ? ordinalOf(this.standbyPod) : 1);

    this.credentials = createCredentials();
    const repositorySecret = createRepositorySecret();
    const files = createConfigFiles();
    this.headlessService = createHeadlessService();
    this.readWriteService = createReadWriteService();
    this.statefulSet = createStatefulSet(this.credentials, repositorySecret, files, this.headlessService);
    this.registerOutputs({ statefulSet: this.statefulSet.metadata.name, readWriteHost: this.readWriteHost });

    function normalizeArgs() {
      return {
        ...args,
        ...timescaleDefaults(args),
        exporterImage: args.exporterImage ?? PG_EXPORTER_IMAGE,
        storageSize: args.storageSize ?? "100Gi",
        replicas: args.replicas ?? 2,
        clientNetwork: args.clientNetwork ?? "10.0.0.0/8",
        bootstrap: args.bootstrap ?? "ordinal",
        primaryPod: checkedPrimaryPod(args.primaryPod ?? `${name}-0`, args.replicas ?? 2),
      };
    }

    function checkedPrimaryPod(pod: string, replicas: number): string {
      const ordinal = pod.startsWith(`${name}-`) ? Number(pod.slice(name.length + 1)) : NaN;
      if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= replicas) throw new Error(`${name}: primaryPod ${pod} is not one of its ${replicas} pods (${name}-0 … ${name}-${replicas - 1})`);
      return pod;
    }

    function ordinalOf(pod: string): number {
      return Number(pod.slice(name.length + 1));
    }

    function podNamesOf(): string[] {
      return Array.from({ length: spec.replicas }, (_, i) => `${name}-${i}`);
    }

    /** The start script names a standby's slot after its pod, `-` → `_` (slot names allow no `-`). */
    function slotOf(ordinal: number): string {
      return `${name.replaceAll("-", "_")}_${ordinal}`;
    }

    function createCredentials(): k8s.core.v1.Secret {
      return new k8s.core.v1.Secret(
        `${name}-credentials`,
        {
          metadata: { name: `${name}-credentials`, namespace: args.site.namespace, labels },
          stringData: { "db-password": pulumi.secret(spec.dbPassword), "replication-password": pulumi.secret(spec.replicationPassword) },
        },
        childOpts,
      );
    }

    function createRepositorySecret(): k8s.core.v1.Secret {
      // pgbackrest.conf holds the repository keys: a Secret, not a ConfigMap.
      const conf = pulumi.output(spec.repository).apply((repo) => pgbackrestNodeConf({ stanza: spec.stanza, repo, retention: spec.retention }));
      return new k8s.core.v1.Secret(
        `${name}-pgbackrest`,
        { metadata: { name: `${name}-pgbackrest`, namespace: args.site.namespace, labels }, stringData: { "pgbackrest.conf": pulumi.secret(conf) } },
        childOpts,
      );
    }

    function createConfigFiles(): k8s.core.v1.ConfigMap {
      // Slots the initdb'ing primary creates, one per other pod; after a failover the start script creates what is missing.
      const standbySlots = spec.bootstrap === "ordinal" ? podNamesOf().filter((pod) => pod !== spec.primaryPod).map((pod) => slotOf(ordinalOf(pod))) : [];
      const scriptOptions = {
        dbName: spec.dbName,
        dbUser: spec.dbUser,
        replicationUser: spec.replicationUser,
        stanza: spec.stanza,
        standbySlots,
        recordedPrimaryFile: PG_PATHS.primaryNodeFile,
      };
      const synchronous = spec.bootstrap === "ordinal" && spec.replicas > 1 && spec.replicationMode === "sync";
      const synchronousStandby = podNamesOf().find((pod) => pod !== spec.primaryPod);
      return new k8s.core.v1.ConfigMap(
        `${name}-config`,
        {
          metadata: {
            name: `${name}-config`,
            namespace: args.site.namespace,
            labels,
            // What the stack's config says; `demote` moves the data key first, so the runbooks tell the two apart.
            annotations: { [DATABASE_CONFIG_MAP.stackPrimaryNode]: spec.primaryPod },
          },
          data: {
            "postgresql.conf": timescaleNodeConf({
              clientNetwork: spec.clientNetwork,
              replicationUser: spec.replicationUser,
              synchronousStandby: synchronous ? synchronousStandby : undefined,
              stanza: spec.stanza,
              clusterName: name,
            }),
            "pg_hba.conf": timescaleHba({ clientNetwork: spec.clientNetwork, replicationUser: spec.replicationUser }),
            "start-node.sh": nodeStartScript(scriptOptions),
            "init-primary.sh": primaryInitScript(scriptOptions),
            // The start script's record of the primary (PG_PATHS.primaryNodeFile); failover rewrites it.
            [DATABASE_CONFIG_MAP.primaryNode]: spec.primaryPod,
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
            selector: selectorLabels(name),
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
          metadata: { name: `${name}-rw`, namespace: args.site.namespace, labels },
          spec: {
            type: "ClusterIP",
            // Failover (I5) re-points this selector at the promoted pod and records it in tradeops:primaryNode, so deploys keep it.
            selector: { ...selectorLabels(name), "statefulset.kubernetes.io/pod-name": spec.primaryPod },
            ports: [{ name: "postgres", port: PG_PORT, targetPort: PG_PORT }],
          },
        },
        childOpts,
      );
    }

    function createStatefulSet(credentials: k8s.core.v1.Secret, repository: k8s.core.v1.Secret, files: k8s.core.v1.ConfigMap, headless: k8s.core.v1.Service): k8s.apps.v1.StatefulSet {
      const pgReady = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", String(PG_PORT), "-U", "postgres"];
      const env: k8s.types.input.core.v1.EnvVar[] = [
        { name: "TRADEOPS_BOOTSTRAP", value: spec.bootstrap },
        { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "HEADLESS_SERVICE", value: clusterHost(headlessName, args.site) },
        { name: "PGDATA", value: PG_PATHS.dataDir },
        { name: "POSTGRES_PASSWORD_FILE", value: PG_SECRET_FILES.dbPassword },
        ...(spec.primaryHost ? [{ name: "PRIMARY_HOST", value: spec.primaryHost }] : []),
        ...(spec.slotName ? [{ name: "SLOT_NAME", value: spec.slotName }] : []),
      ];
      return new k8s.apps.v1.StatefulSet(
        name,
        {
          metadata: { name, namespace: args.site.namespace, labels },
          spec: {
            serviceName: headless.metadata.name,
            replicas: spec.replicas,
            podManagementPolicy: "OrderedReady",
            updateStrategy: { type: "RollingUpdate" },
            selector: { matchLabels: selectorLabels(name) },
            template: {
              metadata: { labels },
              spec: {
                securityContext: { runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, runAsNonRoot: true },
                terminationGracePeriodSeconds: 60,
                containers: [
                  {
                    name: "postgres",
                    image: spec.image,
                    command: ["/bin/bash", PG_PATHS.startScript],
                    env,
                    ports: [{ name: "postgres", containerPort: PG_PORT }],
                    resources: resourcesFor(spec.limits),
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
                    image: spec.exporterImage,
                    env: [
                      { name: "DATA_SOURCE_URI", value: `127.0.0.1:${PG_PORT}/${spec.dbName}?sslmode=disable` },
                      { name: "DATA_SOURCE_USER", value: spec.dbUser },
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
            volumeClaimTemplates: [dataVolumeClaim(labels, spec.storageSize, spec.storageClass)],
          },
        },
        childOpts,
      );
    }
  }
}
