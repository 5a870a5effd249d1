/**
 * Stack `prod` (Kubernetes + AWS) under Pulumi mocks: workloads, probes, limits, NetworkPolicies,
 * Secrets, backup CronJobs, observability, the backup bucket and its replication, the backup
 * writer's IAM policy, the failover DNS — plus parenting, secrets, contract and graph snapshot.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { StackOutputs, secretValues } from "../../contract/outputs.ts";
import { PROD_CONFIG, PROD_OUTPUTS, PROD_SECRETS } from "./pulumi-fixtures.ts";
import { podContainers, runProgram, secretAt, policyViolations, secretLeaks, type ProgramRun } from "./pulumi-harness.ts";

const K = {
  deployment: "kubernetes:apps/v1:Deployment",
  statefulSet: "kubernetes:apps/v1:StatefulSet",
  service: "kubernetes:core/v1:Service",
  secret: "kubernetes:core/v1:Secret",
  configMap: "kubernetes:core/v1:ConfigMap",
  cronJob: "kubernetes:batch/v1:CronJob",
  networkPolicy: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
  ingress: "kubernetes:networking.k8s.io/v1:Ingress",
};

let run: ProgramRun;
const one = (type: string, name: string) => run.one(type, name);
const workloads = () => [...run.byType(K.deployment), ...run.byType(K.statefulSet), ...run.byType(K.cronJob)];

beforeAll(async () => {
  run = await runProgram({ stack: "prod", config: PROD_CONFIG, secretKeys: Object.keys(PROD_SECRETS) });
}, 60_000);

describe("prod stack: TimescaleDB", () => {
  test("a namespace holds every workload", () => {
    expect(one("kubernetes:core/v1:Namespace", "namespace").inputs.metadata.name).toBe("tradeops");
    expect(workloads()).toHaveLength(9);
    for (const workload of workloads()) expect(workload.inputs.metadata.namespace, workload.name).toBe("tradeops");
  });

  test("I5: a 2-pod StatefulSet on 100Gi PVCs with startup, readiness and liveness probes and limits", () => {
    const sts = one(K.statefulSet, "timescale").inputs;
    expect(sts.spec.replicas).toBe(2);
    expect(sts.spec.serviceName).toBe("timescale-headless");
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "100Gi" } } });
    const postgres = sts.spec.template.spec.containers.find((c: { name: string }) => c.name === "postgres");
    expect(postgres.image).toBe("timescale/timescaledb-ha:pg15");
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) expect(postgres[probe].exec.command, probe).toContain("pg_isready");
    expect(postgres.resources).toEqual({ limits: { cpu: "2", memory: "4Gi" }, requests: { cpu: "500m", memory: "1024Mi" } });
    expect(postgres.env).toContainEqual({ name: "TRADEOPS_BOOTSTRAP", value: "ordinal" });
  });

  test("the read-write Service is a ClusterIP on the primary pod only", () => {
    const rw = one(K.service, "timescale-rw").inputs.spec;
    expect(rw.type).toBe("ClusterIP");
    expect(rw.selector).toEqual({ "app.kubernetes.io/name": "timescale", "statefulset.kubernetes.io/pod-name": "timescale-0" });
    expect(rw.ports).toEqual([{ name: "postgres", port: 5432, targetPort: 5432 }]);
  });

  test("I5/I7: postgresql.conf from the shared generator: sync standby timescale-1, WAL archived by pgBackRest", () => {
    const conf = one(K.configMap, "timescale-config").inputs.data["postgresql.conf"];
    expect(conf).toContain(`synchronous_standby_names = 'FIRST 1 ("timescale-1")'`);
    expect(conf).toContain("archive_command = 'pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=trading archive-push %p'");
    expect(one(K.configMap, "timescale-config").inputs.data["init-primary.sh"]).toContain("pg_create_physical_replication_slot('timescale_1')");
  });

  test("I7: pgBackRest keeps full backups 30 days and WAL for 7, self-contained (archive-copy), in the primary bucket", () => {
    const repo = one(K.secret, "timescale-pgbackrest");
    expect(secretAt(repo, "stringData")).toBe(true);
    const conf: string = repo.inputs.stringData["pgbackrest.conf"];
    for (const line of ["repo1-s3-bucket=acme-tradeops-backups", "repo1-s3-endpoint=s3.eu-west-1.amazonaws.com", "repo1-retention-full=30", "repo1-retention-archive=7", "archive-copy=y", "repo1-s3-key=AKIAMOCKBACKUPWRITER"]) {
      expect(conf).toContain(line);
    }
  });
});

describe("prod stack: Redis, API, worker", () => {
  test("S7: Redis is a StatefulSet with a PVC and AOF everysec; its config (with requirepass) is a Secret", () => {
    const sts = one(K.statefulSet, "redis").inputs.spec;
    expect(sts.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("10Gi");
    const conf = one(K.secret, "redis-config");
    expect(secretAt(conf, "stringData")).toBe(true);
    for (const line of ["appendonly yes", "appendfsync everysec", "maxmemory 2gb", "maxmemory-policy allkeys-lru"]) expect(conf.inputs.stringData["redis.conf"]).toContain(line);
  });

  test("Z1/Z7/I4: the API rolls one pod at a time, probes /health and /health/ready, keeps 10 revisions", () => {
    const spec = one(K.deployment, "api").inputs.spec;
    expect(spec.replicas).toBe(3);
    expect(spec.revisionHistoryLimit).toBeGreaterThanOrEqual(10);
    expect(spec.strategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    const [api] = spec.template.spec.containers;
    expect(api.image).toBe(PROD_CONFIG.apiImage);
    expect(api.livenessProbe.httpGet).toEqual({ path: "/health", port: 8080 });
    expect(api.readinessProbe.httpGet).toEqual({ path: "/health/ready", port: 8080 });
    expect(api.resources.limits).toEqual({ cpu: "2", memory: "2Gi" });
  });

  test("both Deployments have a PodDisruptionBudget selecting their pods", () => {
    for (const app of ["api", "worker"]) {
      expect(one(K.pdb, app).inputs.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": app } } });
    }
    expect(one(K.deployment, "worker").inputs.spec.template.spec.containers[0].image).toBe(PROD_CONFIG.workerImage);
  });

  test("S2: app credentials come from the app-secrets Secret (Pulumi secrets) through secretKeyRef only", () => {
    const secret = one(K.secret, "app-secrets");
    expect(secretAt(secret, "stringData")).toBe(true);
    expect(Object.keys(secret.inputs.stringData).sort()).toEqual(["DATABASE_PASSWORD", "JWT_SECRET", "OPS_API_TOKEN", "REDIS_PASSWORD"]);
    const env = one(K.deployment, "api").inputs.spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: "JWT_SECRET", valueFrom: { secretKeyRef: { name: "app-secrets", key: "JWT_SECRET" } } });
    expect(env).toContainEqual({ name: "DATABASE_HOST", value: "timescale-rw.tradeops.svc.cluster.local" });
  });

  test("S2: no workload puts a literal value in a secret-looking variable, and every container has CPU + memory limits (Z7)", () => {
    expect(workloads()).toHaveLength(9);
    const checkedCredentials = new Set<string>();
    for (const workload of workloads()) {
      expect(podContainers(workload).length, workload.name).toBeGreaterThan(0);
      for (const c of podContainers(workload)) {
        expect(c.resources?.limits?.cpu, `${workload.name}/${c.name}`).toBeTruthy();
        expect(c.resources?.limits?.memory, `${workload.name}/${c.name}`).toBeTruthy();
        for (const e of c.env ?? []) {
          if (/PASSWORD|SECRET|TOKEN|PASS$|AUTH|KEY_ID|ACCESS_KEY/.test(e.name) && !e.name.endsWith("_FILE")) {
            expect(e.valueFrom?.secretKeyRef, `${workload.name}/${c.name} ${e.name}`).toBeTruthy();
            checkedCredentials.add(e.name);
          }
        }
      }
    }
    // The filter above really met the app's credentials (and the backup jobs'), so the check was not vacuous.
    expect([...checkedCredentials]).toEqual(expect.arrayContaining(["DATABASE_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET", "OPS_API_TOKEN"]));
  });

  test("S2: the API is served over TLS only, for the site name and the failover name", () => {
    const ingress = one(K.ingress, "api").inputs;
    expect(ingress.spec.tls).toEqual([{ hosts: [PROD_CONFIG.apiHostname, PROD_CONFIG.dnsRecordName], secretName: "api-tls" }]);
    expect(ingress.metadata.annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"]).toBe("true");
  });

  test("no Service is a LoadBalancer or NodePort (the database and Redis are reachable in-cluster only)", () => {
    expect(run.byType(K.service)).toHaveLength(7);
    for (const service of run.byType(K.service)) expect(service.inputs.spec.type ?? "ClusterIP", service.name).toBe("ClusterIP");
  });

  test("NetworkPolicies: only app pods (db-client / redis-client labels) reach PostgreSQL and Redis", () => {
    const db = one(K.networkPolicy, "data-access-database").inputs.spec;
    expect(db.podSelector).toEqual({ matchLabels: { "app.kubernetes.io/name": "timescale" } });
    expect(db.policyTypes).toEqual(["Ingress"]);
    expect(db.ingress[0]).toEqual({
      from: [{ podSelector: { matchLabels: { "tradeops.io/db-client": "true" } } }, { podSelector: { matchLabels: { "app.kubernetes.io/name": "timescale" } } }],
      ports: [{ protocol: "TCP", port: 5432 }],
    });
    const redis = one(K.networkPolicy, "data-access-redis").inputs.spec;
    expect(redis.podSelector).toEqual({ matchLabels: { "app.kubernetes.io/name": "redis" } });
    expect(redis.ingress).toEqual([{ from: [{ podSelector: { matchLabels: { "tradeops.io/redis-client": "true" } } }], ports: [{ protocol: "TCP", port: 6379 }] }]);
    for (const app of ["api", "worker"]) {
      expect(one(K.deployment, app).inputs.spec.template.metadata.labels).toMatchObject({ "tradeops.io/db-client": "true", "tradeops.io/redis-client": "true" });
    }
  });
});

describe("prod stack: backups (I7, S8)", () => {
  test("S8/I7: pgBackRest full backup daily at 02:00 from whichever pod is primary; never two at once", () => {
    const job = one(K.cronJob, "backup-schedule-pg-full-backup").inputs.spec;
    expect(job.schedule).toBe("0 2 * * *");
    expect(job.concurrencyPolicy).toBe("Forbid");
    const script = job.jobTemplate.spec.template.spec.containers[0].command.join(" ");
    expect(script).toContain("pg_is_in_recovery()");
    expect(script).toContain("pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=trading --type=full backup");
  });

  test("I7: Redis snapshot every hour into redis/ with the backup writer's keys", () => {
    const job = one(K.cronJob, "backup-schedule-redis-snapshot").inputs.spec;
    expect(job.schedule).toBe("0 * * * *");
    const pod = job.jobTemplate.spec.template.spec;
    expect(pod.initContainers[0].command).toEqual(expect.arrayContaining(["--rdb", "/snapshot/dump.rdb"]));
    expect(pod.containers[0].command[2]).toContain('key="redis/');
    expect(secretAt(one(K.secret, "backup-schedule-writer"), "stringData")).toBe(true);
  });

  test("the backup job's account may only exec into pods", () => {
    expect(one("kubernetes:rbac.authorization.k8s.io/v1:Role", "backup-schedule-exec").inputs.rules).toEqual([
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] },
      { apiGroups: [""], resources: ["pods/exec"], verbs: ["create"] },
    ]);
  });
});

describe("prod stack: observability (S4, S5)", () => {
  test("S5: Prometheus' rules from the shared generator hold HighAPILatency, HighQueueSize, LowDatabaseConnections", () => {
    const rules: string = one(K.configMap, "observability-prometheus").inputs.data["rules.yml"];
    expect(rules).toContain("alert: HighAPILatency");
    expect(rules).toMatch(/alert: HighQueueSize[\s\S]*?for: 10m[\s\S]*?severity: critical/);
    expect(rules).toMatch(/alert: LowDatabaseConnections[\s\S]*?< 5\n\s*for: 5m/);
  });

  test("alertmanager.yml and the Grafana admin password are Secrets; every monitoring Deployment has readiness + history", () => {
    expect(secretAt(one(K.secret, "observability-alertmanager"), "stringData")).toBe(true);
    expect(secretAt(one(K.secret, "observability-grafana-admin"), "stringData")).toBe(true);
    for (const name of ["observability-prometheus", "observability-alertmanager", "observability-grafana"]) {
      const spec = one(K.deployment, name).inputs.spec;
      expect(spec.template.spec.containers[0].readinessProbe, name).toBeDefined();
      expect(spec.revisionHistoryLimit, name).toBeGreaterThanOrEqual(10);
    }
  });
});

describe("prod stack: AWS", () => {
  const bucketPart = (type: string, name = "backups") => one(`aws:s3/${type}`, name).inputs;

  test("I7: the backup bucket is an aws.s3.Bucket (not *V2), versioned, SSE-KMS with its own rotated key", () => {
    expect(run.resources.some((r) => /aws:s3\/\w+V2:/.test(r.type))).toBe(false);
    expect(bucketPart("bucket:Bucket")).toMatchObject({ bucket: "acme-tradeops-backups", forceDestroy: false });
    expect(bucketPart("bucketVersioning:BucketVersioning").versioningConfiguration).toEqual({ status: "Enabled" });
    expect(bucketPart("bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").rules).toEqual([
      { applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: "arn:aws:kms:mock:123456789012:key/backups-key" }, bucketKeyEnabled: true },
    ]);
    expect(one("aws:kms/key:Key", "backups-key").inputs.enableKeyRotation).toBe(true);
  });

  test("the bucket is private (public access block, owner-enforced) and refuses plain HTTP", () => {
    expect(bucketPart("bucketPublicAccessBlock:BucketPublicAccessBlock")).toMatchObject({ blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true });
    const policy = JSON.parse(bucketPart("bucketPolicy:BucketPolicy").policy);
    expect(policy.Statement).toContainEqual(expect.objectContaining({ Effect: "Deny", Action: "s3:*", Condition: { Bool: { "aws:SecureTransport": "false" } } }));
  });

  test("I7: lifecycle — full backups to Glacier IR, Redis snapshots expire after 24 h, models after 90 d, pgBackRest's expired versions after 7 d", () => {
    const rules = bucketPart("bucketLifecycleConfiguration:BucketLifecycleConfiguration").rules;
    const rule = (id: string) => rules.find((r: { id: string }) => r.id === id);
    expect(rule("pg-full-backups")).toMatchObject({ filter: { prefix: "pgbackrest/backup/" }, transitions: [{ days: 7, storageClass: "GLACIER_IR" }], noncurrentVersionExpiration: { noncurrentDays: 7 } });
    expect(rule("pg-wal")).toMatchObject({ filter: { prefix: "pgbackrest/archive/" }, noncurrentVersionExpiration: { noncurrentDays: 7 } });
    expect(rule("redis-snapshots")).toMatchObject({ filter: { prefix: "redis/" }, expiration: { days: 1 } });
    expect(rule("models")).toMatchObject({ filter: { prefix: "models/" }, expiration: { days: 90 } });
    // An S3 expiry under the pgBackRest repository would delete files its manifests (or archive.info) still need.
    expect(rule("pg-full-backups").expiration).toBeUndefined();
    expect(rule("pg-wal").expiration).toBeUndefined();
  });

  test("I5/I6: the backup prefixes replicate to the DR region's bucket (same hardening), one rule each, delete markers included, re-encrypted", () => {
    const drProvider = run.byType("pulumi:providers:aws").find((p) => p.name === "aws-dr")!;
    expect(drProvider.inputs.region).toBe("eu-central-1");
    const replica = one("aws:s3/bucket:Bucket", "backups-dr");
    expect(replica.inputs.bucket).toBe("acme-tradeops-backups-dr");
    expect(replica.provider).toContain("aws-dr");
    expect(one("aws:s3/bucketVersioning:BucketVersioning", "backups-dr").inputs.versioningConfiguration.status).toBe("Enabled");
    const rules = one("aws:s3/bucketReplicationConfig:BucketReplicationConfig", "backup-replication").inputs.rules;
    expect(rules.map((r: { filter: { prefix: string } }) => r.filter.prefix)).toEqual(["pgbackrest/", "redis/", "models/"]);
    expect(new Set(rules.map((r: { priority: number }) => r.priority)).size).toBe(3);
    for (const rule of rules) {
      expect(rule).toMatchObject({
        status: "Enabled",
        deleteMarkerReplication: { status: "Enabled" },
        destination: { bucket: "arn:aws:s3:::acme-tradeops-backups-dr", encryptionConfiguration: { replicaKmsKeyId: "arn:aws:kms:mock:123456789012:key/backups-dr-key" } },
      });
    }
  });

  test("#8: prod's stack lock never replicates over the DR site's (no rule covers locks/)", () => {
    const rules = one("aws:s3/bucketReplicationConfig:BucketReplicationConfig", "backup-replication").inputs.rules;
    const key = StackOutputs.parse(run.outputs).lock;
    expect(key).toEqual({ kind: "s3", key: "locks/pgbackrest/trading.json" });
    for (const rule of rules) expect(key && "key" in key && key.key.startsWith(rule.filter.prefix), rule.id).toBe(false);
  });

  test("#8: noncurrent versions of the lock (rewritten every 15 s) expire after 1 day, in both buckets", () => {
    for (const bucket of ["backups", "backups-dr"]) {
      const rules = one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket).inputs.rules;
      expect(rules.find((r: { id: string }) => r.id === "stack-locks"), bucket).toMatchObject({ status: "Enabled", filter: { prefix: "locks/" }, noncurrentVersionExpiration: { noncurrentDays: 1 } });
    }
  });

  test("least privilege: the backup writer may list, read, write and delete only under pgbackrest/, redis/ and locks/ (#8: the stack lock)", () => {
    const policy = JSON.parse(one("aws:iam/userPolicy:UserPolicy", "backup-writer").inputs.policy);
    const actions = policy.Statement.flatMap((s: { Action: string[] }) => s.Action);
    expect(actions.some((a: string) => a.includes("*"))).toBe(false);
    const readWrite = policy.Statement.find((s: { Sid: string }) => s.Sid === "ReadWriteOwnPrefixes");
    expect(readWrite.Action).toEqual(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]);
    expect(readWrite.Resource).toEqual([
      "arn:aws:s3:::acme-tradeops-backups/pgbackrest/*",
      "arn:aws:s3:::acme-tradeops-backups/redis/*",
      "arn:aws:s3:::acme-tradeops-backups/locks/*",
      "arn:aws:s3:::acme-tradeops-backups-dr/pgbackrest/*",
      "arn:aws:s3:::acme-tradeops-backups-dr/redis/*",
      "arn:aws:s3:::acme-tradeops-backups-dr/locks/*",
    ]);
    const list = policy.Statement.find((s: { Sid: string }) => s.Sid === "ListOwnPrefixes");
    expect(list.Condition.StringLike["s3:prefix"]).toEqual(["pgbackrest", "redis", "locks", "pgbackrest/*", "redis/*", "locks/*"]);
  });

  test("I5: Route53 health-checks the primary API's readiness over HTTPS; the PRIMARY failover record uses it", () => {
    const check = one("aws:route53/healthCheck:HealthCheck", "api-primary").inputs;
    expect(check).toMatchObject({ type: "HTTPS", fqdn: PROD_CONFIG.apiHostname, port: 443, resourcePath: "/health/ready", failureThreshold: 3 });
    const record = one("aws:route53/record:Record", "api-primary").inputs;
    expect(record).toMatchObject({
      zoneId: PROD_CONFIG.dnsZoneId,
      name: PROD_CONFIG.dnsRecordName,
      type: "CNAME",
      setIdentifier: "primary",
      failoverRoutingPolicies: [{ type: "PRIMARY" }],
      healthCheckId: "api-primary-hc-id",
      records: ["api.elb.mock.amazonaws.com"],
    });
    expect(one("aws:route53/record:Record", "api-primary-site").inputs).toMatchObject({ name: PROD_CONFIG.apiHostname, records: ["api.elb.mock.amazonaws.com"] });
  });
});

describe("prod stack: structure and outputs", () => {
  test("every resource's parent is its component; only providers, the namespace and components are top-level", () => {
    expect(run.resources.length).toBeGreaterThan(0);
    for (const resource of run.resources) {
      if (resource.type.startsWith("tradeops:") || resource.type.startsWith("pulumi:providers:") || resource.type === "kubernetes:core/v1:Namespace") {
        expect(resource.parent, resource.name).toBe("");
      } else {
        expect(resource.parent, `${resource.type} ${resource.name}`).toMatch(/^tradeops:(kubernetes|aws):/);
        // Its own component, not a sibling: children are named after their component.
        expect(resource.name.startsWith(resource.parent.split(" ")[1]!), `${resource.name} under ${resource.parent}`).toBe(true);
      }
    }
  });

  test("S2: no secret value appears in any resource's inputs outside a Pulumi secret", () => {
    expect(secretLeaks(run, { ...PROD_SECRETS, writerKey: "mock-secret-access-key-0123456789" })).toEqual([]);
  });

  test("exports parse with the outputs contract as a kubernetes platform; credentials are Pulumi secrets", async () => {
    const outputs = StackOutputs.parse(run.outputs);
    expect(outputs.platform).toEqual({ kind: "kubernetes", namespace: "tradeops", deployments: { api: "api", worker: "worker" }, statefulSets: { database: "timescale", redis: "redis" }, services: { database: "timescale-rw" }, configMaps: { database: "timescale-config" } });
    expect(outputs.database.primary.host).toBe("timescale-0.timescale-headless.tradeops.svc.cluster.local");
    expect(outputs.database.standby?.name).toBe("timescale-1");
    expect(outputs.database.traffic).toEqual({ host: "timescale-rw.tradeops.svc.cluster.local", port: 5432 });
    expect(outputs.backup).toMatchObject({ bucket: "acme-tradeops-backups", region: "eu-west-1", uriStyle: "host", accessKeyId: "AKIAMOCKBACKUPWRITER" });
    expect(outputs.dr).toEqual({
      name: "dr",
      region: "eu-central-1",
      stack: "organization/tradeops/dr",
      maxLagSeconds: 300,
      dns: { zoneId: PROD_CONFIG.dnsZoneId, recordName: PROD_CONFIG.dnsRecordName, healthCheckId: "api-primary-hc-id", primaryTarget: "api.elb.mock.amazonaws.com", ttl: 60 },
    });
    expect(outputs.lock).toEqual({ kind: "s3", key: "locks/pgbackrest/trading.json" });
    expect(outputs.monitoring).toEqual({ prometheusUrl: "http://prometheus.tradeops.svc.cluster.local:9090", alertmanagerUrl: "http://alertmanager.tradeops.svc.cluster.local:9093" });
    expect(outputs.database.homePrimary).toBe("timescale-0");
    for (const secret of [run.exports.database.password, run.exports.redis.password, run.exports.opsApi.token, run.exports.backup.secretAccessKey]) {
      expect(await pulumi.isSecret(secret)).toBe(true);
    }
  });

  test("I5: exports the stack that declares the DR site (tradeops:drStack) and the PRIMARY half as the record declares it", () => {
    const outputs = StackOutputs.parse(run.outputs);
    const record = one("aws:route53/record:Record", "api-primary").inputs;
    expect(outputs.dr?.stack).toBe(PROD_CONFIG.drStack);
    // What `dr failback` UPSERTs back: the same target, health check and TTL the stack gave the record.
    expect(outputs.dr?.dns).toEqual({ zoneId: record.zoneId, recordName: record.name, healthCheckId: record.healthCheckId, primaryTarget: record.records[0], ttl: record.ttl });
    // Prod has no DR database of its own: the runbooks read it from the dr stack.
    expect(outputs.dr?.database).toBeUndefined();
  });

  test("I5: exports the replication role (user, and password as a Pulumi secret the runbooks mask)", async () => {
    const outputs = StackOutputs.parse(run.outputs);
    expect(outputs.database.replication).toEqual({ mode: "sync", slot: "timescale_1", user: "replicator", password: PROD_SECRETS.replicationPassword, maxLagBytes: 16 * 1024 * 1024 });
    expect(outputs.database.replication).toMatchObject(PROD_OUTPUTS.database.replication);
    expect(await pulumi.isSecret(run.exports.database.replication.password)).toBe(true);
    expect(secretValues(outputs)).toContain(PROD_SECRETS.replicationPassword);
  });

  test("the stack passes every policy of the policy pack", async () => {
    expect(await policyViolations(run)).toEqual([]);
  });

  test("resource graph snapshot", async () => {
    expect(run.resources).toHaveLength(79);
    await expect(run.graph()).toMatchFileSnapshot("__snapshots__/prod.graph.txt");
  });
});

describe("prod stack: rendered files pass the real programs", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tradeops-prod-files-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("promtool accepts the Prometheus ConfigMap (S4, S5)", () => {
    const data = one(K.configMap, "observability-prometheus").inputs.data;
    writeFileSync(join(dir, "rules.yml"), data["rules.yml"]);
    writeFileSync(join(dir, "prometheus.yml"), data["prometheus.yml"].replace("/etc/prometheus/rules.yml", join(dir, "rules.yml")));
    expect(execFileSync("promtool", ["check", "config", join(dir, "prometheus.yml")], { encoding: "utf8", stdio: "pipe" })).toContain("SUCCESS");
  });

  test("amtool accepts alertmanager.yml from its Secret (I8 Slack)", () => {
    writeFileSync(join(dir, "alertmanager.yml"), one(K.secret, "observability-alertmanager").inputs.stringData["alertmanager.yml"]);
    expect(execFileSync("amtool", ["check-config", join(dir, "alertmanager.yml")], { encoding: "utf8", stdio: "pipe" })).toContain("SUCCESS");
  });

  test("the node start script and init script are valid bash", () => {
    const data = one(K.configMap, "timescale-config").inputs.data;
    for (const file of ["start-node.sh", "init-primary.sh"]) {
      writeFileSync(join(dir, file), data[file]);
      expect(() => execFileSync("bash", ["-n", join(dir, file)], { stdio: "pipe" }), file).not.toThrow();
    }
  });
});
