/**
 * Prometheus, Alertmanager and Grafana for the dev stack (S4, S5), with prometheus.yml and the
 * alert rules from the generator the sandbox and the Kubernetes stacks share, and a
 * postgres_exporter so S5's LowDatabaseConnections has its metrics.
 */
import * as docker from "@pulumi/docker";
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
import { PG_EXPORTER_IMAGE, observabilityDefaults } from "../workload-defaults.ts";
import { publish, pullImage, serviceContainerArgs, upload, type DockerSite } from "./container-defaults.ts";

export interface DockerObservabilityArgs {
  /** The stack network and port binding; the daemon is the provider in `opts`. */
  site: DockerSite;
  /**
   * @default { prometheus: "prom/prometheus:v2.53.0", alertmanager: "prom/alertmanager:v0.27.0", grafana: "grafana/grafana:11.1.0", pgExporter: "prometheuscommunity/postgres-exporter:v0.15.0" }
   * @example { grafana: "grafana/grafana:11.2.0" }
   */
  images?: { prometheus?: string; alertmanager?: string; grafana?: string; pgExporter?: string };
  /**
   * Limits per container, without swap (Z7).
   * @default { prometheus: { cpu: "1", memory: "2Gi" }, alertmanager: { cpu: "250m", memory: "256Mi" }, grafana: { cpu: "500m", memory: "512Mi" } }
   */
  resources?: Partial<Pick<Resources, "prometheus" | "alertmanager" | "grafana">>;
  /** The API's `/metrics` on the stack network. @example "api:8080" */
  apiTarget: string;
  /** Where the exporter connects (the traffic endpoint, so it follows the primary). @example { host: "traffic", port: 5000, name: "trading", user: "tradeops", password } */
  database: { host: string; port: number; name: string; user: string; password: pulumi.Input<string> };
  grafanaAdminPassword: pulumi.Input<string>;
  /**
   * Alert channels (I8, Z3); credentials inside, so the file is a secret upload.
   * @default {}: alerts are grouped and dropped
   * @example { slack: { webhookUrl: "https://hooks.slack.com/services/…" } }
   */
  receivers?: pulumi.Input<AlertReceivers>;
  /** @example { prometheus: 16407, alertmanager: 16408, grafana: 16409 } */
  hostPorts: { prometheus: number; alertmanager: number; grafana: number };
}

export class DockerObservability extends pulumi.ComponentResource {
  public readonly prometheus: docker.Container;
  public readonly alertmanager: docker.Container;
  public readonly grafana: docker.Container;
  public readonly pgExporter: docker.Container;

  constructor(name: string, args: DockerObservabilityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:docker:Observability", name, {}, opts);
    const childOpts = { parent: this };
    const spec = normalizeArgs();

    this.pgExporter = startPgExporter();
    this.alertmanager = startAlertmanager();
    this.prometheus = startPrometheus();
    this.grafana = startGrafana();
    this.registerOutputs({ prometheus: this.prometheus.name, grafana: this.grafana.name });

    function normalizeArgs() {
      const shared = observabilityDefaults(args);
      return { ...args, ...shared, images: { ...shared.images, pgExporter: args.images?.pgExporter ?? PG_EXPORTER_IMAGE } };
    }

    function startPgExporter(): docker.Container {
      const image = pullImage(`${name}-pg-exporter-image`, spec.images.pgExporter, childOpts);
      const { host, port, name: db, user } = args.database;
      return new docker.Container(
        `${name}-pg-exporter`,
        {
          ...serviceContainerArgs({ site: args.site, role: "pg-exporter", image: image.imageId, limits: { cpu: "250m", memory: "128Mi" } }),
          envs: [`DATA_SOURCE_URI=${host}:${port}/${db}?sslmode=disable`, `DATA_SOURCE_USER=${user}`, "DATA_SOURCE_PASS_FILE=/run/secrets/tradeops/db-password"],
          uploads: [upload("/run/secrets/tradeops/db-password", pulumi.secret(args.database.password), "0644")],
        },
        childOpts,
      );
    }

    function startAlertmanager(): docker.Container {
      const image = pullImage(`${name}-alertmanager-image`, spec.images.alertmanager, childOpts);
      const config = pulumi.secret(pulumi.output(spec.receivers).apply((receivers) => alertmanagerYml(receivers)));
      const data = new docker.Volume(`${name}-alertmanager-data`, { name: `${args.site.namePrefix}-alertmanager-data` }, childOpts);
      return new docker.Container(
        `${name}-alertmanager`,
        {
          ...serviceContainerArgs({ site: args.site, role: "alertmanager", image: image.imageId, limits: spec.resources.alertmanager }),
          command: ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
          uploads: [upload("/etc/alertmanager/alertmanager.yml", config, "0644")],
          volumes: [{ volumeName: data.name, containerPath: "/alertmanager" }],
          ports: [publish(args.site, args.hostPorts.alertmanager, ALERTMANAGER_PORT)],
          healthcheck: { tests: ["CMD", "wget", "-qO-", `http://127.0.0.1:${ALERTMANAGER_PORT}/-/ready`], interval: "15s", timeout: "5s", retries: 4 },
        },
        childOpts,
      );
    }

    function startPrometheus(): docker.Container {
      const image = pullImage(`${name}-prometheus-image`, spec.images.prometheus, childOpts);
      const files = prometheusFiles({
        apiTarget: args.apiTarget,
        alertmanager: `alertmanager:${ALERTMANAGER_PORT}`,
        extraTargets: [{ jobName: "postgres", targets: [`pg-exporter:${PG_EXPORTER_PORT}`] }],
      });
      const data = new docker.Volume(`${name}-prometheus-data`, { name: `${args.site.namePrefix}-prometheus-data` }, childOpts);
      return new docker.Container(
        `${name}-prometheus`,
        {
          ...serviceContainerArgs({ site: args.site, role: "prometheus", image: image.imageId, limits: spec.resources.prometheus }),
          command: [`--config.file=${PROMETHEUS_FILES.config}`, "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=15d"],
          uploads: [upload(PROMETHEUS_FILES.config, files.config), upload(PROMETHEUS_FILES.rules, files.rules)],
          volumes: [{ volumeName: data.name, containerPath: "/prometheus" }],
          ports: [publish(args.site, args.hostPorts.prometheus, PROMETHEUS_PORT)],
          healthcheck: { tests: ["CMD", "wget", "-qO-", `http://127.0.0.1:${PROMETHEUS_PORT}/-/ready`], interval: "15s", timeout: "5s", retries: 4 },
        },
        childOpts,
      );
    }

    function startGrafana(): docker.Container {
      const dashboards = grafanaDashboardFiles();
      const image = pullImage(`${name}-grafana-image`, spec.images.grafana, childOpts);
      const data = new docker.Volume(`${name}-grafana-data`, { name: `${args.site.namePrefix}-grafana-data` }, childOpts);
      return new docker.Container(
        `${name}-grafana`,
        {
          ...serviceContainerArgs({ site: args.site, role: "grafana", image: image.imageId, limits: spec.resources.grafana }),
          // Grafana reads `__FILE` variants of its settings: the admin password stays out of the environment.
          envs: ["GF_SECURITY_ADMIN_USER=admin", "GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/tradeops/grafana-admin-password", "GF_USERS_ALLOW_SIGN_UP=false"],
          uploads: [
            upload("/run/secrets/tradeops/grafana-admin-password", pulumi.secret(args.grafanaAdminPassword), "0644"),
            upload("/etc/grafana/provisioning/datasources/prometheus.yml", grafanaDatasourceYml(`http://prometheus:${PROMETHEUS_PORT}`)),
            upload(`${GRAFANA_DASHBOARD_PROVIDER_DIR}/tradeops.yml`, dashboards.providerYml),
            ...Object.entries(dashboards.dashboards).map(([file, json]) => upload(`${DASHBOARDS_DIR}/${file}`, json)),
          ],
          volumes: [{ volumeName: data.name, containerPath: "/var/lib/grafana" }],
          ports: [publish(args.site, args.hostPorts.grafana, GRAFANA_PORT)],
          healthcheck: { tests: ["CMD", "wget", "-qO-", `http://127.0.0.1:${GRAFANA_PORT}/api/health`], interval: "15s", timeout: "5s", retries: 4 },
        },
        childOpts,
      );
    }
  }
}
