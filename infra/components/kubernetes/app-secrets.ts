/**
 * The application's credentials as one Kubernetes Secret, filled only from Pulumi secrets (S2).
 * Pods read them through `secretKeyRef`; the values never appear in a manifest or the environment
 * definition.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { KubernetesSite } from "./pod-defaults.ts";

export interface AppSecretsArgs {
  /** The namespace; the cluster is the provider in `opts`. */
  site: KubernetesSite;
  /**
   * Key → secret value; each leaves as a Pulumi secret whatever it came in as.
   * @example { DATABASE_PASSWORD: config.requireSecret("dbPassword") }
   */
  values: Record<string, pulumi.Input<string>>;
}

/** The Secret is named after the component: `<name>`. */
export class AppSecrets extends pulumi.ComponentResource {
  public readonly secret: k8s.core.v1.Secret;
  public readonly secretName: pulumi.Output<string>;
  public readonly keys: string[];

  constructor(name: string, args: AppSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:kubernetes:AppSecrets", name, {}, opts);
    this.keys = Object.keys(args.values);
    const stringData = Object.fromEntries(Object.entries(args.values).map(([key, value]) => [key, pulumi.secret(value)]));
    this.secret = new k8s.core.v1.Secret(
      name,
      { metadata: { name, namespace: args.site.namespace, labels: { "app.kubernetes.io/part-of": "tradeops" } }, type: "Opaque", stringData },
      { parent: this },
    );
    this.secretName = this.secret.metadata.name;
    this.registerOutputs({ secretName: this.secretName });
  }
}
