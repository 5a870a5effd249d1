/**
 * Stack `dr` under Pulumi mocks: it follows prod through a StackReference, restores a TimescaleDB
 * standby from the replicated repository, keeps the API at pilot light, owns the SECONDARY record,
 * and exports the DR half of the contract.
 */
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, test } from "vitest";
import { StackOutputs, secretValues } from "../../contract/outputs.ts";
import { DR_CONFIG, DR_SECRETS, PROD_OUTPUTS, PROD_SECRETS } from "./pulumi-fixtures.ts";
import { podContainers, runProgram, secretAt, policyViolations, secretLeaks, type ProgramRun } from "./pulumi-harness.ts";

let run: ProgramRun;
const one = (type: string, name: string) => run.one(type, name);

beforeAll(async () => {
  run = await runProgram({
    stack: "dr",
    config: DR_CONFIG,
    secretKeys: Object.keys(DR_SECRETS),
    stackReferences: { "organization/tradeops/prod": { outputs: PROD_OUTPUTS, secretOutputNames: ["database", "redis", "opsApi", "backup"] } },
  });
}, 60_000);

describe("dr stack", () => {
  test("I6: reads the prod stack named in config through a StackReference", () => {
    expect(one("pulumi:pulumi:StackReference", "prod").inputs.name).toBe("organization/tradeops/prod");
  });

  test("the Kubernetes provider targets the DR cluster with a kubeconfig kept secret", () => {
    const provider = one("pulumi:providers:kubernetes", "kubernetes-dr");
    expect(secretAt(provider, "kubeconfig")).toBe(true);
    expect(provider.inputs.context).toBe("dr-cluster");
    const kubernetesResources = run.resources.filter((r) => r.type.startsWith("kubernetes:"));
    expect(kubernetesResources).toHaveLength(25);
    for (const r of kubernetesResources) expect(r.provider, r.name).toContain("kubernetes-dr");
  });

  test("I5/I6: one TimescaleDB standby restored from the replicated pgBackRest repository in the DR region", () => {
    const sts = one("kubernetes:apps/v1:StatefulSet", "timescale").inputs.spec;
    expect(sts.replicas).toBe(1);
    const postgres = sts.template.spec.containers.find((c: { name: string }) => c.name === "postgres");
    expect(postgres.env).toContainEqual({ name: "TRADEOPS_BOOTSTRAP", value: "repository" });
    expect(postgres.env.find((e: { name: string }) => e.name === "PRIMARY_HOST")).toBeUndefined();
    const repo: string = one("kubernetes:core/v1:Secret", "timescale-pgbackrest").inputs.stringData["pgbackrest.conf"];
    expect(repo).toContain("repo1-s3-bucket=acme-tradeops-backups-dr");
    expect(repo).toContain("repo1-s3-region=eu-central-1");
    expect(repo).toContain(`repo1-s3-key=${PROD_OUTPUTS.backup.accessKeyId}`);
    expect(one("kubernetes:core/v1:ConfigMap", "timescale-config").inputs.data["start-node.sh"]).toContain("--type=standby restore");
    // A standby waits for nobody: no synchronous standby of its own.
    expect(one("kubernetes:core/v1:ConfigMap", "timescale-config").inputs.data["postgresql.conf"]).toContain("synchronous_standby_names = ''");
  });

  test("the restored database keeps prod's credentials (from the StackReference, still secret)", () => {
    const credentials = one("kubernetes:core/v1:Secret", "timescale-credentials");
    expect(secretAt(credentials, "stringData")).toBe(true);
    expect(credentials.inputs.stringData["db-password"]).toBe(PROD_SECRETS.dbPassword);
    expect(one("kubernetes:core/v1:Secret", "app-secrets").inputs.stringData.OPS_API_TOKEN).toBe(PROD_SECRETS.opsApiToken);
  });

  test("I5 pilot light: the API and worker run 0 replicas until DR activation; probes and history as in prod", () => {
    for (const app of ["api", "worker"]) {
      const spec = one("kubernetes:apps/v1:Deployment", app).inputs.spec;
      expect(spec.replicas, app).toBe(0);
      expect(spec.revisionHistoryLimit).toBeGreaterThanOrEqual(10);
      expect(spec.template.spec.containers[0].readinessProbe.httpGet.path).toBe("/health/ready");
    }
    expect(one("kubernetes:networking.k8s.io/v1:Ingress", "api").inputs.spec.tls[0].hosts).toEqual(["dr-api.trading.example.com", "api.trading.example.com"]);
  });

  test("the DR backup schedules exist but stay suspended until the site is activated", () => {
    for (const job of ["backup-schedule-pg-full-backup", "backup-schedule-redis-snapshot"]) {
      expect(one("kubernetes:batch/v1:CronJob", job).inputs.spec.suspend, job).toBe(true);
    }
  });

  test("NetworkPolicies guard the DR database and Redis too; every container has limits", () => {
    expect(one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "data-access-database").inputs.spec.podSelector).toEqual({ matchLabels: { "app.kubernetes.io/name": "timescale" } });
    const workloads = [...run.byType("kubernetes:apps/v1:Deployment"), ...run.byType("kubernetes:apps/v1:StatefulSet"), ...run.byType("kubernetes:batch/v1:CronJob")];
    expect(workloads).toHaveLength(6);
    for (const w of workloads) {
      expect(podContainers(w).length, w.name).toBeGreaterThan(0);
      for (const c of podContainers(w)) expect(c.resources?.limits?.cpu && c.resources?.limits?.memory, `${w.name}/${c.name}`).toBeTruthy();
    }
  });

  test("I5/I6: the SECONDARY failover record (same zone and name as prod's PRIMARY) points at the DR load balancer", () => {
    const record = one("aws:route53/record:Record", "api-secondary").inputs;
    expect(record).toMatchObject({
      zoneId: PROD_OUTPUTS.dr.dns.zoneId,
      name: PROD_OUTPUTS.dr.dns.recordName,
      type: "CNAME",
      setIdentifier: "secondary",
      failoverRoutingPolicies: [{ type: "SECONDARY" }],
      records: ["api.elb.mock.amazonaws.com"],
    });
    expect(record.healthCheckId).toBeUndefined();
    expect(one("pulumi:providers:aws", "aws-dr").inputs.region).toBe("eu-central-1");
  });

  test("every resource's parent is its component", () => {
    expect(run.resources.length).toBeGreaterThan(0);
    for (const r of run.resources) {
      if (r.type.startsWith("tradeops:") || r.type.startsWith("pulumi:") || r.type === "kubernetes:core/v1:Namespace") expect(r.parent, r.name).toBe("");
      else {
        expect(r.parent, `${r.type} ${r.name}`).toMatch(/^tradeops:(kubernetes|aws):/);
        // Its own component, not a sibling: children are named after their component.
        expect(r.name.startsWith(r.parent.split(" ")[1]!), `${r.name} under ${r.parent}`).toBe(true);
      }
    }
  });

  test("S2: no secret (its own or prod's) appears in any input outside a Pulumi secret", () => {
    expect(secretLeaks(run, { ...DR_SECRETS, ...PROD_SECRETS, writer: PROD_OUTPUTS.backup.secretAccessKey })).toEqual([]);
  });

  test("exports the DR half of the contract: its own site, standby node, DNS pair and prod's credentials as secrets", async () => {
    const outputs = StackOutputs.parse(run.outputs);
    expect(outputs.stack).toBe("dr");
    expect(outputs.platform).toEqual({ kind: "kubernetes", namespace: "tradeops-dr", context: "dr-cluster", deployments: { api: "api", worker: "worker" }, statefulSets: { database: "timescale", redis: "redis" }, services: { database: "timescale-rw" }, configMaps: { database: "timescale-config" } });
    expect(outputs.database.primary).toEqual({ name: "timescale-0", host: "timescale-0.timescale-headless.tradeops-dr.svc.cluster.local", port: 5432, role: "standby", dataDir: "/home/postgres/pgdata/data" });
    expect(outputs.backup).toMatchObject({ bucket: "acme-tradeops-backups-dr", region: "eu-central-1", endpoint: "s3.eu-central-1.amazonaws.com" });
    expect(outputs.dr).toEqual({
      name: "dr",
      region: "eu-central-1",
      opsApi: { url: "https://dr-api.trading.example.com", token: PROD_SECRETS.opsApiToken },
      database: outputs.database.primary,
      traffic: outputs.database.traffic,
      app: { kind: "kubernetes", namespace: "tradeops-dr", context: "dr-cluster", deployments: [{ name: "api", replicas: 3 }, { name: "worker", replicas: 1 }] },
      maxLagSeconds: 300,
      dns: { ...PROD_OUTPUTS.dr.dns, drTarget: "api.elb.mock.amazonaws.com" },
    });
    // #8: its lock is in its own (DR) bucket; it runs no Prometheus, so exports no monitoring.
    expect(outputs.lock).toEqual({ kind: "s3", key: "locks/pgbackrest/trading.json" });
    expect(outputs.monitoring).toBeUndefined();
    expect(outputs.database.homePrimary).toBe("timescale-0");
    for (const secret of [run.exports.database.password, run.exports.redis.password, run.exports.opsApi.token, run.exports.backup.secretAccessKey]) {
      expect(await pulumi.isSecret(secret)).toBe(true);
    }
  });

  test("I5: exports where `dr activate` takes the site: its read-write endpoint and the Deployments' active replica counts", () => {
    const outputs = StackOutputs.parse(run.outputs);
    expect(outputs.dr?.traffic).toEqual({ host: "timescale-rw.tradeops-dr.svc.cluster.local", port: 5432 });
    // The names are the Deployments the stack declares; the counts come from tradeops:drActiveApiReplicas / drActiveWorkerReplicas.
    const deployments = run.byType("kubernetes:apps/v1:Deployment").map((d) => d.inputs.metadata.name);
    expect(outputs.dr?.app).toEqual({ kind: "kubernetes", namespace: "tradeops-dr", context: "dr-cluster", deployments: [{ name: "api", replicas: 3 }, { name: "worker", replicas: 1 }] });
    if (outputs.dr?.app?.kind !== "kubernetes") throw new Error("expected a kubernetes dr.app");
    for (const { name } of outputs.dr.app.deployments) expect(deployments).toContain(name);
    // Pilot light is what the stack declares; the active counts are only exported.
    for (const name of ["api", "worker"]) expect(one("kubernetes:apps/v1:Deployment", name).inputs.spec.replicas, name).toBe(0);
  });

  test("I5/I6: exports both targets of the DNS pair: prod's PRIMARY target (through the StackReference) and its own SECONDARY one, with the TTL", () => {
    const outputs = StackOutputs.parse(run.outputs);
    const secondary = one("aws:route53/record:Record", "api-secondary").inputs;
    expect(outputs.dr?.dns).toEqual({
      zoneId: PROD_OUTPUTS.dr.dns.zoneId,
      recordName: PROD_OUTPUTS.dr.dns.recordName,
      healthCheckId: PROD_OUTPUTS.dr.dns.healthCheckId,
      primaryTarget: PROD_OUTPUTS.dr.dns.primaryTarget,
      drTarget: secondary.records[0],
      ttl: 60,
    });
    expect(secondary.ttl).toBe(60);
  });

  test("I6: exports the replication role its standby streams as (user, and its own configured password as a Pulumi secret)", async () => {
    const outputs = StackOutputs.parse(run.outputs);
    expect(outputs.database.replication).toEqual({ mode: "async", slot: "timescale_dr", user: "replicator", password: DR_SECRETS.replicationPassword, maxLagBytes: 16 * 1024 * 1024 });
    expect(await pulumi.isSecret(run.exports.database.replication.password)).toBe(true);
    expect(secretValues(outputs)).toContain(DR_SECRETS.replicationPassword);
  });

  test("the stack passes every policy of the policy pack", async () => {
    expect(await policyViolations(run)).toEqual([]);
  });

  test("resource graph snapshot", async () => {
    expect(run.resources).toHaveLength(38);
    await expect(run.graph()).toMatchFileSnapshot("__snapshots__/dr.graph.txt");
  });
});

describe("dr stack following a prod that exports no PRIMARY target yet", () => {
  let older: ProgramRun;
  beforeAll(async () => {
    // A prod deployed before it exported `dr.dns.primaryTarget`/`ttl` (dr updated first).
    const { primaryTarget: _target, ttl: _ttl, ...dns } = PROD_OUTPUTS.dr.dns;
    older = await runProgram({
      stack: "dr",
      config: DR_CONFIG,
      secretKeys: Object.keys(DR_SECRETS),
      stackReferences: { "organization/tradeops/prod": { outputs: { ...PROD_OUTPUTS, dr: { name: "dr", region: "eu-central-1", dns } }, secretOutputNames: ["database", "redis", "opsApi", "backup"] } },
    });
  }, 60_000);

  test("I5: dr.dns leaves primaryTarget out (the contract allows it) and takes the TTL its own record declares", () => {
    expect(StackOutputs.parse(older.outputs).dr?.dns).toEqual({
      zoneId: PROD_OUTPUTS.dr.dns.zoneId,
      recordName: PROD_OUTPUTS.dr.dns.recordName,
      healthCheckId: PROD_OUTPUTS.dr.dns.healthCheckId,
      drTarget: "api.elb.mock.amazonaws.com",
      ttl: 60,
    });
  });
});
