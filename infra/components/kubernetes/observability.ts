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
  grafanaDatasourceYml,
  prometheusFiles,
  type AlertReceivers,
} from "../rendered-files.ts";
import { appLabels, clusterHost, resourcesFor, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface KubernetesObservabilityArgs {
  site: KubernetesSite;
  images: { prometheus: string; alertmanager: string; grafana: string };
  resources: Pick<Resources, "prometheus" | "alertmanager" | "grafana">;
  /** `host:port` of the API Service. */
  apiTarget: string;
  /** `host` of each database pod; their exporter sidecars are scraped. */
  databaseHosts: string[];
  grafanaAdminPassword: pulumi.Input<string>;
  receivers: pulumi.Input<AlertReceivers>;
  /** @default "50Gi" */
  prometheusStorage?: string;
  storageClass?: string;
}

export const PROMETHEUS_NAME = "prometheus";

export class KubernetesObservability extends pulumi.ComponentResource {
  public readonly prometheus: k8s.apps.v1.Deployment;
  public readonly alertmanager: k8s.apps.v1.Deployment;
  public readonly grafana: k8s.apps.v1.Deployment;
  public readonly prometheusConfig: k8s.core.v1.ConfigMap;
  public readonly alertmanagerConfig: k8s.core.v1.Secret;

  constructor(name: string, args: KubernetesObservabilityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:Observability", name, {}, opts);
    const childOpts = { parent: this, provider: args.site.provider };
    const ns = args.site.namespace;

    this.alertmanagerConfig = createAlertmanagerConfig();
    this.alertmanager = deploy("alertmanager", {
      image: args.images.alertmanager,
      limits: args.resources.alertmanager,
      port: ALERTMANAGER_PORT,
      args: ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
      readyPath: "/-/ready",
      mounts: [{ name: "config", mountPath: "/etc/alertmanager", readOnly: true }, { name: "data", mountPath: "/alertmanager" }],
      volumes: [{ name: "config", secret: { secretName: this.alertmanagerConfig.metadata.name } }, { name: "data", emptyDir: {} }],
    });
    this.prometheusConfig = createPrometheusConfig();
    const prometheusData = createPrometheusVolume();
    this.prometheus = deploy(PROMETHEUS_NAME, {
      image: args.images.prometheus,
      limits: args.resources.prometheus,
      port: PROMETHEUS_PORT,
      args: [`--config.file=${PROMETHEUS_FILES.config}`, "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=15d"],
      readyPath: "/-/ready",
      mounts: [{ name: "config", mountPath: "/etc/prometheus", readOnly: true }, { name: "data", mountPath: "/prometheus" }],
      volumes: [{ name: "config", configMap: { name: this.prometheusConfig.metadata.name } }, { name: "data", persistentVolumeClaim: { claimName: prometheusData.metadata.name } }],
      // One pod owns the ReadWriteOnce volume: replace, don't surge.
      recreate: true,
      fsGroup: 65534,
    });
    const grafanaFiles = createGrafanaFiles();
    this.grafana = deploy("grafana", {
      image: args.images.grafana,
      limits: args.resources.grafana,
      port: GRAFANA_PORT,
      readyPath: "/api/health",
      env: [
        { name: "GF_SECURITY_ADMIN_USER", value: "admin" },
        { name: "GF_SECURITY_ADMIN_PASSWORD__FILE", value: "/run/secrets/grafana/admin-password" },
        { name: "GF_USERS_ALLOW_SIGN_UP", value: "false" },
      ],
      mounts: [
        { name: "datasources", mountPath: "/etc/grafana/provisioning/datasources", readOnly: true },
        { name: "admin", mountPath: "/run/secrets/grafana", readOnly: true },
      ],
      volumes: [
        { name: "datasources", configMap: { name: grafanaFiles.datasources.metadata.name } },
        { name: "admin", secret: { secretName: grafanaFiles.admin.metadata.name } },
      ],
      fsGroup: 472,
    });
    this.registerOutputs({});

    function createAlertmanagerConfig(): k8s.core.v1.Secret {
      const yml = pulumi.output(args.receivers).apply((receivers) => alertmanagerYml(receivers));
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
            resources: { requests: { storage: args.prometheusStorage ?? "50Gi" } },
          },
        },
        childOpts,
      );
    }

    function createGrafanaFiles() {
      const labels = appLabels("grafana", "monitoring");
      const datasources = new k8s.core.v1.ConfigMap(
        `${name}-grafana-datasources`,
        { metadata: { name: "grafana-datasources", namespace: ns, labels }, data: { "prometheus.yml": grafanaDatasourceYml(`http://${clusterHost(PROMETHEUS_NAME, args.site)}:${PROMETHEUS_PORT}`) } },
        childOpts,
      );
      const admin = new k8s.core.v1.Secret(
        `${name}-grafana-admin`,
        { metadata: { name: "grafana-admin", namespace: ns, labels }, stringData: { "admin-password": pulumi.secret(args.grafanaAdminPassword) } },
        childOpts,
      );
      return { datasources, admin };
    }

    interface DeploySpec {
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

    function deploy(app: string, spec: DeploySpec): k8s.apps.v1.Deployment {
      const labels = appLabels(app, "monitoring");
      const deployment = new k8s.apps.v1.Deployment(
        `${name}-${app}`,
        {
          metadata: { name: app, namespace: ns, labels },
          spec: {
            replicas: 1,
            revisionHistoryLimit: 10,
            strategy: spec.recreate ? { type: "Recreate" } : { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
            selector: { matchLabels: selectorLabels(app) },
            template: {
              metadata: { labels },
              spec: {
                ...(spec.fsGroup ? { securityContext: { fsGroup: spec.fsGroup } } : {}),
                containers: [
                  {
                    name: app,
                    image: spec.image,
                    ...(spec.args ? { args: spec.args } : {}),
                    ...(spec.env ? { env: spec.env } : {}),
                    ports: [{ name: "http", containerPort: spec.port }],
                    resources: resourcesFor(spec.limits),
                    readinessProbe: { httpGet: { path: spec.readyPath, port: spec.port }, periodSeconds: 10 },
                    livenessProbe: { httpGet: { path: spec.readyPath, port: spec.port }, periodSeconds: 20, failureThreshold: 6 },
                    volumeMounts: spec.mounts,
                  },
                ],
                volumes: spec.volumes,
              },
            },
          },
        },
        childOpts,
      );
      new k8s.core.v1.Service(
        `${name}-${app}`,
        { metadata: { name: app, namespace: ns, labels }, spec: { type: "ClusterIP", selector: selectorLabels(app), ports: [{ name: "http", port: spec.port, targetPort: spec.port }] } },
        childOpts,
      );
      return deployment;
    }
  }
}
