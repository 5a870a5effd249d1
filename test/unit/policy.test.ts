/**
 * The policy pack, offline: each policy's validate function is called directly with a passing and
 * violating resources and a collecting `reportViolation`. Each violating case is one way the
 * policy could be weakened; removing a policy from the pack fails the first test.
 */
import type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { describe, expect, test } from "vitest";
import {
  bucketEncrypted,
  bucketPrivate,
  bucketVersioned,
  containersHaveLimits,
  deploymentsRolloutSafe,
  noPlainSecretEnv,
  noPublicDataPorts,
  policies,
} from "../../policy/policies.ts";

function checkResource(policy: ResourceValidationPolicy, type: string, props: Record<string, unknown>, name = "subject"): string[] {
  const violations: string[] = [];
  const validate = policy.validateResource;
  const validators = Array.isArray(validate) ? validate : [validate!];
  const args = { type, props, urn: `urn:pulumi:test::tradeops::${type}::${name}`, name, opts: {} as never, stackTags: new Map() } as never;
  for (const v of validators) void v(args, (message: string) => violations.push(message));
  return violations;
}

type Res = { type: string; name: string; props: Record<string, unknown>; bucketDep?: string };
function checkStack(policy: StackValidationPolicy, resources: Res[]): string[] {
  const violations: string[] = [];
  const policyResources = resources.map(
    (r) => ({ type: r.type, name: r.name, props: r.props, urn: `urn::${r.type}::${r.name}`, opts: {}, dependencies: [], propertyDependencies: {} }) as unknown as PolicyResource,
  );
  for (const [i, r] of resources.entries()) {
    if (r.bucketDep) policyResources[i]!.propertyDependencies = { bucket: policyResources.filter((p) => p.name === r.bucketDep) };
  }
  void policy.validateStack({ resources: policyResources, stackTags: new Map() } as never, (message: string) => violations.push(message));
  return violations;
}

const BUCKET = { type: "aws:s3/bucket:Bucket", name: "backups", props: { bucket: "acme-backups", id: "acme-backups" } };
const sse = (algorithm: string): Res => ({
  type: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  name: "backups",
  props: { bucket: "acme-backups", rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: algorithm } }] },
});
const versioning = (status: string): Res => ({ type: "aws:s3/bucketVersioning:BucketVersioning", name: "backups", props: { bucket: "acme-backups", versioningConfiguration: { status } } });
const publicAccessBlock = (overrides: Record<string, boolean> = {}): Res => ({
  type: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  name: "backups",
  props: { bucket: "acme-backups", blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true, ...overrides },
});

test("the pack holds every guardrail", () => {
  expect(policies.map((p) => p.name).sort()).toEqual(
    ["backup-bucket-encrypted", "backup-bucket-private", "backup-bucket-versioned", "containers-have-limits", "deployments-rollout-safe", "no-plain-secret-env", "no-public-data-ports"].sort(),
  );
  for (const policy of policies) expect(policy.enforcementLevel, policy.name).toBe("mandatory");
});

describe("I7: backup-bucket-encrypted", () => {
  test("passes a bucket with SSE-KMS configured by a separate resource", () => {
    expect(checkStack(bucketEncrypted, [BUCKET, sse("aws:kms")])).toEqual([]);
  });
  test("passes when the configuration references the bucket only through a dependency (unknown id at preview)", () => {
    expect(checkStack(bucketEncrypted, [BUCKET, { ...sse("aws:kms"), props: { rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" } }] }, bucketDep: "backups" }])).toEqual([]);
  });
  test("flags a bucket without encryption, and one whose encryption belongs to another bucket", () => {
    expect(checkStack(bucketEncrypted, [BUCKET])).toHaveLength(1);
    expect(checkStack(bucketEncrypted, [BUCKET, { ...sse("aws:kms"), props: { bucket: "other", rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" } }] } }])).toHaveLength(1);
  });
  test("flags an encryption configuration without an algorithm", () => {
    expect(checkStack(bucketEncrypted, [BUCKET, sse("")])[0]).toContain("backups has no default encryption");
  });
});

describe("I7: backup-bucket-versioned", () => {
  test("passes a bucket with versioning Enabled", () => {
    expect(checkStack(bucketVersioned, [BUCKET, versioning("Enabled")])).toEqual([]);
  });
  test("flags no versioning, and Suspended versioning", () => {
    expect(checkStack(bucketVersioned, [BUCKET])).toHaveLength(1);
    expect(checkStack(bucketVersioned, [BUCKET, versioning("Suspended")])).toHaveLength(1);
  });
});

describe("S2: backup-bucket-private", () => {
  test("passes a bucket with all four public access blocks", () => {
    expect(checkStack(bucketPrivate, [BUCKET, publicAccessBlock()])).toEqual([]);
  });
  test("flags a missing block, any one of the four settings off, and a public ACL", () => {
    expect(checkStack(bucketPrivate, [BUCKET])).toHaveLength(1);
    for (const setting of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]) {
      expect(checkStack(bucketPrivate, [BUCKET, publicAccessBlock({ [setting]: false })]), setting).toHaveLength(1);
    }
    expect(checkStack(bucketPrivate, [BUCKET, publicAccessBlock(), { type: "aws:s3/bucketAcl:BucketAcl", name: "acl", props: { bucket: "acme-backups", acl: "public-read" } }])).toHaveLength(1);
  });
});

describe("S2: no-public-data-ports", () => {
  const container = (ports: unknown[]) => checkResource(noPublicDataPorts, "docker:index/container:Container", { ports });
  const service = (type: string, port: number) => checkResource(noPublicDataPorts, "kubernetes:core/v1:Service", { spec: { type, ports: [{ port, targetPort: port }] } });

  test("passes PostgreSQL and Redis bound to 127.0.0.1, a public HTTP port, and ClusterIP data Services", () => {
    expect(container([{ internal: 5432, external: 16401, ip: "127.0.0.1" }, { internal: 6379, ip: "127.0.0.1" }, { internal: 8080, ip: "0.0.0.0" }])).toEqual([]);
    expect(service("ClusterIP", 5432)).toEqual([]);
    expect(service("LoadBalancer", 443)).toEqual([]);
  });
  test("flags data ports on 0.0.0.0, on Docker's default (no ip), and on ::", () => {
    expect(container([{ internal: 5432, ip: "0.0.0.0" }])).toHaveLength(1);
    expect(container([{ internal: 6379 }])).toHaveLength(1);
    expect(container([{ internal: 5000, ip: "::" }])).toHaveLength(1);
  });
  test("flags PostgreSQL or Redis behind a LoadBalancer or a NodePort", () => {
    expect(service("LoadBalancer", 5432)).toHaveLength(1);
    expect(service("NodePort", 6379)).toHaveLength(1);
  });
});

describe("Z7: containers-have-limits", () => {
  const deployment = (containers: unknown[], initContainers: unknown[] = []) =>
    checkResource(containersHaveLimits, "kubernetes:apps/v1:Deployment", { spec: { template: { spec: { containers, initContainers } } } });
  const limited = (name: string) => ({ name, resources: { limits: { cpu: "1", memory: "1Gi" } } });

  test("passes Kubernetes containers and Docker containers with both limits", () => {
    expect(deployment([limited("api")], [limited("init")])).toEqual([]);
    expect(checkResource(containersHaveLimits, "docker:index/container:Container", { cpus: "0.5", memory: 512 })).toEqual([]);
    const cronJob = { spec: { jobTemplate: { spec: { template: { spec: { containers: [limited("backup")] } } } } } };
    expect(checkResource(containersHaveLimits, "kubernetes:batch/v1:CronJob", cronJob)).toEqual([]);
  });
  test("flags a missing CPU limit, a missing memory limit, requests without limits, and an unlimited init container", () => {
    expect(deployment([{ name: "api", resources: { limits: { memory: "1Gi" } } }])).toEqual(["subject: container api has no cpu limit"]);
    expect(deployment([{ name: "api", resources: { limits: { cpu: "1" } } }])).toEqual(["subject: container api has no memory limit"]);
    expect(deployment([{ name: "api", resources: { requests: { cpu: "1", memory: "1Gi" } } }])).toHaveLength(1);
    expect(deployment([limited("api")], [{ name: "migrate" }])).toHaveLength(1);
  });
  test("flags unlimited StatefulSet, CronJob and Docker containers", () => {
    expect(checkResource(containersHaveLimits, "kubernetes:apps/v1:StatefulSet", { spec: { template: { spec: { containers: [{ name: "db" }] } } } })).toHaveLength(1);
    expect(checkResource(containersHaveLimits, "kubernetes:batch/v1:CronJob", { spec: { jobTemplate: { spec: { template: { spec: { containers: [{ name: "b" }] } } } } } })).toHaveLength(1);
    expect(checkResource(containersHaveLimits, "docker:index/container:Container", { memory: 512 })).toHaveLength(1);
    expect(checkResource(containersHaveLimits, "docker:index/container:Container", { cpus: "1" })).toHaveLength(1);
  });
});

describe("I4/Z7: deployments-rollout-safe", () => {
  const deployment = (spec: Record<string, unknown>) => checkResource(deploymentsRolloutSafe, "kubernetes:apps/v1:Deployment", { spec });
  const ready = { name: "api", readinessProbe: { httpGet: { path: "/health/ready", port: 8080 } } };

  test("passes readiness probes with 10 revisions kept, and with the Kubernetes default (unset = 10)", () => {
    expect(deployment({ revisionHistoryLimit: 10, template: { spec: { containers: [ready] } } })).toEqual([]);
    expect(deployment({ template: { spec: { containers: [ready] } } })).toEqual([]);
  });
  test("flags a short rollback history (0 and 9)", () => {
    expect(deployment({ revisionHistoryLimit: 0, template: { spec: { containers: [ready] } } })).toHaveLength(1);
    expect(deployment({ revisionHistoryLimit: 9, template: { spec: { containers: [ready] } } })).toHaveLength(1);
  });
  test("flags any container of the Deployment without a readiness probe", () => {
    expect(deployment({ revisionHistoryLimit: 10, template: { spec: { containers: [ready, { name: "sidecar" }] } } })).toEqual(["Deployment subject: container sidecar has no readinessProbe, so a broken rollout would take traffic"]);
  });
});

describe("S2: no-plain-secret-env", () => {
  const deployment = (env: unknown[]) => checkResource(noPlainSecretEnv, "kubernetes:apps/v1:Deployment", { spec: { template: { spec: { containers: [{ name: "api", env }] } } } });

  test("passes secretKeyRef credentials, *_FILE paths and plain settings", () => {
    expect(deployment([{ name: "JWT_SECRET", valueFrom: { secretKeyRef: { name: "app", key: "JWT_SECRET" } } }, { name: "POSTGRES_PASSWORD_FILE", value: "/run/secrets/db" }, { name: "DATABASE_HOST", value: "db" }])).toEqual([]);
    expect(checkResource(noPlainSecretEnv, "docker:index/container:Container", { envs: ["JWT_SECRET_FILE=/run/secrets/jwt", "PORT=8080"] })).toEqual([]);
  });
  test("flags literal passwords, tokens, secrets and access keys in Kubernetes env", () => {
    for (const name of ["DATABASE_PASSWORD", "JWT_SECRET", "OPS_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "REDISCLI_AUTH", "DATABASE_URL"]) {
      expect(deployment([{ name, value: "literal" }]), name).toHaveLength(1);
    }
  });
  test("flags credentials in a Docker container's environment and in a CronJob's init container", () => {
    expect(checkResource(noPlainSecretEnv, "docker:index/container:Container", { envs: ["POSTGRES_PASSWORD=hunter2"] })).toHaveLength(1);
    const cronJob = { spec: { jobTemplate: { spec: { template: { spec: { initContainers: [{ name: "fetch", env: [{ name: "REDIS_PASSWORD", value: "x" }] }], containers: [] } } } } } };
    expect(checkResource(noPlainSecretEnv, "kubernetes:batch/v1:CronJob", cronJob)).toHaveLength(1);
  });
});
