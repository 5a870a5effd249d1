/**
 * Components on their own under Pulumi mocks (#6): Kubernetes object names come from the
 * component's name, so two instances in one namespace never collide; a component declared with
 * only its required args gets the defaults its Args document; the provider given in `opts` reaches
 * every child.
 */
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import { beforeAll, describe, expect, test } from "vitest";
import { BackupBucket } from "../../infra/components/aws/backup-bucket.ts";
import { KubernetesApp } from "../../infra/components/kubernetes/app.ts";
import { KubernetesRedis } from "../../infra/components/kubernetes/redis.ts";
import { KubernetesTimescale } from "../../infra/components/kubernetes/timescale.ts";
import { podContainers, runProgram, type MockedResource, type ProgramRun } from "./pulumi-harness.ts";

const K = {
  statefulSet: "kubernetes:apps/v1:StatefulSet",
  deployment: "kubernetes:apps/v1:Deployment",
  service: "kubernetes:core/v1:Service",
  secret: "kubernetes:core/v1:Secret",
  configMap: "kubernetes:core/v1:ConfigMap",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
};
const SITE = { namespace: "markets", namespaceName: "markets" };
const REPOSITORY = { endpoint: "s3.eu-west-1.amazonaws.com", bucket: "acme-backups", region: "eu-west-1", path: "/pgbackrest", key: "AKIAEXAMPLE", keySecret: "repo-Secret-1234" };

/** Each component with only its required args; two of each Kubernetes kind in one namespace. */
function componentsProgram() {
  const onCluster = { provider: new k8s.Provider("cluster", {}) };
  for (const name of ["ticks-db", "orders-db"]) {
    new KubernetesTimescale(name, { site: SITE, dbPassword: `${name}-Secret-db`, replicationPassword: `${name}-Secret-repl`, repository: REPOSITORY }, onCluster);
  }
  for (const name of ["quotes-cache", "session-cache"]) new KubernetesRedis(name, { site: SITE, password: `${name}-Secret` }, onCluster);
  for (const name of ["pricer", "hedger"]) new KubernetesApp(name, { site: SITE, image: `ghcr.io/acme/${name}:1.0.0` }, onCluster);
  new BackupBucket("archive", { bucketName: "acme-archive" }, { provider: new aws.Provider("aws-archive", { region: "eu-west-1" }) });
  return {};
}

let run: ProgramRun;
const one = (type: string, name: string) => run.one(type, name).inputs;
const kubernetesObjects = () => run.resources.filter((r) => r.type.startsWith("kubernetes:"));
const container = (workload: MockedResource, name: string) => podContainers(workload).find((c) => c.name === name)!;
const volume = (workload: MockedResource, name: string) => workload.inputs.spec.template.spec.volumes.find((v: { name: string }) => v.name === name);

beforeAll(async () => {
  run = await runProgram({ stack: "components", config: {}, program: componentsProgram });
}, 60_000);

describe("#6: Kubernetes object names come from the component's name", () => {
  test("two TimescaleDB clusters, two Redis and two apps in one namespace declare no object name twice", () => {
    const names = kubernetesObjects().map((r) => `${r.type} ${r.inputs.metadata.namespace}/${r.inputs.metadata.name}`);
    expect(names.length).toBeGreaterThan(20);
    expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
  });

  test("a TimescaleDB cluster's StatefulSet, Services, Secrets and ConfigMap are <name>, <name>-headless, -rw, -credentials, -pgbackrest, -config", () => {
    const sts = run.one(K.statefulSet, "orders-db");
    expect(sts.inputs.metadata.name).toBe("orders-db");
    expect(sts.inputs.spec.serviceName).toBe("orders-db-headless");
    expect(sts.inputs.spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "orders-db" });
    expect(sts.inputs.spec.template.metadata.labels["app.kubernetes.io/name"]).toBe("orders-db");
    expect(volume(sts, "config").configMap.name).toBe("orders-db-config");
    expect(volume(sts, "credentials").secret.secretName).toBe("orders-db-credentials");
    expect(volume(sts, "pgbackrest").secret.secretName).toBe("orders-db-pgbackrest");
    expect(container(sts, "postgres").env).toContainEqual({ name: "HEADLESS_SERVICE", value: "orders-db-headless.markets.svc.cluster.local" });
    expect(one(K.service, "orders-db-headless").spec.selector).toEqual({ "app.kubernetes.io/name": "orders-db" });
    expect(one(K.service, "orders-db-rw").metadata.name).toBe("orders-db-rw");
    expect(one(K.service, "orders-db-rw").spec.selector).toEqual({ "app.kubernetes.io/name": "orders-db", "statefulset.kubernetes.io/pod-name": "orders-db-0" });
    for (const secret of ["orders-db-credentials", "orders-db-pgbackrest"]) expect(one(K.secret, secret).metadata.name).toBe(secret);
    expect(one(K.configMap, "orders-db-config").metadata.name).toBe("orders-db-config");
  });

  test("I5: the standby's slot and the synchronous standby follow the name (orders-db-1 streams through orders_db_1)", () => {
    const files = one(K.configMap, "orders-db-config").data;
    expect(files["postgresql.conf"]).toContain(`synchronous_standby_names = 'FIRST 1 ("orders-db-1")'`);
    expect(files["postgresql.conf"]).toContain("cluster_name = 'orders-db'");
    expect(files["init-primary.sh"]).toContain("pg_create_physical_replication_slot('orders_db_1')");
    expect(files["init-primary.sh"]).not.toContain("ticks_db");
  });

  test("Redis and app objects are named after their component, and their selectors pick only their own pods", () => {
    const redis = run.one(K.statefulSet, "quotes-cache");
    expect(redis.inputs.metadata.name).toBe("quotes-cache");
    expect(redis.inputs.spec.serviceName).toBe("quotes-cache");
    expect(volume(redis, "config").secret.secretName).toBe("quotes-cache-config");
    expect(one(K.service, "quotes-cache").spec.selector).toEqual({ "app.kubernetes.io/name": "quotes-cache" });
    const app = run.one(K.deployment, "pricer");
    expect(app.inputs.metadata.name).toBe("pricer");
    expect(app.inputs.spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "pricer" });
    expect(podContainers(app).map((c) => c.name)).toEqual(["pricer"]);
    expect(one(K.pdb, "pricer").spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "pricer" });
  });

  test("a name Kubernetes would refuse fails when the component is declared", () => {
    expect(() => new KubernetesRedis("Quotes_Cache", { site: SITE, password: "x" })).toThrow(/must be lowercase letters, digits and -/);
  });
});

describe("#6: a component declared with only its required args gets its documented defaults", () => {
  test("KubernetesTimescale: the HA image with its exporter, 2 pods on 100Gi, 2 CPU / 4Gi, sync standby, 30/7-day retention", () => {
    const sts = run.one(K.statefulSet, "ticks-db");
    expect(sts.inputs.spec.replicas).toBe(2);
    expect(sts.inputs.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("100Gi");
    expect(sts.inputs.spec.volumeClaimTemplates[0].spec.storageClassName).toBeUndefined();
    const postgres = container(sts, "postgres");
    expect(postgres.image).toBe("timescale/timescaledb-ha:pg15");
    expect(postgres.resources.limits).toEqual({ cpu: "2", memory: "4Gi" });
    expect(postgres.env).toContainEqual({ name: "TRADEOPS_BOOTSTRAP", value: "ordinal" });
    expect(container(sts, "exporter").image).toBe("prometheuscommunity/postgres-exporter:v0.15.0");
    expect(container(sts, "exporter").env).toContainEqual({ name: "DATA_SOURCE_USER", value: "tradeops" });
    const files = one(K.configMap, "ticks-db-config").data;
    expect(files["postgresql.conf"]).toContain(`synchronous_standby_names = 'FIRST 1 ("ticks-db-1")'`);
    expect(files["pg_hba.conf"]).toContain("10.0.0.0/8");
    expect(files["init-primary.sh"]).toContain('CREATE DATABASE "trading" OWNER "tradeops"');
    expect(files["init-primary.sh"]).toContain('CREATE ROLE "replicator" LOGIN REPLICATION');
    const pgbackrest: string = one(K.secret, "ticks-db-pgbackrest").stringData["pgbackrest.conf"];
    for (const line of ["[trading]", "repo1-retention-full=30", "repo1-retention-archive=7"]) expect(pgbackrest).toContain(line);
  });

  test("KubernetesRedis: redis:7.2 on 10Gi with 1 CPU / 3Gi, maxmemory 2gb allkeys-lru", () => {
    const sts = run.one(K.statefulSet, "session-cache");
    expect(container(sts, "redis").image).toBe("redis:7.2");
    expect(container(sts, "redis").resources.limits).toEqual({ cpu: "1", memory: "3Gi" });
    expect(sts.inputs.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("10Gi");
    const conf: string = one(K.secret, "session-cache-config").stringData["redis.conf"];
    expect(conf).toContain("maxmemory 2gb");
    expect(conf).toContain("maxmemory-policy allkeys-lru");
  });

  test("KubernetesApp: 2 pods serving on 8080 with 2 CPU / 2Gi, no environment, no Service or Ingress", () => {
    const deployment = run.one(K.deployment, "hedger");
    expect(deployment.inputs.spec.replicas).toBe(2);
    const app = container(deployment, "hedger");
    expect(app.ports).toEqual([{ name: "http", containerPort: 8080 }]);
    expect(app.readinessProbe.httpGet).toEqual({ path: "/health/ready", port: 8080 });
    expect(app.resources.limits).toEqual({ cpu: "2", memory: "2Gi" });
    expect(app.env).toEqual([]);
    expect(run.resources.filter((r) => r.name === "hedger").map((r) => r.type).sort()).toEqual([K.deployment, K.pdb, "tradeops:kubernetes:App"].sort());
  });

  test("I7: BackupBucket: Glacier after 7 days, deleted versions kept 7, Redis snapshots 1 day, models 90", () => {
    const rules: Array<Record<string, any>> = one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "archive").rules;
    const rule = (id: string) => rules.find((r) => r.id === id)!;
    expect(rule("pg-full-backups").transitions).toEqual([{ days: 7, storageClass: "GLACIER_IR" }]);
    expect(rule("pg-wal").noncurrentVersionExpiration).toEqual({ noncurrentDays: 7 });
    expect(rule("redis-snapshots").expiration).toEqual({ days: 1 });
    expect(rule("models").expiration).toEqual({ days: 90 });
  });
});

test("#6: the provider given in a component's opts reaches every child", () => {
  const children = run.resources.filter((r) => !r.type.startsWith("tradeops:") && !r.type.startsWith("pulumi:providers:"));
  expect(children.length).toBeGreaterThan(20);
  for (const child of children) {
    expect(child.provider, `${child.type} ${child.name}`).toContain(child.type.startsWith("aws:") ? "::aws-archive::" : "::cluster::");
  }
});
