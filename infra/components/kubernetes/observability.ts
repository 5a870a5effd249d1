/**
 * Prometheus, Alertmanager and Grafana on Kubernetes (S4, S5, I8). prometheus.yml and the alert
 * rules come from the generator shared with the sandbox and the dev stack; alertmanager.yml holds
 * channel credentials and therefore lives in a Secret.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Resources } from "../../config.ts";
import {
  ALERTMANAGER_PORT,
  GRAFANA_PORT,
  PG_EXPORTER_PORT,
  PROMETHEUS_FILES,
  PROMETHEUS_PORT,
  alertmanagerYml,
  DASHBOARDS_DIR,
  grafanaDashboardFiles,
  grafanaDatasourceYml,
  GRAFANA_DASHBOARD_PROVIDER_DIR,
  prometheusFiles,
  type AlertReceivers,
} from "../rendered-files.ts";
import { observabilityDefaults } from "../workload-defaults.ts";
import { appLabels, clusterHost, resourcesFor, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface KubernetesObservabilityArgs {
  /** The namespace; the cluster is the provider in `opts`. */
  site: KubernetesSite;
  /**
   * @default { prometheus: "prom/prometheus:v2.53.0", alertmanager: "prom/alertmanager:v0.27.0", grafana: "grafana/grafana:11.1.0" }
   * @example { grafana: "grafana/grafana:11.2.0" }
   */
  images?: { prometheus?: string; alertmanager?: string; grafana?: string };
  /**
   * Limits per workload (requests are a quarter, Z7).
   * @default { prometheus: { cpu: "1", memory: "2Gi" }, alertmanager: { cpu: "250m", memory: "256Mi" }, grafana: { cpu: "500m", memory: "512Mi" } }
   * @example { prometheus: { cpu: "2", memory: "8Gi" } }
   */
  resources?: Partial<Pick<Resources, "prometheus" | "alertmanager" | "grafana">>;
  /** `host:port` of the API Service. @example "api.tradeops.svc.cluster.local:8080" */
  apiTarget: string;
  /** `host` of each database pod; their exporter sidecars are scraped. @example ["timescale-0.timescale-headless.tradeops.svc.cluster.local"] */
  databaseHosts: string[];
  grafanaAdminPassword: pulumi.Input<string>;
  /**
   * Alert channels (I8, Z3); credentials inside, so alertmanager.yml is a Secret.
   * @default {}: alerts are grouped and dropped
   * @example { slack: { webhookUrl: "https://hooks.slack.com/services/…" } }
   */
  receivers?: pulumi.Input<AlertReceivers>;
  /** @default "50Gi" */
  prometheusStorage?: string;
  /**
   * @default the cluster's default StorageClass
   * @example "gp3"
   */
  storageClass?: string;
}

export const PROMETHEUS_NAME = "prometheus";

/**
 * Object names are fixed, not derived from the component's name (`prometheus`, `alertmanager`,
 * `grafana` and their `-config`/`-data`/`-datasources`/`-admin` objects, as deployed sites have
 * them): one per namespace.
 */
export class KubernetesObservability extends pulumi.ComponentResource {
  public readonly prometheus: k8s.apps.v1.Deployment;
  public readonly alertmanager: k8s.apps.v1.Deployment;
  public readonly grafana: k8s.apps.v1.Deployment;
  public readonly prometheusConfig: k8s.core.v1.ConfigMap;
  public readonly alertmanagerConfig: k8s.core.v1.Secret;
  /** Prometheus' in-cluster URL (the contract's `monitoring.prometheusUrl`): `http://prometheus.<ns>.svc.cluster.local:9090`. */
  public readonly prometheusUrl: string;
  /** Alertmanager's in-cluster URL: `http://alertmanager.<ns>.svc.cluster.local:9093`. */
  public readonly alertmanagerUrl: string;

  constructor(name: string, args: KubernetesObservabilityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:Observability", name, {}, opts);
    const childOpts = { parent: this };
    const ns = args.site.namespace;
    const spec = normalizeArgs();
    this.prometheusUrl = `http://${clusterHost(PROMETHEUS_NAME, args.site)}:${PROMETHEUS_PORT}`;
    this.alertmanagerUrl = `http://${clusterHost("alertmanager", args.site)}:${ALERTMANAGER_PORT}`;

    this.alertmanagerConfig = createAlertmanagerConfig();
    this.alertmanager = runAlertmanager(this.alertmanagerConfig);
    this.prometheusConfig = createPrometheusConfig();
    this.prometheus = runPrometheus(this.prometheusConfig, createPrometheusVolume());
    this.grafana = runGrafana(createGrafanaFiles());
    this.registerOutputs({});

    function normalizeArgs() {
      return { ...args, ...observabilityDefaults(args), prometheusStorage: args.prometheusStorage ?? "50Gi" };
    }

    function runAlertmanager(config: k8s.core.v1.Secret): k8s.apps.v1.Deployment {
      return deploy("alertmanager", {
        image: spec.images.alertmanager,
        limits: spec.resources.alertmanager,
        port: ALERTMANAGER_PORT,
        args: ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
        readyPath: "/-/ready",
        mounts: [{ name: "config", mountPath: "/etc/alertmanager", readOnly: true }, { name: "data", mountPath: "/alertmanager" }],
        volumes: [{ name: "config", secret: { secretName: config.metadata.name } }, { name: "data", emptyDir: {} }],
      });
    }

    function runPrometheus(config: k8s.core.v1.ConfigMap, data: k8s.core.v1.PersistentVolumeClaim): k8s.apps.v1.Deployment {
      return deploy(PROMETHEUS_NAME, {
        image: spec.images.prometheus,
        limits: spec.resources.prometheus,
        port: PROMETHEUS_PORT,
        args: [`--config.file=${PROMETHEUS_FILES.config}`, "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=15d"],
        readyPath: "/-/ready",
        mounts: [{ name: "config", mountPath: "/etc/prometheus", readOnly: true }, { name: "data", mountPath: "/prometheus" }],
        volumes: [{ name: "config", configMap: { name: config.metadata.name } }, { name: "data", persistentVolumeClaim: { claimName: data.metadata.name } }],
        // One pod owns the ReadWriteOnce volume: replace, don't surge.
        recreate: true,
        fsGroup: 65534,
      });
    }

    function runGrafana(files: { datasources: k8s.core.v1.ConfigMap; admin: k8s.core.v1.Secret }): k8s.apps.v1.Deployment {
      return deploy("grafana", {
        image: spec.images.grafana,
        limits: spec.resources.grafana,
        port: GRAFANA_PORT,
        readyPath: "/api/health",
        env: [
          { name: "GF_SECURITY_ADMIN_USER", value: "admin" },
          { name: "GF_SECURITY_ADMIN_PASSWORD__FILE", value: "/run/secrets/grafana/admin-password" },
          { name: "GF_USERS_ALLOW_SIGN_UP", value: "false" },
        ],
        mounts: [
          { name: "datasources", mountPath: "/etc/grafana/provisioning/datasources", readOnly: true },
          { name: "dashboard-provider", mountPath: GRAFANA_DASHBOARD_PROVIDER_DIR, readOnly: true },
          { name: "dashboards", mountPath: DASHBOARDS_DIR, readOnly: true },
          { name: "admin", mountPath: "/run/secrets/grafana", readOnly: true },
        ],
        // One ConfigMap holds the datasource, the dashboard provider and the dashboards; each mount picks its keys.
        volumes: [
          { name: "datasources", configMap: { name: files.datasources.metadata.name, items: [{ key: "prometheus.yml", path: "prometheus.yml" }] } },
          { name: "dashboard-provider", configMap: { name: files.datasources.metadata.name, items: [{ key: "dashboard-provider.yml", path: "tradeops.yml" }] } },
          { name: "dashboards", configMap: { name: files.datasources.metadata.name, items: Object.keys(grafanaDashboardFiles().dashboards).map((file) => ({ key: file, path: file })) } },
          { name: "admin", secret: { secretName: files.admin.metadata.name } },
        ],
        fsGroup: 472,
      });
    }

    function createAlertmanagerConfig(): k8s.core.v1.Secret {
      const yml = pulumi.output(spec.receivers).apply((receivers) => alertmanagerYml(receivers));
      return new k8s.core.v1.Secret(
        `${name}-alertmanager`,
        { metadata: { name: "alertmanager-config", namespace: ns, labels: appLabels("alertmanager", "monitoring") }, stringData: { "alertmanager.yml": pulumi.secret(yml) } },
        childOpts,
      );
    }

    function createPrometheusConfig(): k8s.core.v1.ConfigMap {
      const files = prometheusFiles({
        apiTarget: args.apiTarget,
        alertmanager: `${clusterHost("alertmanager", args.site)}:${ALERTMANAGER_PORT}`,
        extraTargets: [{ jobName: "postgres", targets: args.databaseHosts.map((host) => `${host}:${PG_EXPORTER_PORT}`) }],
      });
      return new k8s.core.v1.ConfigMap(
        `${name}-prometheus`,
        { metadata: { name: "prometheus-config", namespace: ns, labels: appLabels(PROMETHEUS_NAME, "monitoring") }, data: { "prometheus.yml": files.config, "rules.yml": files.rules } },
        childOpts,
      );
    }

    function createPrometheusVolume(): k8s.core.v1.PersistentVolumeClaim {
      return new k8s.core.v1.PersistentVolumeClaim(
        `${name}-prometheus-data`,
        {
          metadata: { name: "prometheus-data", namespace: ns, labels: appLabels(PROMETHEUS_NAME, "monitoring") },
          spec: {
            accessModes: ["ReadWriteOnce"],
            ...(args.storageClass ? { storageClassName: args.storageClass } : {}),
            resources: { requests: { storage: spec.prometheusStorage } },
          },
        },
        childOpts,
      );
    }

    function createGrafanaFiles() {
      const labels = appLabels("grafana", "monitoring");
      const dashboards = grafanaDashboardFiles();
      const datasources = new k8s.core.v1.ConfigMap(
        `${name}-grafana-datasources`,
        {
          metadata: { name: "grafana-datasources", namespace: ns, labels },
          data: {
            "prometheus.yml": grafanaDatasourceYml(`http://${clusterHost(PROMETHEUS_NAME, args.site)}:${PROMETHEUS_PORT}`),
            "dashboard-provider.yml": dashboards.providerYml,
            ...dashboards.dashboards,
          },
        },
        childOpts,
      );
      const admin = new k8s.core.v1.Secret(
        `${name}-grafana-admin`,
        { metadata: { name: "grafana-admin", namespace: ns, labels }, stringData: { "admin-password": pulumi.secret(args.grafanaAdminPassword) } },
        childOpts,
      );
      return { datasources, admin };
    }

    interface Workload {
      image: string;
      limits: Resources["prometheus"];
      port: number;
      args?: string[];
      env?: k8s.types.input.core.v1.EnvVar[];
      readyPath: string;
      mounts: k8s.types.input.core.v1.VolumeMount[];
      volumes: k8s.types.input.core.v1.Volume[];
      recreate?: boolean;
      fsGroup?: number;
    }

    function deploy(app: string, workload: Workload): k8s.apps.v1.Deployment {
      const labels = appLabels(app, "monitoring");
      const deployment = new k8s.apps.v1.Deployment(
        `${name}-${app}`,
        {
          metadata: { name: app, namespace: ns, labels },
          spec: {
            replicas: 1,
            revisionHistoryLimit: 10,
            strategy: workload.recreate ? { type: "Recreate" } : { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
            selector: { matchLabels: selectorLabels(app) },
            template: {
              metadata: { labels },
              spec: {
                ...(workload.fsGroup ? { securityContext: { fsGroup: workload.fsGroup } } : {}),
                containers: [
                  {
                    name: app,
                    image: workload.image,
                    ...(workload.args ? { args: workload.args } : {}),
                    ...(workload.env ? { env: workload.env } : {}),
                    ports: [{ name: "http", containerPort: workload.port }],
                    resources: resourcesFor(workload.limits),
                    readinessProbe: { httpGet: { path: workload.readyPath, port: workload.port }, periodSeconds: 10 },
                    livenessProbe: { httpGet: { path: workload.readyPath, port: workload.port }, periodSeconds: 20, failureThreshold: 6 },
                    volumeMounts: workload.mounts,
                  },
                ],
                volumes: workload.volumes,
              },
            },
          },
        },
        childOpts,
      );
      new k8s.core.v1.Service(
        `${name}-${app}`,
        { metadata: { name: app, namespace: ns, labels }, spec: { type: "ClusterIP", selector: selectorLabels(app), ports: [{ name: "http", port: workload.port, targetPort: workload.port }] } },
        childOpts,
      );
      return deployment;
    }
  }
}
