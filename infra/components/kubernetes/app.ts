/**
 * The trading API or worker on Kubernetes: a Deployment that rolls one pod at a time and keeps ten
 * revisions for `rollout undo` (I4, Z7), liveness on `/health`, readiness on `/health/ready` (Z1),
 * limits (Z7), a PodDisruptionBudget, and — for the API — a Service and a TLS-only Ingress (S2).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { DB_CLIENT_LABEL, REDIS_CLIENT_LABEL, appLabels, clusterHost, fromSecret, requireObjectName, resourcesFor, selectorLabels, type KubernetesSite } from "./pod-defaults.ts";

export interface KubernetesAppArgs {
  /** The namespace; the cluster is the provider in `opts`. */
  site: KubernetesSite;
  /** @example "ghcr.io/acme/trading-api:1.4.2" */
  image: string;
  /**
   * Pods; 0 is allowed (DR pilot light, I5). With 2 or more a node drain always leaves one serving.
   * @default 2
   * @example 0
   */
  replicas?: number;
  /**
   * Z7: the API gets 2 CPU / 2 GiB (requests are a quarter).
   * @default { cpu: "2", memory: "2Gi" }
   * @example { cpu: "1", memory: "1Gi" }
   */
  limits?: WorkloadLimits;
  /**
   * Port serving `/health`, `/health/ready` and `/metrics`.
   * @default 8080
   */
  port?: number;
  /**
   * Plain settings.
   * @default {}
   * @example { DATABASE_HOST: "timescale-rw.tradeops.svc.cluster.local" }
   */
  env?: Record<string, pulumi.Input<string>>;
  /**
   * Env name → key in `secretName`.
   * @default {}
   * @example { DATABASE_PASSWORD: "DATABASE_PASSWORD" }
   */
  secretEnv?: Record<string, string>;
  /** The Secret `secretEnv` reads; required when `secretEnv` names a key. @example "app-secrets" */
  secretName?: pulumi.Input<string>;
  /**
   * Serve the API over HTTPS for these host names (the site's own name and the failover name apps
   * resolve) with this TLS Secret.
   * @default unset: no Service/Ingress (the worker)
   * @example { hostnames: ["prod-api.trading.example.com"], tlsSecretName: "api-tls", className: "nginx" }
   */
  ingress?: { hostnames: pulumi.Input<string>[]; tlsSecretName: string; className: string };
  /**
   * Deployment fields passed through as given (pulumi-eks style).
   * @example { minReadySeconds: 30 }
   */
  deploymentSpec?: Partial<Omit<k8s.types.input.apps.v1.DeploymentSpec, "selector" | "template" | "replicas">>;
}

/**
 * Object names derive from the component's name: Deployment, PodDisruptionBudget, Service, Ingress,
 * container and the pods' `app.kubernetes.io/name` are all `<name>`.
 */
export class KubernetesApp extends pulumi.ComponentResource {
  public readonly deployment: k8s.apps.v1.Deployment;
  public readonly disruptionBudget: k8s.policy.v1.PodDisruptionBudget;
  public readonly service?: k8s.core.v1.Service;
  public readonly ingress?: k8s.networking.v1.Ingress;
  /** The load balancer host name the Ingress controller assigned (the failover record's target). */
  public readonly loadBalancerHostname?: pulumi.Output<string>;
  /** The Deployment's name and the pods' `app.kubernetes.io/name`: the component's name. */
  public readonly appName: string;
  public readonly internalHost: string;

  constructor(name: string, args: KubernetesAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:App", requireObjectName(name), {}, opts);
    const childOpts = { parent: this };
    this.appName = name;
    const spec = normalizeArgs();
    const labels = { ...appLabels(name, "app"), [DB_CLIENT_LABEL]: "true", [REDIS_CLIENT_LABEL]: "true" };
    this.internalHost = clusterHost(name, args.site);

    this.deployment = createDeployment();
    this.disruptionBudget = createDisruptionBudget();
    if (args.ingress) {
      this.service = createService();
      this.ingress = createIngress(args.ingress, this.service);
      this.loadBalancerHostname = this.ingress.status.apply((status) => status?.loadBalancer?.ingress?.[0]?.hostname ?? status?.loadBalancer?.ingress?.[0]?.ip ?? "");
    }
    this.registerOutputs({ deployment: this.deployment.metadata.name });

    function normalizeArgs() {
      return {
        ...args,
        replicas: args.replicas ?? 2,
        limits: args.limits ?? { cpu: "2", memory: "2Gi" },
        port: args.port ?? 8080,
        env: args.env ?? {},
        secretEnv: args.secretEnv ?? {},
      };
    }

    function secretEnvVars(): k8s.types.input.core.v1.EnvVar[] {
      const entries = Object.entries(spec.secretEnv);
      const secretName = args.secretName;
      if (entries.length === 0) return [];
      if (secretName === undefined) throw new Error(`${name}: secretEnv needs secretName (the Secret holding its keys)`);
      return entries.map(([envName, key]) => fromSecret(envName, secretName, key));
    }

    function createDeployment(): k8s.apps.v1.Deployment {
      const env: k8s.types.input.core.v1.EnvVar[] = [
        ...Object.entries(spec.env).map(([envName, value]) => ({ name: envName, value })),
        ...secretEnvVars(),
      ];
      return new k8s.apps.v1.Deployment(
        name,
        {
          metadata: { name, namespace: args.site.namespace, labels },
          spec: {
            replicas: spec.replicas,
            // I4/Z7: `kubectl rollout undo --to-revision` needs the old ReplicaSets.
            revisionHistoryLimit: 10,
            // Z7: one new pod at a time, never below the desired count; a stuck rollout fails after 5 min.
            strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
            minReadySeconds: 10,
            progressDeadlineSeconds: 300,
            ...args.deploymentSpec,
            selector: { matchLabels: selectorLabels(name) },
            template: {
              metadata: { labels },
              spec: {
                // Z4: SIGTERM, refuse new work, drain, close websockets — 30 s cap, plus headroom.
                terminationGracePeriodSeconds: 45,
                securityContext: { runAsNonRoot: true },
                containers: [
                  {
                    name,
                    image: args.image,
                    env,
                    ports: [{ name: "http", containerPort: spec.port }],
                    resources: resourcesFor(spec.limits),
                    livenessProbe: { httpGet: { path: "/health", port: spec.port }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
                    readinessProbe: { httpGet: { path: "/health/ready", port: spec.port }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
                    startupProbe: { httpGet: { path: "/health", port: spec.port }, periodSeconds: 5, failureThreshold: 24 },
                  },
                ],
              },
            },
          },
        },
        childOpts,
      );
    }

    function createDisruptionBudget(): k8s.policy.v1.PodDisruptionBudget {
      return new k8s.policy.v1.PodDisruptionBudget(
        name,
        {
          metadata: { name, namespace: args.site.namespace, labels },
          // Node drains take one pod at a time: with 2+ API pods one always serves.
          spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(name) } },
        },
        childOpts,
      );
    }

    function createService(): k8s.core.v1.Service {
      return new k8s.core.v1.Service(
        name,
        {
          metadata: { name, namespace: args.site.namespace, labels },
          spec: { type: "ClusterIP", selector: selectorLabels(name), ports: [{ name: "http", port: spec.port, targetPort: spec.port }] },
        },
        childOpts,
      );
    }

    function createIngress(ingress: NonNullable<KubernetesAppArgs["ingress"]>, service: k8s.core.v1.Service): k8s.networking.v1.Ingress {
      return new k8s.networking.v1.Ingress(
        name,
        {
          metadata: {
            name,
            namespace: args.site.namespace,
            labels,
            // S2/T2: HTTPS only; websockets live for minutes, the controller's default 60 s would cut them.
            annotations: {
              "nginx.ingress.kubernetes.io/ssl-redirect": "true",
              "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
              "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
              "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
            },
          },
          spec: {
            ingressClassName: ingress.className,
            tls: [{ hosts: ingress.hostnames, secretName: ingress.tlsSecretName }],
            rules: ingress.hostnames.map((host) => ({
              host,
              http: { paths: [{ path: "/", pathType: "Prefix", backend: { service: { name: service.metadata.name, port: { number: spec.port } } } }] },
            })),
          },
        },
        childOpts,
      );
    }
  }
}
